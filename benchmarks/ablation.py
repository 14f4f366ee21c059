r"""Ablations of the Drama agent at CPU scale: DFS vs uniform sampling (paper Table 4), Mamba-2 vs Mamba (Sec. 3.2.2).

For every combination of ``--sampler`` and ``--backbone`` and every seed, the same agent (``DramaConfig.cpu_demo``
unless ``--preset``) learns for ``--steps`` real steps and then plays ``--eval-episodes`` episodes with the
deterministic (argmax) policy; the mean of those episodes is the run's final return. Per combination the table
gives the mean and sample std over seeds. Between two levels of a factor (dfs vs uniform within each backbone,
one backbone vs another within each sampler) it gives Welch's t statistic and a two-sided permutation test of the
difference in means (exact over all relabellings when there are at most 20,000, else 20,000 random ones), with the
verdict "difference larger than the noise" when |t| > 2 or p < 0.05. With 3 seeds per group the smallest possible
permutation p is 0.1, so there the verdict rests on |t| > 2, a rough bar (a 5% Welch test with 2-4 degrees of
freedom needs |t| of about 2.8-4.3).

Configuration of each combination, starting from the preset:

* backbone: ``world_model.backbone`` is replaced. The preset's ``backbone_kwargs`` configure its own backbone
  (cpu_demo: Mamba-2 with head_dim 32) and are dropped for any other one, which then gets its constructor defaults.
* sampler: ``sampler.kind`` is replaced, and ``sampler.imagine_scale`` is set to the preset's real ratio of
  imagination starts to world-model starts, (b_img / behaviour_every) / (b / world_model_every): DFS compares the
  imagination count b_i with the world-model count v_i in units of world-model batches, and the SamplerConfig
  default of 64 is the XS ratio 1024 / 16 (cpu_demo's is 256 / 16 = 16). Uniform sampling ignores the counts.
* pixel envs: ``world_model.image_size`` is set to the env's observation side (Catch-v0: 64, or ``size``).

Full runs, 3 seeds x 2 samplers x 2 backbones = 12 runs each, as measured on the 2-core CPU (one torch thread
per run, two runs at a time):

    python benchmarks/ablation.py --env CartPole-v1 --sampler dfs uniform --backbone mamba2 mamba \
        --seeds 0 1 2 --steps 2000                 # 3-4 minutes a run (measured one run at a time)
    python benchmarks/ablation.py --env drama_wm/Catch-v0 --env-kwargs '{"size": 16, "grid": 4}' \
        --sampler dfs uniform --backbone mamba2 mamba --seeds 0 1 2 --steps 2500 --jobs 2   # 51 minutes

``--jobs N`` runs N of them at once in forked processes of one torch thread each. Every run is seeded; with one
torch thread (``OMP_NUM_THREADS=1`` when running them one at a time) a run repeats exactly on the same CPU.

CartPole's 2000 steps stop where cpu_demo agents are still learning (the first seed measured reached the 475
target at about 2000 steps): after every run has saturated at 500 the ablation could show no difference. Catch is
played at 16x16 pixels (64x64 costs about 1.9 s per training step on this CPU: the conv encoder and decoder on
16 x 32 frames per update and 256 x 8 context frames per imagination start; 16 is the smallest size the encoder's
total stride of 16 allows) on a 4x4 board: on the default 8x8 board no run had started to learn after 1500 steps
(training return -0.7 to -1.0, random play -0.87), while on 4x4 a probe run went from random play (-0.5) to a
return of 18 by 2250 steps. By 2500 steps most agents play almost perfectly; at 1500 they are still learning
(BENCHMARKS.md has both).

Smoke tests (under a minute each):

    python benchmarks/ablation.py --steps 600 --seeds 0 --sampler dfs --backbone mamba2 --out /tmp/ablation.md
    python benchmarks/ablation.py --env drama_wm/Catch-v0 --env-kwargs '{"size": 16, "grid": 4}' --steps 600 \
        --seeds 0 --sampler dfs --backbone mamba2 --out /tmp/ablation_catch.md

Outputs: ``benchmarks/results/ablation_<env>.md`` and a ``.json`` with every evaluation and training-episode
return and the real step at which each training episode ended (``/`` in the env id becomes ``_``).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import multiprocessing
import shlex
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine

from drama_wm import Drama, DramaConfig
from drama_wm.driver import make_env
from drama_wm.replay import SAMPLER_KINDS
from drama_wm.sequence import KINDS

PRESETS = {"cpu_demo": DramaConfig.cpu_demo, "tiny": DramaConfig.tiny, "xs": DramaConfig.xs, "s": DramaConfig.s}
PERMUTATION_SAMPLES = 20_000
#: Paper Table 4 (Atari 100k, 26 games, mean human-normalised score): the only published number for this ablation.
PAPER_TABLE4 = "paper Table 4 (Atari 100k, mean human-normalised score): DFS 105%, uniform 80%"


def env_spec(env_id: str, env_kwargs: dict[str, Any]) -> str | Callable[[], gym.Env]:
    """What Drama is built from: the id itself (Drama's own env making, incl. the Atari 100k protocol), or with
    keyword arguments a zero-argument factory of ``gym.make(env_id, **env_kwargs)``."""
    if not env_kwargs:
        return env_id
    import drama_wm.envs  # noqa: F401  (registers drama_wm/Catch-v0 and drama_wm/GridWorld-v0)

    if env_id not in gym.registry or env_id.startswith("ALE/"):
        raise ValueError(f"--env-kwargs needs a registered non-Atari Gymnasium id, got {env_id!r}")
    return functools.partial(gym.make, env_id, **env_kwargs)  # picklable, for --jobs


def configure(preset: str, env: str | Callable[[], gym.Env], sampler: str, backbone: str) -> DramaConfig:
    """The preset with the given sampler kind and backbone, matched to the env's observation size (see above)."""
    config = PRESETS[preset]()
    world_model = config.world_model
    if backbone != world_model.backbone:
        world_model = replace(world_model, backbone=backbone, backbone_kwargs={})
    probe = make_env(env)
    shape = probe.observation_space.shape
    probe.close()
    if shape is not None and len(shape) == 3:  # H x W x C image
        if shape[0] != shape[1]:
            raise ValueError(f"the env has {shape[0]}x{shape[1]} images; the world model needs square ones")
        world_model = replace(world_model, image_size=shape[0])
    # Starts drawn per real step by imagination and by the world model; DFS compares their counts (see above).
    imagination_starts = config.actor_critic.num_envs / config.behaviour_every
    world_model_starts = config.batch_size / config.world_model_every
    return replace(
        config,
        world_model=world_model,
        sampler=replace(config.sampler, kind=sampler, imagine_scale=imagination_starts / world_model_starts),
    )


def _single_threaded(*run_args: Any) -> dict[str, Any]:
    torch.set_num_threads(1)
    return train_and_evaluate(*run_args)


def train_and_evaluate(
    env: str | Callable[[], gym.Env], config: DramaConfig, seed: int, tag: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Learn for args.steps real steps, printing progress, then evaluate. Returns the run's JSON record."""
    agent = Drama(env, config, seed=seed, device=args.device)
    start = time.perf_counter()
    while agent.num_timesteps < args.steps:
        agent.learn(min(args.log_every, args.steps - agent.num_timesteps), progress_bar=False)
        recent = [e["return"] for e in agent.episodes[-10:]]
        shown = f"{np.mean(recent):.1f}" if recent else "-"
        print(f"{tag} step {agent.num_timesteps}/{args.steps} training return (last 10 episodes) {shown}", flush=True)
    train_seconds = time.perf_counter() - start
    # A fresh env: from the id Drama was built with, or from the factory.
    evaluation = agent.evaluate(args.eval_episodes, deterministic=True, env=None if isinstance(env, str) else env)
    seconds = time.perf_counter() - start
    print(f"{tag} final return {evaluation['mean']:.1f} ± {evaluation['std']:.1f} ({seconds / 60:.1f} min)", flush=True)
    return {
        "seed": seed,
        "final_return": evaluation["mean"],
        "eval_returns": evaluation["returns"],
        "train_returns": [e["return"] for e in agent.episodes],
        "train_steps": [e["step"] for e in agent.episodes],  # the real step at which each training episode ended
        "train_seconds": train_seconds,
        "seconds": seconds,
    }


def welch_t(a: np.ndarray, b: np.ndarray) -> float:
    """Welch's t statistic of mean(a) - mean(b); NaN with fewer than 2 values in a group, +-inf without spread."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    difference = a.mean() - b.mean()
    standard_error = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if standard_error == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return float(difference / standard_error)


def permutation_p(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """Two-sided permutation p-value of |mean(a) - mean(b)| under random relabelling of the pooled values."""
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    if math.comb(len(pooled), len(a)) <= PERMUTATION_SAMPLES:
        groups = np.array(list(itertools.combinations(range(len(pooled)), len(a))))
        in_a = np.zeros((len(groups), len(pooled)), dtype=bool)
        np.put_along_axis(in_a, groups, True, axis=1)
    else:
        in_a = np.argsort(rng.random((PERMUTATION_SAMPLES, len(pooled))), axis=1) < len(a)
    mean_a = (in_a * pooled).sum(1) / len(a)
    mean_b = (~in_a * pooled).sum(1) / len(b)
    # The tolerance keeps relabellings that tie with the observed split (float rounding) in the count.
    return float(np.mean(np.abs(mean_a - mean_b) >= observed - 1e-9))


def comparisons(runs: dict[tuple[str, str], list[dict[str, Any]]], rng: np.random.Generator) -> list[str]:
    """Markdown rows comparing every pair of levels of one factor within each level of the other."""
    samplers = list(dict.fromkeys(s for s, _ in runs))
    backbones = list(dict.fromkeys(b for _, b in runs))
    pairs = [((s1, b), (s2, b), f"backbone {b}") for b in backbones for s1, s2 in itertools.combinations(samplers, 2)]
    pairs += [((s, b1), (s, b2), f"sampler {s}") for s in samplers for b1, b2 in itertools.combinations(backbones, 2)]
    rows = []
    for first, second, within in pairs:
        a = np.array([r["final_return"] for r in runs[first]])
        b = np.array([r["final_return"] for r in runs[second]])
        t, p = welch_t(a, b), permutation_p(a, b, rng)
        if math.isnan(t):
            verdict = "n/a: needs >= 2 seeds per group"
        else:
            larger = abs(t) > 2 or p < 0.05
            verdict = "difference larger than the noise" if larger else "difference within the noise"
        label = f"{first[0]} vs {second[0]}" if first[1] == second[1] else f"{first[1]} vs {second[1]}"
        rows.append(
            f"| {label} | {within} | {a.mean():.1f} | {b.mean():.1f} | {a.mean() - b.mean():+.1f} | {t:.2f} | {p:.3f} "
            f"| {verdict} |"
        )
    return rows


def report(
    runs: dict[tuple[str, str], list[dict[str, Any]]], imagine_scale: float, args: argparse.Namespace, command: str
) -> str:
    lines = [
        f"# Ablation on {args.env}{f' {args.env_kwargs}' if args.env_kwargs else ''}: sampler x backbone",
        "",
        f"- command: `{command}`",
        f"- machine: {machine(torch.device(args.device))}",
        f"- setting: preset {args.preset}, {args.steps} real steps, final return = mean of {args.eval_episodes} "
        f"episodes of the deterministic policy after training; seeds {' '.join(map(str, args.seeds))}; "
        f"sampler imagine_scale {imagine_scale:g} (b_img / b of the preset)",
        f"- {PAPER_TABLE4}",
        "",
        "| sampler | backbone | final return (mean ± sample std over seeds) | per seed | minutes per run |",
        "|---|---|---|---|---|",
    ]
    for (sampler, backbone), records in runs.items():
        finals = np.array([r["final_return"] for r in records])
        spread = f" ± {finals.std(ddof=1):.1f}" if len(finals) > 1 else ""
        per_seed = ", ".join(f"{r['seed']}: {r['final_return']:.1f}" for r in records)
        minutes = np.mean([r["seconds"] for r in records]) / 60
        lines.append(f"| {sampler} | {backbone} | {finals.mean():.1f}{spread} | {per_seed} | {minutes:.1f} |")
    rows = comparisons(runs, np.random.default_rng(0))
    if rows:
        lines += [
            "",
            "Welch t of mean(first) - mean(second); p: two-sided permutation test; verdict: |t| > 2 or p < 0.05.",
            "",
            "| compared | within | mean first | mean second | difference | Welch t | permutation p | verdict |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--env", default="CartPole-v1", help="env id, e.g. CartPole-v1, drama_wm/Catch-v0 (default: %(default)s)")
    add(
        "--env-kwargs",
        type=json.loads,
        default={},
        help="""JSON keyword arguments of gym.make, e.g. '{"size": 16}' for Catch (default: none)""",
    )
    add("--sampler", nargs="+", choices=SAMPLER_KINDS, default=list(SAMPLER_KINDS), help="replay samplers to compare")
    add("--backbone", nargs="+", choices=list(KINDS), default=["mamba2", "mamba"], help="sequence backbones to compare")
    add("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed and combination (default: 0 1 2)")
    add("--steps", type=int, default=2000, help="real environment steps per run (default: %(default)s)")
    add("--preset", choices=list(PRESETS), default="cpu_demo", help="DramaConfig preset (default: %(default)s)")
    add("--eval-episodes", type=int, default=20, help="deterministic episodes after training (default: %(default)s)")
    add("--log-every", type=int, default=500, help="real steps between progress lines (default: %(default)s)")
    add("--device", default="cpu", help="torch device: cpu, cuda or auto (default: %(default)s)")
    add("--jobs", type=int, default=1, help="runs at once, in forked processes of one torch thread each (default: 1)")
    add("--out", type=Path, default=None, help="markdown output (default: benchmarks/results/ablation_<env>.md)")
    args = parser.parse_args(argv)
    for name in ("steps", "eval_episodes", "log_every", "jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not isinstance(args.env_kwargs, dict):
        parser.error(f"--env-kwargs must be a JSON object, got {args.env_kwargs!r}")
    args.sampler = list(dict.fromkeys(args.sampler))
    args.backbone = list(dict.fromkeys(args.backbone))
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    return args


def main() -> None:
    args = parse_args()
    command = shlex.join(["python", "benchmarks/ablation.py", *sys.argv[1:]])
    env = env_spec(args.env, args.env_kwargs)
    configs = {(s, b): configure(args.preset, env, s, b) for s in args.sampler for b in args.backbone}
    total = len(configs) * len(args.seeds)
    plan = [
        (key, seed, f"[run {index}/{total} {key[0]} {key[1]} seed {seed}]")
        for index, (key, seed) in enumerate(itertools.product(configs, args.seeds), start=1)
    ]
    if args.jobs == 1:
        records = [train_and_evaluate(env, configs[key], seed, tag, args) for key, seed, tag in plan]
    else:  # fork: the env factory and configs need no re-import; each run gets one torch thread
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_single_threaded, env, configs[key], seed, tag, args) for key, seed, tag in plan]
            records = [future.result() for future in futures]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (key, _, _), record in zip(plan, records, strict=True):
        runs.setdefault(key, []).append(record)
    imagine_scale = next(iter(configs.values())).sampler.imagine_scale  # the same for every combination
    text = report(runs, imagine_scale, args, command)
    print(text)
    out = args.out or RESULTS / f"ablation_{args.env.replace('/', '_')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw = [{"sampler": s, "backbone": b, **record} for (s, b), records in runs.items() for record in records]
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
