"""Aggregate a sweep's results with rliable (Agarwal et al., NeurIPS 2021): ``drama-wm report DIR``.

Scores. Each run contributes two numbers per env, both normalised:

- ``final``: the mean evaluation return at the end of training;
- ``auc``: the area under the learning curve (the evaluation means against real steps, trapezoids, over the span
  of the evaluated steps), divided by that span: the average normalised return over training.

Normalisation. Atari 100k games: the human-normalised score, (x - random) / (human - random) (paper Table 1 scores,
``drama_wm.envs.scores``). Every other env: x / best, where best is the highest evaluation mean of any run of that
env in the results (any setting, any step); so 1 is the best any run reached, 0 a return of 0. Every env's best must
be positive (MinAtar and CartPole returns are >= 0); an env where no run scored above 0 is left out of the
aggregates, and the report says so.

Per setting (learner, preset, overrides) with runs on every env: IQM (mean of the middle 50% of all runs' scores),
mean, and median (rliable's: the median over envs of each env's mean score) with 95% stratified bootstrap
intervals (``rliable.library.get_interval_estimates``, strata = envs; none where a setting has one run per env,
since every resample would be that run; seeded, so the same results give the same intervals, and a setting's
intervals depend on its own runs only), the probability of improvement of each setting over each other, and
performance profiles (PNG). Results: ``report.md``, ``report.json`` and ``performance_profile_<score>.png`` in the
sweep folder. Needs ``pip install drama-wm[sweep]``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCORES = ("final", "auc")
METRICS = ("IQM", "mean", "median")


def _import_rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except ImportError as err:
        raise ImportError(
            f"drama-wm report needs rliable: pip install drama-wm[sweep] (rliable 1.2 also needs pandas<3; {err})"
        ) from None
    return library, metrics


def curve_auc(curve: Sequence[dict[str, Any]], normalise: Any = None) -> float:
    """Area under the (normalised) learning curve divided by its step span; the single value if one point."""
    steps = np.array([p["step"] for p in curve], dtype=float)
    values = np.array([p["mean"] if normalise is None else normalise(p["mean"]) for p in curve], dtype=float)
    if len(steps) == 1:
        return float(values[0])
    order = np.argsort(steps)
    steps, values = steps[order], values[order]
    area = float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(steps)))
    return area / float(steps[-1] - steps[0])


def normalisers(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per env: how its returns are normalised ({"kind": "human", ...} or {"kind": "best", "best": ...})."""
    from drama_wm.envs.scores import is_atari_100k_game

    out: dict[str, dict[str, Any]] = {}
    for env in sorted({r["spec"]["env"] for r in results}):
        if is_atari_100k_game(env):
            out[env] = {"kind": "human", "game": env}
            continue
        best = max(p["mean"] for r in results if r["spec"]["env"] == env for p in r["curve"])
        # no run scored above 0: nothing to normalise by, the env is left out of the aggregates (and says so)
        out[env] = {"kind": "best", "best": float(best)} if best > 0 else {"kind": "excluded", "best": float(best)}
    return out


def _normalise(env: str, rule: dict[str, Any], value: float) -> float:
    if rule["kind"] == "human":
        from drama_wm.envs.scores import human_normalized_score

        return float(human_normalized_score(env, value))
    return float(value) / rule["best"]


