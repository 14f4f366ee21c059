"""Evaluate a policy in an env by whole games: a free function, as stable-baselines3's ``evaluate_policy``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from drama_wm.episodes import EpisodeTracker


@dataclass(frozen=True)
class Evaluation:
    """Returns of whole games (Atari: all lives) and their mean, standard deviation and lengths."""

    returns: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def as_dict(self) -> dict[str, Any]:
        return {"returns": list(self.returns), "lengths": list(self.lengths), "mean": self.mean, "std": self.std}


def evaluate_policy(
    policy: Callable[[Any], Any],
    env: gym.Env,
    n_episodes: int = 10,
    seed: int | None = None,
    max_steps: int | None = None,
) -> Evaluation:
    """Play ``n_episodes`` whole games of ``env`` with ``policy(observation) -> action`` and return their returns.

    The env is reset with ``seed`` once, then unseeded between games; it is not closed. ``max_steps`` (optional)
    bounds the total number of steps: reaching it raises, rather than returning fewer games than asked for.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive int, got {n_episodes!r}")
    tracker = EpisodeTracker()
    observation, _ = env.reset(seed=seed)
    steps = 0
    while len(tracker.finished) < n_episodes:
        if max_steps is not None and steps >= max_steps:
            raise RuntimeError(
                f"evaluation reached max_steps={max_steps} after {len(tracker.finished)} of {n_episodes} games"
            )
        observation, reward, terminated, truncated, info = env.step(policy(observation))
        steps += 1
        done = bool(terminated or truncated)
        tracker.step(float(reward), done, info, steps)
        if done:
            observation, _ = env.reset()
    return Evaluation(tracker.returns, [int(game["length"]) for game in tracker.finished])


__all__ = ["Evaluation", "evaluate_policy"]
