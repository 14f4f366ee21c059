"""Whole-game accounting (EpisodeTracker) and evaluate_policy, on envs whose returns are known exactly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from drama_wm.episodes import EpisodeTracker
from drama_wm.evaluation import evaluate_policy


class _Countdown(gym.Env):
    """Episode k (from 0) lasts k + 2 steps; reward = the action taken; the last step reports game over on every
    second episode (the others are 'life losses' that continue the game)."""

    observation_space = gym.spaces.Box(0, 10, (1,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self) -> None:
        self.episode, self.t = -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == self.episode + 2
        info = {"episode_game_over": self.episode % 2 == 1} if done else {}
        return np.full(1, self.t, np.float32), float(action), done, False, info


def test_tracker_counts_games_not_lives():
    tracker = EpisodeTracker()
    assert tracker.step(1.0, False, {}, step=1) is None
    assert tracker.step(2.0, True, {"episode_game_over": False}, step=2) is None  # a life lost: the game goes on
    assert tracker.step(3.0, True, {"episode_game_over": True, "game_return": 9.0}, step=3) == 9.0  # env's score
    assert tracker.step(4.0, True, {}, step=4) == 4.0  # envs without the keys end a game with every episode
    assert tracker.finished == [{"return": 9.0, "length": 3, "step": 3}, {"return": 4.0, "length": 1, "step": 4}]
    tracker.step(5.0, False, {}, step=5)
    restored = EpisodeTracker()
    restored.load_state_dict(tracker.state_dict())
    assert restored.finished == tracker.finished and restored.current_return == 5.0
    restored.new_game()
    assert (restored.current_return, restored.current_length) == (0.0, 0)


def test_evaluate_policy_returns_whole_games():
    # Games: episodes 0+1 (2 + 3 steps), 2+3 (4 + 5 steps); the policy always plays action 2.
    result = evaluate_policy(lambda obs: 2, _Countdown(), n_episodes=2, seed=0)
    assert result.returns == [10.0, 18.0] and result.lengths == [5, 9]
    assert result.mean == 14.0 and result.std == 4.0
    assert result.as_dict() == {"returns": [10.0, 18.0], "lengths": [5, 9], "mean": 14.0, "std": 4.0}


def test_evaluate_policy_errors():
    with pytest.raises(ValueError, match="n_episodes must be a positive int, got 0"):
        evaluate_policy(lambda obs: 0, _Countdown(), n_episodes=0)
    with pytest.raises(RuntimeError, match="max_steps=6 after 1 of 2 games"):
        evaluate_policy(lambda obs: 0, _Countdown(), n_episodes=2, max_steps=6)
