"""Soak test: a long run with the replay wrapping around many times, recording resident memory (RSS) over time.

Default: 100k real CartPole steps and 1M dream steps on the tiny preset with a 10k-step replay (it wraps 10 times).
Real steps are made cheap by updating rarely: the world model every ``--world-model-every`` (10) real steps, the learner
every B real steps, B chosen so that behaviour updates x num_envs x horizon (the dream steps each update imagines)
reaches ``--dream-steps``. Scalars and the final checkpoint go to a temporary logdir, as in a real run.

RSS (VmRSS of /proc/self/status) is sampled every ``--sample-every`` real steps; after the buffer is full (and one
more capacity of steps to settle the allocator), RSS must not grow by more than ``--tolerance-mb``. Writes
``soak.csv`` (real step, dream steps, world-model updates, RSS MB, seconds) and ``summary.md`` to ``--out``; the exit
status is 1 when RSS grew.

    OMP_NUM_THREADS=1 nice -n 10 taskset -c 1 python benchmarks/soak.py
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, cpu_name  # this script's folder is on sys.path when it runs

from drama_wm import Drama, DramaConfig
from drama_wm.learners.actor_critic import ActorCriticConfig


def rss_mb() -> float:
    """Resident set size of this process in MiB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-steps", type=int, default=100_000)
    parser.add_argument("--dream-steps", type=int, default=1_000_000, help="at least this many imagined steps")
    parser.add_argument("--capacity", type=int, default=10_000, help="replay capacity (small: it wraps around)")
    parser.add_argument("--num-envs", type=int, default=64, help="imagined trajectories per behaviour update")
    parser.add_argument("--horizon", type=int, default=16, help="imagined steps per trajectory")
    parser.add_argument("--world-model-every", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--tolerance-mb", type=float, default=16.0, help="allowed RSS growth after the buffer is full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak")
    args = parser.parse_args(argv)

    per_update = args.num_envs * args.horizon
    updates_needed = math.ceil(args.dream_steps / per_update)
    behaviour_every = max(1, (args.real_steps - args.warmup) // updates_needed)
    config = DramaConfig.tiny(
        actor_critic=ActorCriticConfig.tiny(num_envs=args.num_envs),
        horizon=args.horizon,
        replay_capacity=args.capacity,
        warmup_steps=args.warmup,
        world_model_every=args.world_model_every,
        behaviour_every=behaviour_every,
        log_every=args.sample_every,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, float]] = []
    start = time.perf_counter()

    def sample(agent: Drama) -> None:
        if agent.num_timesteps % args.sample_every == 0:
            row = {
                "step": agent.num_timesteps,
                "dream_steps": agent.learner.updates * per_update,
                "wm_updates": agent.world_model.updates,
                "rss_mb": round(rss_mb(), 1),
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(",".join(str(v) for v in row.values()), flush=True)

    print(
        f"soak: {args.real_steps} real steps, replay capacity {args.capacity}, world model every "
        f"{args.world_model_every}, behaviour every {behaviour_every} ({per_update} dream steps each)",
        flush=True,
    )
    print("step,dream_steps,wm_updates,rss_mb,seconds", flush=True)
    rows.append({"step": 0, "dream_steps": 0, "wm_updates": 0, "rss_mb": round(rss_mb(), 1), "seconds": 0.0})
    with tempfile.TemporaryDirectory(prefix="drama_soak_") as logdir:
        agent = Drama("CartPole-v1", config, seed=args.seed, device="cpu", logdir=logdir)
        agent.learn(args.real_steps, callback=sample)
        checkpoint_mb = (Path(logdir) / "checkpoint.pt").stat().st_size / 2**20
        episodes = len(agent.episodes)
    elapsed = time.perf_counter() - start

    with open(args.out / "soak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    settled = [r for r in rows if r["step"] >= 2 * args.capacity]
    if len(settled) < 2:
        print("soak: too few samples after the buffer filled to judge growth", file=sys.stderr)
        return 2
    steps = np.array([r["step"] for r in settled], float)
    rss = np.array([r["rss_mb"] for r in settled], float)
    slope = float(np.polyfit(steps, rss, 1)[0]) * 100_000  # MB per 100k real steps
    growth = float(rss[-1] - rss[0])
    peak = max(r["rss_mb"] for r in rows)
    grew = growth > args.tolerance_mb
    dream = rows[-1]["dream_steps"]
    command = " ".join(["OMP_NUM_THREADS=1 python benchmarks/soak.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Soak: memory over a long run",
        "",
        f"- machine: {cpu_name()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); {datetime.date.today()}",
        f"- command: `{command}`",
        f"- run: {args.real_steps} real CartPole steps, {dream} dream steps ({agent.learner.updates} behaviour updates "
        f"x {args.num_envs} envs x {args.horizon} steps), {agent.world_model.updates} world-model updates, "
        f"{episodes} episodes; replay capacity {args.capacity} (wrapped {args.real_steps / args.capacity:.0f} times); "
        f"tiny preset, world model every {args.world_model_every}, behaviour every {behaviour_every}",
        f"- time: {elapsed / 60:.1f} min; final checkpoint {checkpoint_mb:.1f} MB",
        f"- RSS: {rows[0]['rss_mb']:.0f} MB at start, {settled[0]['rss_mb']:.0f} MB at step {settled[0]['step']} "
        f"(buffer full since step {args.capacity}), {settled[-1]['rss_mb']:.0f} MB at the end; peak {peak:.0f} MB",
        f"- growth after the buffer was full: {growth:+.1f} MB (fit: {slope:+.2f} MB per 100k steps); "
        f"tolerance {args.tolerance_mb:.0f} MB: {'GREW' if grew else 'no growth'}",
    ]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if grew else 0


if __name__ == "__main__":
    sys.exit(main())