def score_matrices(results: Sequence[dict[str, Any]], score: str = "final") -> tuple[dict[str, np.ndarray], list[str]]:
    """{setting: array [runs, envs]} of normalised scores, and the envs (columns). Runs are matched by seed: a
    setting keeps the seeds it finished on every env (rliable needs the same number of runs per task)."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    rules = normalisers(results)
    envs = _reported_envs(rules)
    if not envs:
        raise ValueError("no env to report: every env's best evaluation return is <= 0 (nothing learned yet?)")
    by_setting: dict[str, dict[tuple[str, int], float]] = {}
    names: dict[tuple[str, str, int], str] = {}
    for r in results:
        env = r["spec"]["env"]
        if env not in envs:
            continue
        if score == "final":
            value = _normalise(env, rules[env], r["final_return"])
        else:
            value = curve_auc(r["curve"], lambda x, env=env: _normalise(env, rules[env], x))
        runs = by_setting.setdefault(r["setting"], {})
        key = (env, int(r["spec"]["seed"]))
        if key in runs:
            raise ValueError(
                f"two runs of {r['setting']!r} on {env} with seed {key[1]}: {names[(r['setting'], *key)]} and "
                f"{r['name']} (their specs differ in steps, evaluation or the preset's config_digest); report them "
                "from separate sweep folders, or remove one run's folder"
            )
        runs[key] = value
        names[(r["setting"], *key)] = r["name"]
    whole = _whole_seeds(results, envs)
    matrices: dict[str, np.ndarray] = {}
    for setting, values in sorted(by_setting.items()):
        if whole[setting]:
            matrices[setting] = np.array([[values[(env, s)] for env in envs] for s in whole[setting]])
    if not matrices:
        raise ValueError(
            f"nothing to report: no setting has finished one seed on every env ({', '.join(envs)}); not counted: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in left_out(results).items())
        )
    return matrices, envs


def _reported_envs(rules: dict[str, dict[str, Any]]) -> list[str]:
    """The envs the aggregates cover (sorted): all but those where no run scored above 0."""
    return sorted(env for env, rule in rules.items() if rule["kind"] != "excluded")


def _whole_seeds(results: Sequence[dict[str, Any]], envs: Sequence[str]) -> dict[str, list[int]]:
    """Per setting, the seeds (sorted) it has finished on every one of ``envs``: the runs the aggregates count."""
    seeds: dict[str, dict[str, set[int]]] = {}
    for r in results:
        seeds.setdefault(r["setting"], {}).setdefault(r["spec"]["env"], set()).add(int(r["spec"]["seed"]))
    return {
        setting: sorted(set.intersection(*(per_env.get(env, set()) for env in envs))) if envs else []
        for setting, per_env in seeds.items()
    }


def left_out(results: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The runs no aggregate counts, by setting (run names, sorted): a setting's seed counts once it has finished on
    every reported env, and an env where no run scored above 0 counts for nobody. A sweep carried on later fills
    these in; the report lists them so that a partial sweep never reads as a complete one."""
    envs = _reported_envs(normalisers(results))
    whole = _whole_seeds(results, envs)
    out: dict[str, list[str]] = {}
    for r in results:
        if r["spec"]["env"] not in envs or int(r["spec"]["seed"]) not in whole[r["setting"]]:
            out.setdefault(r["setting"], []).append(r["name"])
    return {setting: sorted(names) for setting, names in sorted(out.items())}


