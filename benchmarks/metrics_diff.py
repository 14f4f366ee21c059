"""Does a speed change keep learning unchanged? Compare the logged metrics of two checkouts, update by update.

Runs ``Drama("CartPole-v1", DramaConfig.cpu_demo(), seed=0, device="cpu")`` for ``--steps`` real steps on one thread in
a fresh process per checkout (the current one, and ``--baseline-rev`` in a temporary ``git worktree``), records every
metric the driver records, and prints per metric the largest relative difference and the first record that differs.
Bitwise-equal world-model losses mean the world model, its batches and the real episodes are unchanged; behaviour
metrics that differ by float rounding (~1e-6 relative) mean the same learning up to summation order. Each run also
writes a logdir, and the two ``scalars.csv`` files are compared row by row (step, name, value; the wall-clock column
and ``time/`` scalars excluded; scalars that only one checkout logs are listed, not compared); ``--strict`` exits 1
when a shared row differs.

    taskset -c 1 python benchmarks/metrics_diff.py --baseline-rev 359af51 --steps 700
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def record(steps: int, seed: int, logdir: str) -> dict[str, list]:
    """Every metric dict the driver records during ``steps`` real steps, in order, and the rows of the run's
    ``scalars.csv`` (step, name, value) without wall-clock time."""
    import csv

    import torch

    torch.set_num_threads(1)
    from drama_wm import Drama, DramaConfig

    agent = Drama("CartPole-v1", DramaConfig.cpu_demo(), seed=seed, device="cpu", logdir=logdir)
    rows: list[dict[str, float]] = []
    original = agent._record

    def keep(metrics: dict[str, float]) -> None:
        rows.append({k: float(v) for k, v in metrics.items()})
        original(metrics)

    agent._record = keep
    agent.learn(steps, progress_bar=False)
    with open(Path(logdir) / "scalars.csv", newline="") as f:
        scalars = [[row["step"], row["name"], row["value"]] for row in csv.DictReader(f)]
    return {"records": rows, "scalars": scalars}


def run(checkout: Path, steps: int, seed: int) -> dict[str, list]:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1")
    logdir = tempfile.mkdtemp(prefix="drama_metrics_run_")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--steps", str(steps), "--seed", str(seed)]
    cmd += ["--logdir", logdir]
    out = subprocess.run(cmd, env=env, cwd=str(checkout), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker for {checkout} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(base: list[dict[str, float]], current: list[dict[str, float]]) -> list[str]:
    if len(base) != len(current):
        return [f"different numbers of records: {len(base)} vs {len(current)}"]
    worst: dict[str, tuple[float, int, float, float]] = {}
    first: dict[str, int] = {}
    for i, (a, b) in enumerate(zip(base, current, strict=True)):
        for key in a.keys() & b.keys():
            diff = abs(a[key] - b[key]) / max(abs(a[key]), 1e-6)
            if key not in worst or diff > worst[key][0]:
                worst[key] = (diff, i, a[key], b[key])
            if a[key] != b[key] and key not in first:
                first[key] = i
    lines = [
        "| metric | max relative difference | at record (base vs current) | first differing record |",
        "|---|---|---|---|",
    ]
    for key, (diff, i, a, b) in sorted(worst.items()):
        lines.append(f"| {key} | {diff:.2e} | {i} ({a:.6g} vs {b:.6g}) | {first.get(key, 'never')} |")
    return lines


def compare_scalars(base: list[list[str]], current: list[list[str]]) -> tuple[bool, list[str]]:
    """(identical, report lines) for two scalars.csv row lists, time/ scalars excluded."""

    def keep(rows: list[list[str]]) -> list[list[str]]:
        return [row for row in rows if not row[1].startswith("time/")]

    base, current = keep(base), keep(current)
    names_base, names_current = {r[1] for r in base}, {r[1] for r in current}
    shared = names_base & names_current
    lines = []
    for side, only in (("baseline", names_base - names_current), ("current", names_current - names_base)):
        if only:
            lines.append(f"scalars logged only by the {side}: {', '.join(sorted(only))}")
    a = [r for r in base if r[1] in shared]
    b = [r for r in current if r[1] in shared]
    if a == b:
        lines.append(f"scalars.csv: all {len(a)} shared rows identical ({len(shared)} scalars, time/ excluded)")
        return True, lines
    differing = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    lines.append(f"scalars.csv differs: {len(a)} vs {len(b)} shared rows, first difference at row {differing}")
    return False, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-rev", default="359af51", help="git revision to compare with")
    parser.add_argument("--steps", type=int, default=700, help="real steps (cpu_demo warms up for 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a shared scalars.csv row differs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--logdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(record(args.steps, args.seed, args.logdir)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="drama_metrics_")) / "wt"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tmp), args.baseline_rev], check=True
    )
    try:
        base = run(tmp, args.steps, args.seed)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp)], check=False)
        shutil.rmtree(tmp.parent, ignore_errors=True)
    current = run(REPO, args.steps, args.seed)
    count = len(base["records"])
    print(f"{count} records over {args.steps} real steps, seed {args.seed}: {args.baseline_rev} vs current\n")
    print("\n".join(compare(base["records"], current["records"])))
    same, lines = compare_scalars(base["scalars"], current["scalars"])
    print("\n" + "\n".join(lines))
    if args.strict and not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
