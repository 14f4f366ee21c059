"""Cost of the env data checks (drama_wm.env_checks) per real step: CartPole and an 84x84x3 uint8 Atari-sized frame.

Times ``step()`` of an env that returns a fixed observation, with and without :class:`CheckEnvData` around it (the
difference is the wrapper call plus the checks), and the checks alone.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/env_checks.py
"""

from __future__ import annotations

import timeit

import gymnasium as gym
import numpy as np
from _common import cpu_name  # this script's folder is on sys.path when it runs

from drama_wm.env_checks import CheckEnvData, observation_problem, reward_problem


class FixedEnv(gym.Env):
    """Returns the same observation and reward 1.0 forever (so only the checks' cost differs)."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, space: gym.spaces.Box) -> None:
        self.observation_space = space
        self._obs = space.sample()

    def reset(self, *, seed=None, options=None):
        return self._obs, {}

    def step(self, action):
        return self._obs, 1.0, False, False, {}


def per_call_us(fn, number: int = 100_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    cases = {
        "CartPole (float32 [4])": gym.make("CartPole-v1").observation_space,
        "Atari frame (uint8 84x84x3)": gym.spaces.Box(0, 255, (84, 84, 3), np.uint8),
        "float32 image 84x84x3": gym.spaces.Box(0.0, 1.0, (84, 84, 3), np.float32),
    }
    print(f"{cpu_name()}, one thread")
    print("| observation | checks alone (us) | wrapped step - bare step (us) |")
    print("|---|---|---|")
    for name, space in cases.items():
        bare = FixedEnv(space)
        checked = CheckEnvData(FixedEnv(space))
        obs = bare._obs
        alone = per_call_us(lambda: (observation_problem(obs, space), reward_problem(1.0)))  # noqa: B023
        overhead = per_call_us(lambda: checked.step(0)) - per_call_us(lambda: bare.step(0))  # noqa: B023
        print(f"| {name} | {alone:.2f} | {overhead:.2f} |")


if __name__ == "__main__":
    main()
