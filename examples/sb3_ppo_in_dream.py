"""PPO from stable-baselines3 learning inside Drama's world model, then playing the real game.

Drama runs paper Algorithm 1 (real steps, world-model updates on DFS batches); the behaviour learner is SB3's PPO
trained on imagined rollouts (``SB3Learner.ppo``) instead of the built-in actor-critic. Needs ``pip install
drama-wm[sb3]``.

    python examples/sb3_ppo_in_dream.py --steps 2000                  # CartPole-v1 on CPU, a few minutes
    python examples/sb3_ppo_in_dream.py --env ALE/Pong-v5 --device cuda --steps 100000
"""

from __future__ import annotations

import argparse

from drama_wm import Drama, DramaConfig
from drama_wm.integrations.sb3 import SB3Learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium id; ALE ids get the Atari 100k protocol")
    parser.add_argument("--steps", type=int, default=20_000, help="real environment steps (Atari 100k: 100000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel dreams (default: 64 CPU, 256 Atari)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--logdir", default=None, help="TensorBoard events, scalars.csv and checkpoint.pt go here")
    args = parser.parse_args()

    atari = args.env.startswith("ALE/")
    # Atari: the paper's XS world model and schedule. Vector envs: the CPU preset (tiny model, train ratio 1/2).
    config = DramaConfig.xs() if atari else DramaConfig.cpu_demo()
    learner = SB3Learner.ppo(num_envs=args.num_envs or (256 if atari else 64))
    agent = Drama(args.env, config, learner=learner, seed=args.seed, device=args.device, logdir=args.logdir)
    agent.learn(args.steps)

    result = agent.evaluate(n_episodes=args.eval_episodes, deterministic=True)
    n = args.eval_episodes
    print(f"{args.env}: evaluation return {result['mean']:.1f} +- {result['std']:.1f} over {n} episodes")


if __name__ == "__main__":
    main()