def final_returns(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Every finished run's raw final return, counted or not: {setting: {env: {seed (as text): return}}}."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for r in sorted(results, key=lambda r: (r["setting"], r["spec"]["env"], int(r["spec"]["seed"]))):
        table.setdefault(r["setting"], {}).setdefault(r["spec"]["env"], {})[str(r["spec"]["seed"])] = r["final_return"]
    return table


@contextlib.contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for the block and give the caller's state back after it."""
    state = np.random.get_state()  # noqa: NPY002 (the legacy global generator is the one rliable draws from)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _rliable_version() -> str:
    from importlib.metadata import version

    return version("rliable")


def _interval_estimates(
    library: Any, score_dict: dict[Any, Any], func: Any, reps: int, seed: int
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """``library.get_interval_estimates``, reproducible, one key at a time.

    rliable 1.2 draws its resampled run indices from numpy's global generator (``np.random.choice`` in
    ``update_indices``) and ignores the ``random_state`` it hands to arch, so a ``RandomState`` alone leaves the
    intervals unseeded. Each key's bootstrap therefore runs with the global generator seeded by ``seed`` (the caller's
    state is restored after), so an interval depends only on its own scores, ``reps`` and ``seed``: not on the other
    settings in the sweep or their order. The ``RandomState`` is still passed in case a later rliable uses it; arch's
    FutureWarning about it is silenced. Not thread-safe: numpy's global generator is process-wide, so a thread
    drawing from it meanwhile would change the intervals."""
    points: dict[Any, Any] = {}
    intervals: dict[Any, Any] = {}
    for key, scores in score_dict.items():
        with warnings.catch_warnings(), _numpy_global_seed(seed):
            warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
            p, i = library.get_interval_estimates(
                {key: scores}, func, reps=reps, random_state=np.random.RandomState(seed)
            )
        points[key], intervals[key] = p[key], i[key]
    return points, intervals


def aggregate(
    results: Sequence[dict[str, Any]], reps: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """IQM / mean / median with 95% stratified bootstrap CIs and pairwise probabilities of improvement, for the final
    return and the area under the curve. ``reps`` bootstrap resamples per interval, drawn from ``seed``: the same
    results give the same report. Returns a JSON-ready dict."""
    library, metrics = _import_rliable()
    if not results:
        raise ValueError("no finished runs to report (no result.json found)")

    def three(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x)])

    report: dict[str, Any] = {"bootstrap": {"reps": reps, "seed": seed, "rliable": _rliable_version()},
                              "normalisation": normalisers(results), "left_out": left_out(results),
                              "final_returns": final_returns(results), "scores": {}}
    for score in SCORES:
        matrices, envs = score_matrices(results, score)
        points, intervals = _interval_estimates(library, matrices, three, reps, seed)
        settings: dict[str, Any] = {}
        for name, matrix in matrices.items():
            # one run per env: every bootstrap resample is that run, a zero-width "interval" that means nothing
            bootstrapped = matrix.shape[0] >= 2
            settings[name] = {
                "runs_per_env": int(matrix.shape[0]),
                "per_env_mean": dict(zip(envs, matrix.mean(axis=0).tolist(), strict=True)),
                **{
                    m: {"value": float(points[name][i]),
                        "ci": [float(intervals[name][0, i]), float(intervals[name][1, i])] if bootstrapped else None}
                    for i, m in enumerate(METRICS)
                },
            }
        # Each unordered pair is bootstrapped once: P(b > a) = 1 - P(a > b) (a tie counts a half), its interval the
        # mirror image, so the two directions always agree.
        pairs = {(a, b): (matrices[a], matrices[b]) for a, b in itertools.combinations(matrices, 2)
                 if matrices[a].shape[1] == matrices[b].shape[1]}
        both: dict[tuple[str, str], dict[str, Any]] = {}
        if pairs:
            p_points, p_intervals = _interval_estimates(library, pairs, metrics.probability_of_improvement, reps, seed)
            for (a, b), (xa, xb) in pairs.items():
                value = float(np.ravel(p_points[(a, b)])[0])
                low, high = (float(v) for v in np.ravel(p_intervals[(a, b)])[:2])
                bootstrapped = min(len(xa), len(xb)) >= 2
                both[(a, b)] = {"value": value, "ci": [low, high] if bootstrapped else None}
                both[(b, a)] = {"value": 1.0 - value, "ci": [1.0 - high, 1.0 - low] if bootstrapped else None}
        improvement = {f"{a} > {b}": both[(a, b)] for a, b in itertools.permutations(matrices, 2) if (a, b) in both}
        report["scores"][score] = {"envs": envs, "settings": settings, "probability_of_improvement": improvement}
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables."""
    lines = ["# Sweep report", ""]
    rows = report.get("progress", [])
    if any(row["state"] != "finished" for row in rows):
        started = [f"{row['name']} (step {row['step']:,} of {row['steps']:,})" for row in rows
                   if row["state"] == "started"]
        waiting = sum(row["state"] == "not started" for row in rows)
        lines += [f"Sweep in progress: {sum(row['state'] == 'finished' for row in rows)} of {len(rows)} runs "
                  f"finished, {len(started)} started ({', '.join(started) or 'none'}), {waiting} not started; the "
                  "same drama-wm sweep command carries it on.", ""]
    rules = report["normalisation"]
    lines.append("Normalisation: " + "; ".join(
        f"{env}: human-normalised" if r["kind"] == "human"
        else f"{env}: return / {r['best']:g} (best seen)" if r["kind"] == "best"
        else f"{env}: left out (best return {r['best']:g} <= 0)"
        for env, r in rules.items()
    ))
    if report.get("left_out"):
        lines += ["", "Not counted (a seed counts once it has finished on every env; carry the sweep on to fill "
                  "these in):"]
        lines += [
            f"- {name}: {_count_runs(len(runs))} ({', '.join(runs)})"
            for name, runs in report["left_out"].items()
        ]
    for score, title in (("final", "final return"), ("auc", "area under the learning curve")):
        block = report["scores"][score]
        lines += ["", f"## Normalised {title} (95% stratified bootstrap CIs)", "",
                  "| setting | runs/env | IQM | mean | median | " + " | ".join(block["envs"]) + " |",
                  "|---|---|---|---|---|" + "---|" * len(block["envs"])]
        for name, s in block["settings"].items():
            cells = [f"{s[m]['value']:.3f} {_interval(s[m]['ci'])}" for m in METRICS]
            per_env = [f"{s['per_env_mean'][e]:.3f}" for e in block["envs"]]
            lines.append(f"| {name} | {s['runs_per_env']} | " + " | ".join(cells + per_env) + " |")
        if block["probability_of_improvement"]:
            lines += ["", "| probability of improvement | P(X > Y) [95% CI] |", "|---|---|"]
            for pair, p in block["probability_of_improvement"].items():
                lines.append(f"| {pair} | {p['value']:.3f} {_interval(p['ci'])} |")
    table = report.get("final_returns", {})
    seeds = sorted({int(s) for envs in table.values() for runs in envs.values() for s in runs})
    if table:
        header = "| setting | env | " + " | ".join(f"seed {s}" for s in seeds) + " |"
        lines += ["", "## Final return of every finished run (raw, counted or not)", "", header,
                  "|---|---|" + "---|" * len(seeds)]
        for name, envs in table.items():
            for env, runs in envs.items():
                cells = [f"{runs[str(s)]:g}" if str(s) in runs else "" for s in seeds]
                lines.append(f"| {name} | {env} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _interval(ci: list[float] | None) -> str:
    return "(no CI: 1 run per env)" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (reports are written on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _legend_below(fig: Any, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """One legend for the whole figure, under its panels, so that long setting names never cover a curve."""
    fig.tight_layout()  # panels and their labels fill the figure; the legend goes just under its lower edge
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=7, frameon=False)


def _profile_figure(results: Sequence[dict[str, Any]], score: str, seed: int) -> Any:
    plt = _pyplot()

    library, _ = _import_rliable()
    from rliable import plot_utils

    matrices, _ = score_matrices(results, score)
    top = max(1.0, max(float(m.max()) for m in matrices.values()))
    taus = np.linspace(0.0, top, 41)
    profiles: dict[str, Any] = {}
    cis: dict[str, Any] = {}
    for name, matrix in matrices.items():
        with _numpy_global_seed(seed):
            one, band = library.create_performance_profile({name: matrix}, taus, reps=500)
        profiles[name], cis[name] = one[name], band[name]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         xlabel=rf"normalised {score} score ($\tau$)")
    _legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def performance_profile(
    results: Sequence[dict[str, Any]], path: str | Path, score: str = "final", seed: int = 0
) -> Path:
    """Save the performance profiles (fraction of runs with normalised score > tau) with bootstrap bands, seeded per
    setting like ``aggregate``'s intervals (rliable resamples with numpy's global generator)."""
    return _save(_profile_figure(results, score, seed), path, dpi=120)


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")  # "tight": the legend under the panels is part of the picture
    _pyplot().close(fig)
    return path


def mean_curves(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Raw learning curves over every finished run, counted or not: {env: {setting: {"step", "mean", "min", "max"}}}
    (lists, at the steps every run of that setting and env evaluated) and "runs" (how many)."""
    grouped: dict[str, dict[str, list[dict[int, float]]]] = {}
    for r in results:
        curve = {int(p["step"]): float(p["mean"]) for p in r["curve"]}
        grouped.setdefault(r["spec"]["env"], {}).setdefault(r["setting"], []).append(curve)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for env, settings in sorted(grouped.items()):
        for setting, curves in sorted(settings.items()):
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            values = np.array([[c[s] for s in steps] for c in curves]).reshape(len(curves), len(steps))
            out.setdefault(env, {})[setting] = {
                "step": [float(s) for s in steps], "mean": values.mean(axis=0).tolist(),
                "min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist(), "runs": len(curves),
            }
    return out


