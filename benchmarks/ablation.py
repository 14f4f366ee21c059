r"""Ablations at CPU scale, DFS vs uniform sampling (paper Table 4) and Mamba-2 vs Mamba (Sec. 3.2.2), as a sweep.

A thin use of ``drama_wm.sweep``: every combination of ``--sampler`` and ``--backbone`` becomes one Drama setting
(``--set`` overrides of the preset), all of them run as Ray tasks into ``--out`` (resumable: run the same command
again to finish an interrupted ablation), then ``drama_wm.report`` aggregates them with rliable (final return and
area under the learning curve, IQM with stratified bootstrap CIs, probability of improvement between settings).

Each setting, starting from the preset:

* ``world_model.backbone`` replaced by the preset's backbone as that kind (the kind's defaults at the preset's
  d_model, n_layers, dropout and d_state; the preset's Mamba-2 head_dim does not carry over).
* ``sampler.kind`` replaced, and ``sampler.imagine_scale`` set to the preset's ratio of imagination starts to
  world-model starts, (b_img / behaviour_every) / (b / world_model_every) (cpu_demo: 64 / 16 = 4; 256 / 16 = 16
  before issue 13's right-sizing), as before.

    python benchmarks/ablation.py --env CartPole-v1 MinAtar/Breakout-v1 --seeds 0 1 2 3 4 5 6 7 8 9 \
        --steps 5000 --out sweeps/ablation --num-cpus 2

``--design one-at-a-time`` runs the reference (first sampler, first backbone) and each setting that changes one
factor from it: DFS vs uniform and Mamba-2 vs Mamba in three settings instead of four. Read each setting against the
reference; the report also lists the pair of non-reference settings, which differ in both factors. Runs go
seed-major across settings, so an ablation cut short compares the same seeds.

(The former process-pool version and its Welch / permutation tests are in git history; its results are in
``benchmarks/results/ablation_*.md``. Pixel Catch with keyword arguments needs a registered id, ``module:Id``.)
"""

from __future__ import annotations

import argparse
import itertools

from drama_wm.config import DramaConfig
from drama_wm.report import write_report
from drama_wm.run_spec import RunSpec, expand
from drama_wm.sweep import run_sweep

DESIGNS = ("factorial", "one-at-a-time")


def settings(preset: str, samplers: list[str], backbones: list[str], design: str = "factorial") -> list[list[str]]:
    """The ``--set`` overrides of each (sampler, backbone) setting. ``factorial``: every combination.
    ``one-at-a-time``: the first sampler with the first backbone (the reference), then each other sampler with the
    first backbone and each other backbone with the first sampler (one factor changed from the reference)."""
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    config = DramaConfig.preset(preset)
    ratio = (config.learner.num_envs / config.behaviour_every) / (config.batch_size / config.world_model_every)
    if design == "factorial":
        pairs = list(itertools.product(samplers, backbones))
    else:
        pairs = [(samplers[0], backbones[0])]
        pairs += [(s, backbones[0]) for s in samplers[1:]] + [(samplers[0], b) for b in backbones[1:]]
    return [
        [f"sampler.kind={sampler}", f"sampler.imagine_scale={ratio:g}", f"world_model.backbone={backbone}"]
        for sampler, backbone in pairs
    ]


def ablation_specs(
    envs: list[str], seeds: list[int], steps: int, preset: str, setting_overrides: list[list[str]], **options: int
) -> list[RunSpec]:
    """Every (seed, setting, env) run, seed-major across settings: an ablation cut short leaves the same seeds in
    every setting, so its comparisons stay paired."""
    return [spec for seed in seeds for overrides in setting_overrides
            for spec in expand(envs, [seed], steps, ["drama"], preset, overrides, **options)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=["CartPole-v1"])
    parser.add_argument("--sampler", nargs="+", default=["dfs", "uniform"])
    parser.add_argument("--backbone", nargs="+", default=["mamba2", "mamba"])
    parser.add_argument("--design", choices=DESIGNS, default="factorial",
                        help="every (sampler, backbone) combination, or one factor at a time from the first of each")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--preset", default="cpu_demo")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", default="sweeps/ablation")
    parser.add_argument("--num-cpus", type=int, default=None)
    parser.add_argument("--address", default=None)
    args = parser.parse_args()
    specs = ablation_specs(args.env, args.seeds, args.steps, args.preset,
                           settings(args.preset, args.sampler, args.backbone, args.design),
                           eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                           checkpoint_every=args.eval_every)
    run_sweep(specs, args.out, address=args.address, num_cpus=args.num_cpus)
    print(write_report(args.out)["markdown"].read_text())


if __name__ == "__main__":
    main()
