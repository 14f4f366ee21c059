"""Time of one world-model update (forward + backward + optimiser) beside its FLOPs and the matmul ceiling.

    python benchmarks/world_model.py                      # XS preset, batch 16 x 128, CPU
    python benchmarks/world_model.py --device cuda        # the same on a GPU (bf16 autocast, as in training)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import count_flops, machine, matmul_rate, time_fn, write_result

from drama_wm import ReplayBuffer, WorldModel, WorldModelConfig


def random_replay(steps: int, n_actions: int = 6, seed: int = 0, device: torch.device | None = None) -> ReplayBuffer:
    """A buffer of random 64x64 frames (the update's cost does not depend on pixel values); observations also kept
    on ``device`` if given."""
    rng = np.random.default_rng(seed)
    space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    replay = ReplayBuffer(space, gym.spaces.Discrete(n_actions), steps, seed=seed, device=device)
    first = np.zeros(steps, bool)
    first[::400] = True
    replay.add_batch(rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8), rng.integers(0, n_actions, steps),
                     rng.normal(size=steps).astype(np.float32), rng.random(steps) < 0.01, first)
    return replay


def forward_backward(model: WorldModel, batch) -> None:
    """The arithmetic of one update (loss, backward) without the optimiser, for FLOP counting."""
    model.train()
    loss, _ = model.loss(batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="xs", choices=["xs", "s"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)

    config = getattr(WorldModelConfig, args.preset)()
    replay = random_replay(4000)
    model = WorldModel(replay.observation_space, replay.action_space, config).to(device)
    batch = replay.sample(args.batch, args.length, "world_model", device=device)
    seconds = time_fn(lambda: model.update(batch), device, warmup=2, repeats=args.repeats)

    flops = count_flops(lambda: forward_backward(model, batch))
    peak = matmul_rate(device)
    n_params = sum(p.numel() for p in model.parameters())
    precision = "bf16 autocast" if device.type == "cuda" and config.autocast_bf16 else "fp32"
    text = (
        f"World-model update, {args.preset.upper()} preset ({n_params / 1e6:.2f}M parameters), batch "
        f"{args.batch} x {args.length}, {precision}\n\n"
        f"- machine: {machine(device)}\n"
        f"- command: `python benchmarks/world_model.py --device {args.device} --preset {args.preset} "
        f"--batch {args.batch} --length {args.length}`\n\n"
        "| time per update | counted FLOPs (matmul + conv, fwd + bwd) | achieved | fp32 matmul rate | fraction |\n"
        "|---|---|---|---|---|\n"
        f"| {seconds * 1e3:.0f} ms | {flops / 1e9:.1f} GFLOP | {flops / seconds / 1e9:.1f} GFLOP/s | "
        f"{peak / 1e9:.0f} GFLOP/s | {flops / seconds / peak:.0%} |\n"
    )
    print(text)
    write_result(f"world_model_{device.type}_{args.preset}.md", text)


if __name__ == "__main__":
    main()
