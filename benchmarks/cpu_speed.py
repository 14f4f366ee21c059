"""Steady-state real steps per second of ``DramaConfig.cpu_demo()`` on CartPole-v1 (or ``--env``), with a per-phase
breakdown.

Builds ``Drama("CartPole-v1", DramaConfig.cpu_demo(), seed=0, device="cpu")``, runs the 500 warm-up steps and a few
updates more, then times ``--steps`` real steps. Phases (summing to the wall time of those steps, up to the driver's
own bookkeeping):

- env + acting: the real CartPole step, the O(1) world-model features and the actor's action (driver timer "env");
- world-model update: drawing the 16 x 32 DFS batch plus one optimiser step (driver timer "world_model");
- behaviour update, split into the dream reset (b_img start contexts, 64 in cpu_demo: DFS draw + world model over them),
  the 16 dream steps, and the rest (lambda-returns, percentiles, actor and critic losses, backward and optimiser steps).

Phases are measured by wrapping the driver's timers and the bound DreamEnv's ``reset``/``step`` on the instance, so
the same measurement runs unchanged on any checkout that has this driver API. ``--baseline-rev REV`` makes a
temporary ``git worktree`` of REV and runs the identical measurement in a subprocess with PYTHONPATH pointing at it,
alternating baseline and current ``--rounds`` times, and reports both and their ratio.

    taskset -c 1 python benchmarks/cpu_speed.py --baseline-rev 359af51      # one pinned core, 1 torch thread
    python benchmarks/cpu_speed.py --threads 2 --steps 200                  # the current checkout only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PHASES = ("env", "world_model", "dream_reset", "dream_steps", "actor_critic", "other")
PHASE_NAMES = {
    "env": "env + acting",
    "world_model": "world-model update (incl. batch sampling)",
    "dream_reset": "behaviour: dream reset",
    "dream_steps": "behaviour: 16 dream steps",
    "actor_critic": "behaviour: actor-critic loss + update",
    "other": "driver bookkeeping",
}


# ---------------------------------------------------------------------------------------------------------- worker
def _timers(agent: Any) -> dict[str, float]:
    """The driver's phase timers (``agent.progress.timers``; ``agent._timers`` in checkouts before issue 12)."""
    progress = getattr(agent, "progress", None)
    return dict(progress.timers if progress is not None else agent._timers)


