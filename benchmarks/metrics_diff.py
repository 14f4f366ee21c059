"""Does a speed change keep learning unchanged? Compare the logged metrics of two checkouts, update by update.

Runs ``Drama("CartPole-v1", DramaConfig.cpu_demo(), seed=0, device="cpu")`` for ``--steps`` real steps on one thread in
a fresh process per checkout (the current one, and ``--baseline-rev`` in a temporary ``git worktree``), records every
metric the driver records, and prints per metric the largest relative difference and the first record that differs.
Bitwise-equal world-model losses mean the world model, its batches and the real episodes are unchanged; behaviour
metrics that differ by float rounding (~1e-6 relative) mean the same learning up to summation order.

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


def record(steps: int, seed: int) -> list[dict[str, float]]:
    """Every metric dict the driver records during ``steps`` real steps, in order."""
    import torch

    torch.set_num_threads(1)
    from drama_wm import Drama, DramaConfig

    agent = Drama("CartPole-v1", DramaConfig.cpu_demo(), seed=seed, device="cpu")
    rows: list[dict[str, float]] = []
    original = agent._record

    def keep(metrics: dict[str, float]) -> None:
        rows.append({k: float(v) for k, v in metrics.items()})
        original(metrics)

    agent._record = keep
    agent.learn(steps, progress_bar=False)
    return rows


def run(checkout: Path, steps: int, seed: int) -> list[dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(checkout), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--steps", str(steps), "--seed", str(seed)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-rev", default="359af51", help="git revision to compare with")
    parser.add_argument("--steps", type=int, default=700, help="real steps (cpu_demo warms up for 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(record(args.steps, args.seed)))
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
    print(f"{len(base)} records over {args.steps} real steps, seed {args.seed}: {args.baseline_rev} vs current\n")
    print("\n".join(compare(base, current)))


if __name__ == "__main__":
    main()
