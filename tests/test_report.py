"""drama-wm report: known numbers on a synthetic sweep (IQM, mean, median, CIs, AUC, normalisation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rliable")

from drama_wm import report as report_module
from drama_wm.cli import main
from drama_wm.report import (
    aggregate,
    curve_auc,
    left_out,
    markdown,
    mean_curves,
    performance_profile,
    score_matrices,
)


def _result(setting: str, env: str, seed: int, curve: list[tuple[int, float]]) -> dict:
    learner = "drama" if setting.startswith("drama") else setting
    return {
        "spec": {"env": env, "seed": seed, "learner": learner},
        "setting": setting,
        "name": f"{env}-{setting}-{seed}",
        "final_return": curve[-1][1],
        "curve": [{"step": s, "mean": m, "returns": [m]} for s, m in curve],
    }


def _synthetic() -> list[dict]:
    # A: final returns 10, 20, 60, 100 on CartPole (best seen 100 -> normalised 0.1, 0.2, 0.6, 1.0)
    # B: final returns 5, 5, 5, 5 with a curve that rises from 0
    results = [_result("A", "CartPole-v1", s, [(100, 0.0), (200, r)]) for s, r in enumerate([10, 20, 60, 100])]
    results += [_result("B", "CartPole-v1", s, [(100, 0.0), (200, 5.0)]) for s in range(4)]
    return results


def test_report_gives_known_iqm_mean_median_and_intervals_that_contain_them() -> None:
    report = aggregate(_synthetic(), reps=500)
    assert report["normalisation"]["CartPole-v1"] == {"kind": "best", "best": 100.0}
    a = report["scores"]["final"]["settings"]["A"]
    # normalised 0.1, 0.2, 0.6, 1.0: IQM drops the lowest and highest quarter -> mean(0.2, 0.6) = 0.4
    assert a["IQM"]["value"] == pytest.approx(0.4)
    assert a["mean"]["value"] == pytest.approx(0.475)
    # rliable's median is the median over envs of each env's mean score: one env here, so 0.475 too
    assert a["median"]["value"] == pytest.approx(0.475)
    for metric in ("IQM", "mean", "median"):
        low, high = a[metric]["ci"]
        assert low <= a[metric]["value"] <= high and low < high
    b = report["scores"]["final"]["settings"]["B"]
    assert b["IQM"]["value"] == pytest.approx(0.05) and b["IQM"]["ci"] == pytest.approx([0.05, 0.05])
    # every run of A beats every run of B: P(A > B) = 1
    assert report["scores"]["final"]["probability_of_improvement"]["A > B"]["value"] == pytest.approx(1.0)
    # AUC: trapezoid from (100, 0) to (200, x) over a span of 100 steps = x / 2
    a_auc = report["scores"]["auc"]["settings"]["A"]
    assert a_auc["mean"]["value"] == pytest.approx(0.475 / 2)


def test_the_bootstrap_is_reproducible_per_setting_and_leaves_numpys_global_generator_alone() -> None:
    # rliable 1.2 resamples with numpy's global generator, not the RandomState it is given: unseeded, two calls differ
    np.random.seed(123)  # noqa: NPY002
    first = aggregate(_synthetic(), reps=300)
    after_first = np.random.random()  # noqa: NPY002
    # another global state must not change the report
    np.random.seed(999)  # noqa: NPY002
    assert aggregate(_synthetic(), reps=300) == first
    np.random.seed(123)  # noqa: NPY002
    aggregate(_synthetic(), reps=300)
    # the caller's global stream goes on as if aggregate had not run
    assert np.random.random() == after_first  # noqa: NPY002
    assert first["bootstrap"]["reps"] == 300 and first["bootstrap"]["seed"] == 0
    # a setting's interval depends on its own runs only: adding a setting "0" (below the best, so the same
    # normalisation; bootstrapped before A and B, as settings go in sorted order) leaves A's intervals and P(A > B)
    c = [_result("0", "CartPole-v1", s, [(100, 0.0), (200, r)]) for s, r in enumerate([30, 40, 70, 80])]
    with_c = aggregate([*c, *_synthetic()], reps=300)
    for score in ("final", "auc"):
        assert with_c["scores"][score]["settings"]["A"] == first["scores"][score]["settings"]["A"]
        pairs = with_c["scores"][score]["probability_of_improvement"]
        assert pairs["A > B"] == first["scores"][score]["probability_of_improvement"]["A > B"]
    assert aggregate(_synthetic(), reps=300, seed=1) != first  # the seed is what fixes the draws
    # the two directions of a pair agree: P(B > A) = 1 - P(A > B), the interval mirrored
    pairs = with_c["scores"]["final"]["probability_of_improvement"]
    for x, y in (("A", "B"), ("0", "A"), ("0", "B")):
        there, back = pairs[f"{x} > {y}"], pairs[f"{y} > {x}"]
        assert back["value"] == pytest.approx(1 - there["value"])
        assert back["ci"] == pytest.approx([1 - there["ci"][1], 1 - there["ci"][0]])


def test_curve_auc_and_human_normalisation() -> None:
    assert curve_auc([{"step": 0, "mean": 0.0}, {"step": 10, "mean": 1.0}, {"step": 30, "mean": 1.0}]) == (
        pytest.approx((5 + 20) / 30)
    )
    # Atari 100k games are human-normalised (Pong: random -20.7, human 14.6), not divided by the best
    results = [_result("A", "Pong", 0, [(100, -20.7)]), _result("A", "Pong", 1, [(100, 14.6)])]
    matrices, envs = score_matrices(results)
    assert envs == ["Pong"] and np.allclose(np.sort(matrices["A"][:, 0]), [0.0, 1.0])


def test_report_command_writes_markdown_json_and_profiles(tmp_path: Path) -> None:
    for r in _synthetic():
        folder = tmp_path / "runs" / r["name"]
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(r))
    assert main(["report", str(tmp_path), "--reps", "200"]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["scores"]["final"]["settings"]["A"]["mean"]["value"] == pytest.approx(0.475)
    assert "| A | 4 | 0.400 [" in (tmp_path / "report.md").read_text()
    for score in ("final", "auc"):
        assert (tmp_path / f"performance_profile_{score}.png").stat().st_size > 1000
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    # run again: the same results give the same files
    written = {p.name: p.read_bytes() for p in tmp_path.glob("*.*")}
    assert main(["report", str(tmp_path), "--reps", "200"]) == 0
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.*")} == written


def test_performance_profile_bands_are_seeded(tmp_path: Path) -> None:
    # ten runs on two envs: the bootstrap bands differ from draw to draw unless the draws are seeded
    scores = np.random.default_rng(0).uniform(0.0, 100.0, size=(10, 2))
    results = [_result("A", env, s, [(100, float(scores[s, e]))])
               for e, env in enumerate(("CartPole-v1", "Pendulum")) for s in range(10)]
    pictures = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)  # noqa: NPY002 (what rliable draws from when unseeded)
        pictures.append(performance_profile(results, tmp_path / f"{global_seed}.png").read_bytes())
    assert pictures[0] == pictures[1]
    assert performance_profile(results, tmp_path / "other.png", seed=5).read_bytes() != pictures[0]


def test_legends_sit_under_the_panels_and_cover_no_curve() -> None:
    # setting names are long ("drama[cpu_demo] sampler.kind=... world_model.backbone=..."): a legend inside a panel
    # hid the curves it names
    long = "drama[cpu_demo] sampler.kind=uniform sampler.imagine_scale=4 world_model.backbone=mamba2"
    results = [_result(name, env, s, [(100, 10.0 * s + 1), (200, 20.0 * s + 2)])
               for name in ("A " + long, "B " + long) for env in ("Pong", "CartPole-v1") for s in range(3)]
    for fig in (report_module._curves_figure(results), report_module._profile_figure(results, "auc", 0)):
        fig.canvas.draw()
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert len(legends) == 1
        (legend,) = legends
        assert legend.get_texts()[0].get_text().startswith("A " + long)
        box = legend.get_window_extent()
        for ax in fig.axes:
            if ax.axison:
                assert not box.overlaps(ax.get_window_extent()), ax.get_title()
                assert box.y1 <= ax.get_tightbbox().y0  # under the panel, its tick labels and axis label
        report_module._pyplot().close(fig)


def test_learning_curve_labels_give_the_runs_per_env() -> None:
    # B has 3 runs on CartPole but only 2 on Pong
    results = [_result(name, env, s, [(100, 1.0 + s), (200, 2.0 + s)])
               for name in ("A", "B") for env in ("Pong", "CartPole-v1") for s in range(3)
               if (name, env, s) != ("B", "Pong", 2)]
    fig = report_module._curves_figure(results)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["A (3 runs per env)", "B (2-3 runs per env)"]
    report_module._pyplot().close(fig)


def test_report_on_a_folder_without_a_sweep_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no sweep" in capsys.readouterr().err


def test_two_runs_of_one_setting_env_and_seed_are_refused_not_pooled() -> None:
    # e.g. a sweep run again after its preset changed: same setting label, another config_digest
    results = [*_synthetic(), {**_result("A", "CartPole-v1", 1, [(100, 0.0), (200, 90.0)]), "name": "other-run"}]
    with pytest.raises(ValueError, match=r"two runs of 'A' on CartPole-v1 with seed 1: CartPole-v1-A-1 and other"):
        score_matrices(results)


def test_a_partial_sweep_reports_whole_seeds_and_lists_the_runs_it_did_not_count() -> None:
    # A finished seeds 0 and 1 on both envs and seed 2 on CartPole only; B finished one env only
    results = [_result("A", env, s, [(100, 10.0 * (s + 1))]) for env in ("CartPole-v1", "Pendulum") for s in (0, 1)]
    results += [_result("A", "CartPole-v1", 2, [(100, 30.0)]), _result("B", "Pendulum", 0, [(100, 5.0)])]
    assert left_out(results) == {"A": ["CartPole-v1-A-2"], "B": ["Pendulum-B-0"]}
    report = aggregate(results, reps=200)
    assert report["left_out"] == left_out(results)
    assert list(report["scores"]["final"]["settings"]) == ["A"]
    assert report["scores"]["final"]["settings"]["A"]["runs_per_env"] == 2
    # best seen: CartPole 30 (the uncounted run still sets the scale), Pendulum 20 -> A's seeds 0, 1 on CartPole
    assert report["scores"]["final"]["settings"]["A"]["per_env_mean"]["CartPole-v1"] == pytest.approx(0.5)
    assert "- B: 1 run (Pendulum-B-0)" in markdown(report)
    # the raw table shows every finished run, the uncounted ones included
    assert report["final_returns"]["A"]["CartPole-v1"] == {"0": 10.0, "1": 20.0, "2": 30.0}
    assert "| A | CartPole-v1 | 10 | 20 | 30 |" in markdown(report)
    assert "| B | Pendulum | 5 |  |  |" in markdown(report)
    with pytest.raises(ValueError, match=r"no setting has finished one seed on every env .*B: Pendulum-B-0"):
        score_matrices([*results[4:], _result("A", "Pendulum", 3, [(100, 1.0)])])


def test_one_run_per_env_gets_a_point_estimate_and_no_interval() -> None:
    results = [*_synthetic(), _result("C", "CartPole-v1", 0, [(100, 0.0), (200, 50.0)])]
    report = aggregate(results, reps=200)
    final = report["scores"]["final"]
    assert final["settings"]["C"]["IQM"] == {"value": pytest.approx(0.5), "ci": None}
    assert final["settings"]["A"]["IQM"]["ci"] is not None
    assert final["probability_of_improvement"]["A > C"]["ci"] is None
    assert final["probability_of_improvement"]["A > B"]["ci"] is not None
    assert "| C | 1 | 0.500 (no CI: 1 run per env) |" in markdown(report)


def test_mean_curves_average_the_steps_every_run_evaluated() -> None:
    results = _synthetic()  # A: (100, 0) then (200, 10 / 20 / 60 / 100); B: (100, 0) then (200, 5)
    results.append({**_result("B", "CartPole-v1", 9, [(100, 2.0), (150, 3.0), (200, 7.0)])})  # extra step 150
    curves = mean_curves(results)["CartPole-v1"]
    assert curves["A"] == {"step": [100.0, 200.0], "mean": [0.0, 47.5], "min": [0.0, 10.0], "max": [0.0, 100.0],
                           "runs": 4}
    assert curves["B"]["step"] == [100.0, 200.0] and curves["B"]["runs"] == 5
    assert curves["B"]["mean"] == pytest.approx([0.4, 5.4]) and curves["B"]["max"] == [2.0, 7.0]