def _curves_figure(results: Sequence[dict[str, Any]]) -> Any:
    plt = _pyplot()

    curves = mean_curves(results)
    cols = min(len(curves), 3)
    rows = -(-len(curves) // cols)
    every = sorted({setting for settings in curves.values() for setting in settings})
    colour = {setting: f"C{i % 10}" for i, setting in enumerate(every)}  # one colour per setting in every panel
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.3 * rows), squeeze=False)
    lines: dict[str, Any] = {}
    for ax, (env, settings) in zip(axes.flat, curves.items(), strict=False):
        for setting, c in settings.items():
            (lines[setting],) = ax.plot(c["step"], c["mean"], color=colour[setting])
            ax.fill_between(c["step"], c["min"], c["max"], color=colour[setting], alpha=0.15)
        ax.set_title(env, fontsize=9)
        ax.set_xlabel("real steps", fontsize=8)
        ax.set_ylabel("evaluation return", fontsize=8)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    runs = {s: sorted({c[s]["runs"] for c in curves.values() if s in c}) for s in every}
    labels = [f"{s} ({_count_runs(runs[s][0])} per env)" if len(runs[s]) == 1
              else f"{s} ({runs[s][0]}-{runs[s][-1]} runs per env)" for s in every]
    _legend_below(fig, [lines[s] for s in every], labels)
    return fig


