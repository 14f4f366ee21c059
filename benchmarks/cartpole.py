"""Sample efficiency on CartPole-v1: Drama (built-in actor-critic or SB3 PPO in the dream) vs PPO on the real env.

    python benchmarks/cartpole.py --agent drama --seeds 0 1 2 --steps 20000
    python benchmarks/cartpole.py --agent drama-ppo --seeds 0 1 2 --steps 50000
    python benchmarks/cartpole.py --agent ppo --seeds 0 1 2 --steps 20000      # model-free baseline

Every ``--eval-every`` real steps the current policy plays ``--eval-episodes`` episodes on a fresh env; the table
reports the real steps at which the mean first reached the target and the final mean.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import torch
from _common import RESULTS, machine

from drama_wm import Drama, DramaConfig


def evaluate_sb3(model, episodes: int, seed: int) -> float:
    env = gym.make("CartPole-v1")
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_drama(seed: int, args: argparse.Namespace) -> list[tuple[int, float]]:
    learner = "actor-critic"
    config = DramaConfig.cpu_demo()
    if args.agent == "drama-ppo":
        from drama_wm.integrations.sb3 import SB3Learner

        learner = SB3Learner.ppo()
    agent = Drama("CartPole-v1", config, learner=learner, seed=seed, device=args.device)
    curve = []
    while agent.num_timesteps < args.steps:
        agent.learn(args.eval_every, progress_bar=False)
        mean = agent.evaluate(args.eval_episodes, deterministic=True)["mean"]
        curve.append((agent.num_timesteps, mean))
        print(f"seed {seed} step {agent.num_timesteps} eval {mean:.1f}", flush=True)
        if args.stop_at_target and mean >= args.target:
            break
    return curve


def run_ppo(seed: int, args: argparse.Namespace) -> list[tuple[int, float]]:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make("CartPole-v1"), seed=seed, device="cpu", verbose=0)
    curve = []
    while model.num_timesteps < args.steps:
        model.learn(args.eval_every, reset_num_timesteps=False)
        mean = evaluate_sb3(model, args.eval_episodes, seed=10_000)
        curve.append((model.num_timesteps, mean))
        print(f"seed {seed} step {model.num_timesteps} eval {mean:.1f}", flush=True)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", choices=["drama", "drama-ppo", "ppo"], default="drama")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=2_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stop-at-target", action="store_true", help="stop a seed once its eval mean reaches --target")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for seed in args.seeds:
        start = time.time()
        curve = run_ppo(seed, args) if args.agent == "ppo" else run_drama(seed, args)
        reached = next((step for step, mean in curve if mean >= args.target), None)
        rows.append({"seed": seed, "curve": curve, "reached": reached, "final": curve[-1][1],
                     "best": max(m for _, m in curve), "minutes": (time.time() - start) / 60})
    lines = [
        f"CartPole-v1, agent `{args.agent}`, {args.steps} real steps, eval {args.eval_episodes} episodes every "
        f"{args.eval_every} steps (deterministic policy), target {args.target:g}",
        "",
        f"- machine: {machine(torch.device(args.device))}",
        f"- command: `python benchmarks/cartpole.py --agent {args.agent} --seeds {' '.join(map(str, args.seeds))} "
        f"--steps {args.steps} --eval-every {args.eval_every} --target {args.target:g}"
        f"{' --stop-at-target' if args.stop_at_target else ''}`",
        "",
        "| seed | first step with mean >= target | best mean | final mean | wall-clock |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['reached'] or 'not reached'} | {r['best']:.1f} | {r['final']:.1f} | "
                     f"{r['minutes']:.1f} min |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    tag = f"{args.agent}_seeds{'-'.join(map(str, args.seeds))}"
    (RESULTS / f"cartpole_{tag}.md").write_text(text)
    (RESULTS / f"cartpole_{tag}.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
