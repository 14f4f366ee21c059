"""Which encoder/decoder fits MinAtar's 10x10xC boolean grids: the flattened-vector MLP or a small conv net?

For each game, frames of a random policy (sticky actions, MinAtar defaults) fill a training replay (seed 0) and a
held-out one (seed 1). A world model per encoder kind (the ``cpu_demo`` world model, ``grid_encoder`` set) takes
``--updates`` updates on batches of 16 x 32 from the training replay; we report, on held-out frames, the
reconstruction loss (summed squared error per frame, the world model's own term), the fraction of wrongly
reconstructed cells among the lit ones and among the dark ones (decoded at 0.5), and the time per update.

    python benchmarks/minatar_encoder.py --updates 300 --games Breakout Seaquest
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_result

from drama_wm import ReplayBuffer, WorldModel
from drama_wm.config import DramaConfig
from drama_wm.envs.minatar import make_minatar
from drama_wm.replay import collect


def collect_game(game: str, steps: int, seed: int) -> ReplayBuffer:
    return collect(make_minatar(f"MinAtar/{game}-v1"), steps, seed)


def held_out_errors(model: WorldModel, frames: torch.Tensor) -> tuple[float, float, float]:
    """(summed squared error per frame, error rate on lit cells, error rate on dark cells) on uint8 0/255 frames."""
    with torch.no_grad():
        z = model.encode(frames, sample=False)
        recon = model.decoder(z).permute(0, 2, 3, 1)
    target = frames.float() / 255.0
    sse = float((recon - target).pow(2).flatten(1).sum(1).mean())
    wrong = (recon > 0.5) != (target > 0.5)
    lit = target > 0.5
    return sse, float(wrong[lit].float().mean()), float(wrong[~lit].float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["Breakout", "Seaquest"])
    parser.add_argument("--kinds", nargs="+", default=["mlp", "conv"])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--steps", type=int, default=5000, help="random-policy steps per replay")
    parser.add_argument("--out", default="minatar_encoder.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    base = DramaConfig.cpu_demo()
    rows = [f"# MinAtar encoder choice ({args.updates} updates, batch {base.batch_size} x {base.sequence_length})",
            "", machine(torch.device("cpu")), "",
            "| game | encoder | parameters | held-out recon SSE / frame | lit cells wrong | dark cells wrong "
            "| ms / update |", "|---|---|---|---|---|---|---|"]
    for game in args.games:
        train, test = collect_game(game, args.steps, 0), collect_game(game, args.steps, 1)
        frames = torch.tensor(test.field("observation")[: len(test)][:: max(1, len(test) // 2000)])
        for kind in args.kinds:
            torch.manual_seed(0)
            config = replace(base.world_model, grid_encoder=kind)
            model = WorldModel(train.observation_space, train.action_space, config)
            params = sum(p.numel() for p in model.encoder.parameters()) + sum(
                p.numel() for p in model.decoder.parameters()
            )
            start = time.perf_counter()
            for _ in range(args.updates):
                model.update(train.sample(base.batch_size, base.sequence_length, "world_model"))
            ms = 1000 * (time.perf_counter() - start) / args.updates
            model.eval()
            sse, lit, dark = held_out_errors(model, frames)
            row = f"| {game} | {kind} | {params:,} | {sse:.3f} | {lit:.1%} | {dark:.2%} | {ms:.0f} |"
            print(row, flush=True)
            rows.append(row)
    path = write_result(args.out, "\n".join(rows) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