def learning_curves(results: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Save one panel per env: each setting's mean evaluation return against real steps, its runs' range shaded;
    one legend under the panels (a setting has the same colour in every panel)."""
    return _save(_curves_figure(results), path, dpi=110)


def write_report(out: str | Path, reps: int = 2000) -> dict[str, Path]:
    """Aggregate ``out/runs/*/result.json`` into ``report.md``, ``report.json``, performance-profile PNGs and the
    learning curves (``learning_curves.png``)."""
    from drama_wm.sweep import load_results, sweep_progress

    out = Path(out)
    results = load_results(out)
    report = aggregate(results, reps=reps)
    report["runs"] = len(results)
    if (out / "sweep.json").exists():
        report["progress"] = sweep_progress(out)
    paths = {"markdown": out / "report.md", "json": out / "report.json"}
    paths["markdown"].write_text(markdown(report))
    paths["json"].write_text(json.dumps(report, indent=1))
    for score in SCORES:
        paths[f"profile_{score}"] = performance_profile(results, out / f"performance_profile_{score}.png", score)
    paths["curves"] = learning_curves(results, out / "learning_curves.png")
    return paths



def _count_runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"

__all__ = ["aggregate", "curve_auc", "final_returns", "learning_curves", "left_out", "markdown", "mean_curves",
           "normalisers", "performance_profile", "score_matrices", "write_report"]
