"""The phases of one Drama step at the XS preset (train ratio 1, as in the paper) and the projected 100k-step run.

Each phase is timed as the driver runs it: the world-model phase includes drawing its 16 x 128 batch from the
replay buffer, the imagination phase the DFS draw of 1024 start contexts and reading them.

    python benchmarks/throughput.py                  # CPU
    python benchmarks/throughput.py --device cuda    # GPU, with the CUDA speed-ups on (the library's defaults)
    python benchmarks/throughput.py --device cuda --no-cuda-graph --host-replay --no-channels-last  # all off

The switches turn off one speed-up each (DreamEnv ``cuda_graph``, ``DramaConfig.replay_on_device``,
``WorldModelConfig.channels_last``); ``--tf32`` lets fp32 matmuls use TF32 tensor cores (off in torch by default).
"""

from __future__ import annotations

import argparse
import shlex
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
    parser.add_argument("--no-cuda-graph", action="store_true", help="step the dream eagerly")
    parser.add_argument("--host-replay", action="store_true", help="gather replay batches on the host and copy them")
    parser.add_argument("--no-channels-last", action="store_true", help="convolutions in the default NCHW layout")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 matmuls")
    parser.add_argument("--out", default=None, help="result file name in benchmarks/results")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32

    env = make_atari(args.game, seed=0)
    on_device = device if device.type == "cuda" and not args.host_replay else None
    replay = random_replay(4000, n_actions=int(env.action_space.n), device=on_device)
    config = WorldModelConfig.xs(channels_last=not args.no_channels_last)
    model = WorldModel(env.observation_space, env.action_space, config).to(device)
    learner = ActorCritic(ActorCriticConfig())
    dream = DreamEnv(model, replay, context_length=8, horizon=16, device=device, seed=0,
                     cuda_graph=not args.no_cuda_graph, **learner.dream_options)
    learner.bind(dream)
    actions = torch.randint(0, model.n_actions, (dream.num_envs,), device=device)

    def update_world_model():
        model.update(replay.sample(16, 128, "world_model", device=device))

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

    batch = replay.sample(16, 128, "world_model", device=device)
    t_wm = time_fn(update_world_model, device, repeats=args.repeats)
    t_imagine = time_fn(imagine, device, repeats=args.repeats)
    t_learn = time_fn(learner.learn, device, repeats=args.repeats)
    t_env = time_fn(act_and_step, device, warmup=5, repeats=50)
    dream.cuda_graph = False  # FlopCounterMode counts eager ops; a graph replay would hide them
    phases = [
        ("world-model update (sample 16 x 128 + update)", t_wm, count_flops(lambda: forward_backward(model, batch))),
        ("imagination (1024 x 16, incl. context)", t_imagine, count_flops(imagine)),
        ("actor-critic update (learn minus imagination)", t_learn - t_imagine,
         count_flops(learner.learn) - count_flops(imagine)),
        ("real env step + acting (O(1) features)", t_env, count_flops(act_and_step)),
    ]
    peak = matmul_rate(device)
    total = sum(t for _, t, _ in phases)
    rows = [f"| {name} | {t * 1e3:.1f} ms | {t / total:.0%} | {f / 1e9:.2f} | {f / max(t, 1e-9) / peak:.0%} |"
            for name, t, f in phases]
    switches = {"cuda graph": not args.no_cuda_graph, "replay on device": on_device is not None,
                "channels-last": not args.no_channels_last, "tf32 matmul": args.tf32}
    text = (
        f"Drama step phases, XS preset, {args.game}\n\n"
        f"- machine: {machine(device)}; measured fp32 matmul rate {peak / 1e9:.0f} GFLOP/s\n"
        f"- command: `{shlex.join(['python', 'benchmarks/throughput.py', *sys.argv[1:]])}`\n"
        f"- speed-ups: {', '.join(f'{k} ' + ('on' if v else 'off') for k, v in switches.items())}\n\n"
        "| phase | time | share | GFLOP | fraction of matmul rate |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n| **one real step (train ratio 1)** | **{total * 1e3:.0f} ms** | | | |\n\n"
        f"Projected 100k-step Atari run (updates from step 1032 on): "
        f"{(100_000 * t_env + 98_968 * (total - t_env)) / 3600:.1f} h\n"
    )
    print(text)
    write_result(args.out or f"throughput_{device.type}.md", text)


if __name__ == "__main__":
    main()
