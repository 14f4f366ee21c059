"""The phases of one Drama step at the XS preset (train ratio 1, as in the paper) and the projected 100k-step run.

    python benchmarks/throughput.py                  # CPU
    python benchmarks/throughput.py --device cuda    # GPU
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import count_flops, machine, matmul_rate, time_fn, write_result
from world_model import forward_backward, random_replay

from drama_wm import ActorCritic, ActorCriticConfig, DreamEnv, LatentObservation, WorldModel, WorldModelConfig
from drama_wm.envs import make_atari


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)

    env = make_atari(args.game, seed=0)
    replay = random_replay(4000, n_actions=int(env.action_space.n))
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.xs()).to(device)
    learner = ActorCritic(ActorCriticConfig())
    dream = DreamEnv(model, replay, context_length=8, horizon=16, device=device, seed=0, **learner.dream_options)
    learner.bind(dream)
    batch = replay.sample(16, 128, "world_model", device=device)
    actions = torch.randint(0, model.n_actions, (dream.num_envs,), device=device)

    def imagine():
        dream.reset()
        for _ in range(dream.horizon):
            dream.step(actions)

    real = LatentObservation(env, model)
    features, _ = real.reset(seed=0)

    def act_and_step():
        nonlocal features
        action = int(learner.act(features[None])[0])
        features, _, terminated, truncated, _ = real.step(action)
        if terminated or truncated:
            features, _ = real.reset()

    t_wm = time_fn(lambda: model.update(batch), device, repeats=args.repeats)
    t_imagine = time_fn(imagine, device, repeats=args.repeats)
    t_learn = time_fn(learner.learn, device, repeats=args.repeats)
    t_env = time_fn(act_and_step, device, warmup=5, repeats=50)
    phases = [
        ("world-model update (16 x 128)", t_wm, count_flops(lambda: forward_backward(model, batch))),
        ("imagination (1024 x 16, incl. context)", t_imagine, count_flops(imagine)),
        ("actor-critic update (learn minus imagination)", t_learn - t_imagine,
         count_flops(learner.learn) - count_flops(imagine)),
        ("real env step + acting (O(1) features)", t_env, count_flops(act_and_step)),
    ]
    peak = matmul_rate(device)
    total = sum(t for _, t, _ in phases)
    rows = [f"| {name} | {t * 1e3:.1f} ms | {t / total:.0%} | {f / 1e9:.2f} | {f / max(t, 1e-9) / peak:.0%} |"
            for name, t, f in phases]
    text = (
        f"Drama step phases, XS preset, {args.game}\n\n"
        f"- machine: {machine(device)}; measured fp32 matmul rate {peak / 1e9:.0f} GFLOP/s\n"
        f"- command: `python benchmarks/throughput.py --device {args.device} --game {args.game}`\n\n"
        "| phase | time | share | GFLOP | fraction of matmul rate |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n| **one real step (train ratio 1)** | **{total * 1e3:.0f} ms** | | | |\n\n"
        f"Projected 100k-step Atari run (updates from step 1032 on): "
        f"{(100_000 * t_env + 98_968 * (total - t_env)) / 3600:.1f} h\n"
    )
    print(text)
    write_result(f"throughput_{device.type}.md", text)


if __name__ == "__main__":
    main()
