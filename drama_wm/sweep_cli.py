"""``drama-wm sweep`` and ``drama-wm report``: the sweep's command-line face (registered by drama_wm.cli).

Nothing heavy is imported until a command runs, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from drama_wm.names import PRESETS, SWEEP_LEARNERS


def add_commands(commands: Any, parser_class: type[argparse.ArgumentParser], formatter: type[Any],
                 positive_int: Any, non_negative_int: Any) -> None:
    """Add the ``sweep`` and ``report`` subcommands to the ``drama-wm`` subparsers ``commands``."""
    sweep = commands.add_parser(
        "sweep",
        help="run envs x seeds x learners as resumable Ray tasks",
        description="Run every (env, learner, seed) combination as a Ray task with its own folder under --out\n"
        "(checkpoints, learning curve, result.json). Run the same command again to skip finished runs and resume\n"
        "unfinished ones; a task whose worker dies is retried from its checkpoint. Without --address Ray starts\n"
        "here with --num-cpus CPUs (one run per CPU); with --address the runs go to that Ray cluster (--out must\n"
        "then be on a file system every node sees). Needs pip install drama-wm[sweep] (and [minatar], [sb3]).",
        formatter_class=formatter,
    )
    sweep.add_argument("--env", nargs="+", required=True, metavar="ENV",
                       help="Gymnasium ids, e.g. CartPole-v1 MinAtar/Breakout-v1 (module:Id imports module first)")
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED", help="seeds")
    sweep.add_argument("--steps", type=positive_int, required=True, metavar="N", help="real steps per run")
    sweep.add_argument("--preset", choices=PRESETS, default="cpu_demo", help="Drama's DramaConfig preset")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="DramaConfig field, dotted for nested ones (sampler.kind=uniform, "
                       "world_model.backbone=mamba); repeat for several")
    sweep.add_argument("--learner", nargs="+", choices=SWEEP_LEARNERS, default=["drama"], metavar="LEARNER",
                       help=f"learners: {', '.join(SWEEP_LEARNERS)} (the baselines train SB3 on the real env)")
    sweep.add_argument("--out", required=True, metavar="DIR", help="sweep folder (runs/<run>/ for each run)")
    sweep.add_argument("--address", default=None, help="Ray cluster address ('auto', 'ray://host:10001')")
    sweep.add_argument("--num-cpus", type=positive_int, default=None, metavar="N",
                       help="CPUs of the local Ray instance, i.e. runs at once (default: all)")
    sweep.add_argument("--eval-every", type=positive_int, default=1000, metavar="E",
                       help="real steps between evaluations (the learning curve)")
    sweep.add_argument("--eval-episodes", type=positive_int, default=10, metavar="M",
                       help="deterministic episodes per evaluation")
    sweep.add_argument("--eval-max-steps", type=positive_int, default=10_000, metavar="T",
                       help="evaluation episodes are cut after T steps")
    sweep.add_argument("--checkpoint-every", type=non_negative_int, default=5000, metavar="K",
                       help="real steps between checkpoints (0: none until the end)")
    sweep.add_argument("--max-retries", type=non_negative_int, default=3, help="retries of a failed run")
    sweep.set_defaults(run=_cmd_sweep)

    report = commands.add_parser(
        "report",
        help="aggregate a sweep with rliable (IQM, CIs, probability of improvement, profiles)",
        description="Aggregate DIR/runs/*/result.json: per setting the IQM, mean and median normalised score with\n"
        "95% stratified bootstrap intervals, for the final return and the area under the learning curve, the\n"
        "probability of improvement between settings, and performance profiles. Atari 100k games are\n"
        "human-normalised; other envs are divided by the best evaluation return of any run of that env.\n"
        "Writes DIR/report.md, DIR/report.json, DIR/performance_profile_{final,auc}.png and DIR/learning_curves.png.",
        formatter_class=formatter,
    )
    report.add_argument("dir", metavar="DIR", help="the --out folder of drama-wm sweep")
    report.add_argument("--reps", type=positive_int, default=2000, help="bootstrap resamples")
    report.set_defaults(run=_cmd_report)


def _missing_extra(err: ImportError) -> ValueError:
    return ValueError(str(err))


def _cmd_sweep(args: argparse.Namespace) -> int:
    from collections import Counter

    from drama_wm.sweep import SweepFailed, expand, run_state, run_sweep

    specs = expand(
        args.env,
        args.seeds,
        args.steps,
        learners=args.learner,
        preset=args.preset,
        overrides=args.overrides,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        eval_max_steps=args.eval_max_steps,
        checkpoint_every=args.checkpoint_every,
    )
    states = Counter(run_state(args.out, spec) for spec in specs)
    print(f"{len(specs)} runs into {args.out}: {states['finished']} finished (skipped), {states['started']} to resume, "
          f"{states['not started']} to start", file=sys.stderr)

    def show(result: dict[str, Any]) -> None:
        resumed = f", resumed from step {result['resumed_from']}" if result["resumed_from"] else ""
        print(f"done {result['name']}: final return {result['final_return']:.2f}, "
              f"{result['train_seconds']:.0f} s training{resumed}", file=sys.stderr)

    try:
        results = run_sweep(specs, args.out, address=args.address, num_cpus=args.num_cpus,
                            max_retries=args.max_retries, on_result=show)
    except ImportError as err:
        raise _missing_extra(err) from None
    except SweepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(results)} runs finished; aggregate with: drama-wm report {args.out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from drama_wm.report import write_report

    try:
        paths = write_report(args.dir, reps=args.reps)
    except ImportError as err:
        raise _missing_extra(err) from None
    print(paths["markdown"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


__all__ = ["add_commands"]
