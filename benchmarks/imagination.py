"""Imagination throughput of DreamEnv: O(1) recurrent steps vs recomputing from the context each step.

    python benchmarks/imagination.py                  # XS preset, 1024 dreams, CPU
    python benchmarks/imagination.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from gymnasium.vector import AutoresetMode

sys.path.insert(0, str(Path(__file__).parent))
from _common import count_flops, machine, matmul_rate, sync, time_fn, write_result
from world_model import random_replay

from drama_wm import DreamEnv, WorldModel, WorldModelConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--long", type=int, default=500, help="steps dreamed before the second step timing")
    parser.add_argument("--recompute", type=int, nargs="+", default=[1, 16, 64],
                        help="dream lengths at which to time recomputing from the context")
    args = parser.parse_args()
    device = torch.device(args.device)
    n = args.num_envs

    replay = random_replay(4000)
    model = WorldModel(replay.observation_space, replay.action_space, WorldModelConfig.xs()).to(device)
    dream = DreamEnv(model, replay, num_envs=n, context_length=8, horizon=10**9, array_type="torch",
                     autoreset_mode=AutoresetMode.DISABLED, device=device, seed=0)
    actions = torch.randint(0, model.n_actions, (n,), device=device)
    reset_seconds = time_fn(lambda: dream.reset(), device, warmup=1, repeats=3)

    # Warm every kernel first, then time the first step of fresh dreams (median over several resets).
    dream.reset(seed=0)
    for _ in range(5):
        dream.step(actions)
    first_times = []
    for _ in range(5):
        dream.reset()
        first_times.append(time_fn(lambda: dream.step(actions), device, warmup=0, repeats=1))
    step_first = sorted(first_times)[len(first_times) // 2]
    for _ in range(args.long):
        dream.step(actions)
    sync(device)
    step_long = time_fn(lambda: dream.step(actions), device, warmup=1, repeats=5)
    dream.cuda_graph = False  # FlopCounterMode counts eager ops; a graph replay would hide them
    step_flops = count_flops(lambda: dream.step(actions))

    # The approach O(1) stepping replaces: run the backbone over context + k tokens to get d for the next step.
    recompute = {}
    with torch.no_grad():
        for k in args.recompute:
            tokens = torch.randn(n, 8 + k, model.config.d_model, device=device)

            def again(tokens=tokens):
                d, _ = model.backbone(tokens)
                return model.heads(d[:, -1])

            recompute[k] = (time_fn(again, device, warmup=1, repeats=3), count_flops(again))

    peak = matmul_rate(device)
    rows = [
        f"| O(1) step after 1 step | {step_first * 1e3:.1f} ms | {n / step_first:,.0f} | {step_flops / 1e9:.2f} | "
        f"{step_flops / step_first / peak:.0%} |",
        f"| O(1) step after {args.long} steps | {step_long * 1e3:.1f} ms | {n / step_long:,.0f} | "
        f"{step_flops / 1e9:.2f} | {step_flops / step_long / peak:.0%} |",
    ]
    for k, (seconds, flops) in recompute.items():
        rows.append(f"| recompute from context at step {k} | {seconds * 1e3:.1f} ms | {n / seconds:,.0f} | "
                    f"{flops / 1e9:.2f} | {flops / seconds / peak:.0%} |")
    text = (
        f"Imagination, XS preset, {n} dreams, context 8\n\n"
        f"- machine: {machine(device)}; measured fp32 matmul rate {peak / 1e9:.0f} GFLOP/s\n"
        f"- command: `python benchmarks/imagination.py --device {args.device} --num-envs {n}`\n"
        f"- reset (DFS draw + parallel observe of 8 real steps for all dreams): {reset_seconds * 1e3:.0f} ms\n\n"
        "| what | time per step | imagined transitions/s | GFLOP per step | fraction of matmul rate |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(text)
    write_result(f"imagination_{device.type}.md", text)


if __name__ == "__main__":
    main()
