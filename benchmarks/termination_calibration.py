"""How often do a trained Drama agent's dreams end, against how often its real episodes end?

For each checkpoint (a Drama ``checkpoint.pt`` of the built-in actor-critic with its replay buffer, e.g. an unfinished
sweep run's):

1. Calibration on real data. The world model reads ``--windows`` windows of ``--length`` consecutive real steps from
   its replay, none overlapping another (teacher forcing with the posterior's most likely latents). On every step
   after the first ``--burn-in`` of a window, it compares the predicted termination probability p with the stored
   flag. It reports:
   - the real terminations and the sum of p (equal for a calibrated head);
   - how many steps cross the 0.5 threshold;
   - the share of real terminations at which p > 0.5.
2. The dreams. ``--dreams`` dreams of the checkpoint's own policy start by DFS (as in training) and run for the
   dream horizon, once with each DreamEnv ``termination`` mode. The hazard is terminations per step among the dreams
   still alive. The real hazards to compare with are the windows' terminations per step and those of the replay's
   newest ``--recent`` steps (the policy closest to the dreams').

    python benchmarks/termination_calibration.py RUN/checkpoint.pt [...] --out termination_calibration.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_result

from drama_wm import Drama, DreamEnv
from drama_wm.names import DREAM_TERMINATIONS


def calibration(agent: Drama, windows: int, length: int, burn_in: int, seed: int) -> dict[str, float]:
    """Predicted termination probabilities against the replay's flags, on ``windows`` random windows."""
    wm, replay = agent.world_model, agent.replay
    apart = replay.valid_starts(length)[::length]  # sorted storage indices: every length-th start overlaps no other
    if len(apart) < windows:
        raise ValueError(
            f"the replay holds {len(apart)} windows of {length} steps that do not overlap, not --windows {windows}: "
            "ask for fewer or shorter ones"
        )
    starts = np.random.default_rng(seed).choice(apart, windows, replace=False)
    probs, flags = [], []
    with torch.no_grad():
        for start in np.sort(starts):
            batch = replay.gather(np.array([start]), length)
            _, d, _ = wm.observe(batch.observation, batch.action, batch.first, sample=False)
            _, _, logit = wm.heads(d)
            probs.append(torch.sigmoid(logit)[0, burn_in:].numpy())
            flags.append(batch.terminated[0, burn_in:].numpy())
    p, t = np.concatenate(probs), np.concatenate(flags)
    return {
        "steps": len(p),
        "terminations": int(t.sum()),
        "sum_p": float(p.sum()),
        "over_half": int((p > 0.5).sum()),
        "caught": float((p[t] > 0.5).mean()) if t.any() else float("nan"),
    }


def recent_hazard(agent: Drama, steps: int) -> float:
    """Terminations per step over the last ``steps`` real steps in the replay (the policy closest to the dreams')."""
    replay = agent.replay
    steps = min(steps, len(replay))
    newest = replay.total_added % replay.capacity  # the slot after the newest step
    slots = (newest - 1 - np.arange(steps)) % replay.capacity
    return float(replay.field("terminated")[slots].mean())


def dream_hazard(agent: Drama, termination: str, dreams: int, seed: int) -> float:
    """Terminations per step among still-alive dreams of the agent's policy, with DreamEnv's ``termination``."""
    counts = agent.replay.imagine_counts.copy()  # DFS counters move while dreaming; restored below
    dream = DreamEnv(
        agent.world_model,
        agent.replay,
        num_envs=dreams,
        context_length=agent.config.context_length,
        horizon=agent.config.horizon,
        array_type="torch",
        autoreset_mode=AutoresetMode.DISABLED,
        termination=termination,
        seed=seed,
    )
    obs, _ = dream.reset()
    alive = torch.ones(dreams, dtype=torch.bool)
    ended = steps = 0
    with torch.no_grad():
        for _ in range(dream.horizon):
            obs, _, terminated, _, _ = dream.step(torch.as_tensor(agent.learner.act(obs)))
            steps += int(alive.sum())
            ended += int((terminated & alive).sum())
            alive &= ~terminated
    agent.replay.imagine_counts[:] = counts
    return ended / max(steps, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--burn-in", type=int, default=50)
    parser.add_argument("--dreams", type=int, default=1024)
    parser.add_argument("--recent", type=int, default=5000, help="real steps of the recent real hazard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="termination_calibration.md")
    args = parser.parse_args()
    if not 0 <= args.burn_in < args.length:
        parser.error(f"--burn-in must be in [0, --length), got {args.burn_in} with --length {args.length}")
    for name in ("windows", "dreams", "recent"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.manual_seed(args.seed)
    modes = " | ".join(f"dream hazard, {m}" for m in DREAM_TERMINATIONS)
    rows = [
        f"{machine(torch.device('cpu'))}; {args.windows} windows of {args.length} steps ({args.burn_in} burn-in), "
        f"{args.dreams} dreams",
        "",
        f"| run | step | real terminations | sum of p | steps with p > 0.5 | terminations with p > 0.5 | real hazard | "
        f"real hazard, last {args.recent:,} steps | {modes} |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(DREAM_TERMINATIONS),
    ]
    for path in args.checkpoints:
        agent = Drama.load(path, device="cpu")
        if agent.learner_kind != "actor-critic":
            parser.error(f"{path}: the dreams are run with the built-in actor-critic, not {agent.learner_kind!r}")
        stats = calibration(agent, args.windows, args.length, args.burn_in, args.seed)
        hazards = [dream_hazard(agent, mode, args.dreams, args.seed) for mode in DREAM_TERMINATIONS]
        real = stats["terminations"] / stats["steps"]
        run = path.parent.name if path.name == "checkpoint.pt" else path.stem
        row = (
            f"| {run} | {agent.num_timesteps:,} | {stats['terminations']} | "
            f"{stats['sum_p']:.1f} | {stats['over_half']} | {stats['caught']:.0%} | {real:.4f} | "
            f"{recent_hazard(agent, args.recent):.4f} | "
            + " | ".join(f"{h:.4f}" for h in hazards)
            + " |"
        )
        print(row, flush=True)
        rows.append(row)
    print(f"written to {write_result(args.out, chr(10).join(rows) + chr(10))}")


if __name__ == "__main__":
    main()
