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

(The former process-pool version and its Welch / permutation tests are in git history; its results are in
``benchmarks/results/ablation_*.md``. Pixel Catch with keyword arguments needs a registered id, ``module:Id``.)
"""

from __future__ import annotations

import argparse
import itertools

from drama_wm.config import DramaConfig
from drama_wm.report import write_report
from drama_wm.sweep import expand, run_sweep


def settings(preset: str, samplers: list[str], backbones: list[str]) -> list[list[str]]:
    """The ``--set`` overrides of each (sampler, backbone) combination."""
    config = DramaConfig.preset(preset)
    ratio = (config.learner.num_envs / config.behaviour_every) / (config.batch_size / config.world_model_every)
    return [
        [f"sampler.kind={sampler}", f"sampler.imagine_scale={ratio:g}", f"world_model.backbone={backbone}"]
        for sampler, backbone in itertools.product(samplers, backbones)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=["CartPole-v1"])
    parser.add_argument("--sampler", nargs="+", default=["dfs", "uniform"])
    parser.add_argument("--backbone", nargs="+", default=["mamba2", "mamba"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--preset", default="cpu_demo")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", default="sweeps/ablation")
    parser.add_argument("--num-cpus", type=int, default=None)
    parser.add_argument("--address", default=None)
    args = parser.parse_args()
    specs = [
        spec
        for overrides in settings(args.preset, args.sampler, args.backbone)
        for spec in expand(args.env, args.seeds, args.steps, ["drama"], args.preset, overrides,
                           eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                           checkpoint_every=args.eval_every)
    ]
    run_sweep(specs, args.out, address=args.address, num_cpus=args.num_cpus)
    print(write_report(args.out)["markdown"].read_text())


if __name__ == "__main__":
    main()