def measure(
    steps: int,
    extra_warmup: int,
    threads: int,
    seed: int,
    compile_step: bool = False,
    env: str = "CartPole-v1",
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run one agent past warm-up and time ``steps`` steady-state real steps; returns steps/s and phase seconds."""
    import torch

    torch.set_num_threads(threads)
    import drama_wm
    from drama_wm import Drama, DramaConfig

    config = DramaConfig.cpu_demo()
    if overrides:  # only checkouts with drama-wm sweep have the parser; without --set any checkout works
        from drama_wm.sweep import apply_overrides

        config = apply_overrides(config, overrides)
    agent = Drama(env, config, seed=seed, device="cpu")
    dream = agent.dream
    compiled = compile_step and hasattr(dream, "compile_step")  # checkouts without the option step eagerly
    if compiled:
        dream.compile_step = True
    spent = {"dream_reset": 0.0, "dream_steps": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return wrapper

    dream.reset = timed("dream_reset", dream.reset)
    dream.step = timed("dream_steps", dream.step)

    build_start = time.perf_counter()
    agent.learn(agent.config.warmup_steps + extra_warmup, progress_bar=False)
    warmup_seconds = time.perf_counter() - build_start

    timers_before = _timers(agent)
    spent_before = dict(spent)
    start = time.perf_counter()
    agent.learn(steps, progress_bar=False)
    wall = time.perf_counter() - start
    timers_after = _timers(agent)
    delta = {k: timers_after[k] - timers_before[k] for k in ("env", "world_model", "behaviour")}
    phases = {
        "env": delta["env"],
        "world_model": delta["world_model"],
        "dream_reset": spent["dream_reset"] - spent_before["dream_reset"],
        "dream_steps": spent["dream_steps"] - spent_before["dream_steps"],
    }
    phases["actor_critic"] = delta["behaviour"] - phases["dream_reset"] - phases["dream_steps"]
    phases["other"] = wall - sum(phases.values())
    return {
        "drama_wm": str(Path(drama_wm.__file__).resolve().parent),
        "steps": steps,
        "wall_seconds": wall,
        "steps_per_second": steps / wall,
        "warmup_seconds": warmup_seconds,
        "phases": phases,
        "threads": torch.get_num_threads(),
        "compile_step": compiled,
    }


# ---------------------------------------------------------------------------------------------------------- driver
def run_worker(checkout: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The measurement in a fresh interpreter importing drama_wm from ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS=str(args.threads))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--steps",
        str(args.steps),
        "--extra-warmup",
        str(args.extra_warmup),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--env",
        args.env,
        *(["--compile-step"] if args.compile_step else []),
        *[f"--set={s}" for s in args.set],
    ]
    out = subprocess.run(cmd, env=env, cwd=str(checkout), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker for {checkout} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result["drama_wm"]) != (checkout / "drama_wm").resolve():
        raise RuntimeError(f"worker imported drama_wm from {result['drama_wm']}, expected {checkout}")
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median steps/s over runs and median per-step milliseconds of every phase."""
    return {
        "steps_per_second": statistics.median(r["steps_per_second"] for r in runs),
        "all_steps_per_second": [r["steps_per_second"] for r in runs],
        "phase_ms": {p: statistics.median(1e3 * r["phases"][p] / r["steps"] for r in runs) for p in PHASES},
        "warmup_seconds": statistics.median(r["warmup_seconds"] for r in runs),
        "compile_step": any(r.get("compile_step", False) for r in runs),
    }


def machine_line(threads: int) -> str:
    import torch
    from _common import cpu_name  # this script's folder is on sys.path when it runs

    cpu = cpu_name()
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (
        f"{cpu}, {os.cpu_count()} cores (this process pinned to cores {affinity}), {threads} torch thread(s); "
        f"torch {torch.__version__}; python {sys.version.split()[0]}; {datetime.datetime.now():%Y-%m-%d %H:%M}"
    )


def load_average() -> str:
    """1-minute load average: other processes on the machine distort every number here, 2-thread runs most."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def git_rev(checkout: Path) -> str:
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return out.stdout.strip() + (" + uncommitted changes" if dirty else "")


def table(columns: dict[str, dict[str, Any]]) -> str:
    names = list(columns)
    head = "| phase (ms per real step) | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = [
        f"| {PHASE_NAMES[p]} | " + " | ".join(f"{columns[n]['phase_ms'][p]:.2f}" for n in names) + " |" for p in PHASES
    ]
    total = "| **total** | " + " | ".join(f"**{sum(columns[n]['phase_ms'].values()):.2f}**" for n in names) + " |"
    warm = (
        "| warm-up seconds (500 random + extra steps; includes any compilation) | "
        + " | ".join(
            f"{columns[n]['warmup_seconds']:.1f}" + (" (compiled step)" if columns[n]["compile_step"] else "")
            for n in names
        )
        + " |"
    )
    rate = "| **steps/s (median)** | " + " | ".join(f"**{columns[n]['steps_per_second']:.2f}**" for n in names) + " |"
    return head + "\n".join([*rows, total, warm, rate]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="timed steady-state real steps per run")
    parser.add_argument("--extra-warmup", type=int, default=20, help="real steps with updates before timing")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", default="CartPole-v1", help="any env id Drama takes, e.g. MinAtar/Breakout-v1")
    parser.add_argument("--rounds", type=int, default=2, help="runs per checkout (alternating with the baseline)")
    parser.add_argument("--baseline-rev", default=None, help="git revision to time side by side (temporary worktree)")
    parser.add_argument("--out", default="cpu_speed.md", help="result file in benchmarks/results ('' for none)")
    parser.add_argument(
        "--compile-step",
        action="store_true",
        help="turn on DreamEnv.compile_step where the checkout has it (compile time lands in the warm-up)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a cpu_demo field in every checkout timed, as drama-wm sweep --set (e.g. learner.num_envs=64)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = measure(args.steps, args.extra_warmup, args.threads, args.seed, args.compile_step, args.env, args.set)
        print(json.dumps(result))
        return

    # A terminated run (e.g. by ``timeout``) still removes its temporary worktree.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    checkouts = {"current": REPO}
    tmp = None
    if args.baseline_rev:
        tmp = Path(tempfile.mkdtemp(prefix="drama_baseline_"))
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tmp / "wt"), args.baseline_rev],
            check=True,
        )
        checkouts = {f"baseline {args.baseline_rev}": tmp / "wt", "current": REPO}
    revs = {name: git_rev(path) for name, path in checkouts.items()}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    loads = [load_average()]
    try:
        for round_ in range(args.rounds):
            for name, path in checkouts.items():
                result = run_worker(path, args)
                runs[name].append(result)
                print(
                    f"round {round_ + 1}/{args.rounds} {name:>20}: {result['steps_per_second']:6.2f} steps/s "
                    f"(warm-up {result['warmup_seconds']:.1f} s)",
                    flush=True,
                )
            loads.append(load_average())
    finally:
        if tmp is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / "wt")], check=False)
            shutil.rmtree(tmp, ignore_errors=True)
    summaries = {name: summarize(r) for name, r in runs.items()}
    lines = [
        f"# cpu_demo on {args.env}: steady-state real steps per second\n",
        f"- machine: {machine_line(args.threads)}",
        f"- 1-minute load average before and after each round: {', '.join(loads)} (other processes share the cores)",
        f"- command: `{shlex.join(['python', 'benchmarks/cpu_speed.py', *sys.argv[1:]])}`",
        f"- {args.steps} timed real steps after {500 + args.extra_warmup} (500 warm-up + {args.extra_warmup} "
        f"with updates), median of {args.rounds} run(s) per checkout, each in a fresh process",
        *(
            f"- {name}: {revs[name]} ({', '.join(f'{x:.2f}' for x in summaries[name]['all_steps_per_second'])} steps/s)"
            for name in checkouts
        ),
        "",
        table(summaries),
    ]
    if args.baseline_rev:
        base = summaries[f"baseline {args.baseline_rev}"]["steps_per_second"]
        lines.append(f"Speed-up of current over baseline: **{summaries['current']['steps_per_second'] / base:.2f}x**\n")
    text = "\n".join(lines)
    print(text)
    if args.out:
        out = REPO / "benchmarks" / "results" / args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
