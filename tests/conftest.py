"""Shared fixtures: tiny envs and replay buffers filled with real transitions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm import ReplayBuffer
from drama_wm.envs import Catch


def fill_replay(env: gym.Env, steps: int, seed: int = 0, capacity: int | None = None, policy=None) -> ReplayBuffer:
    """Play ``steps`` real steps (random actions unless ``policy(env)`` is given) into a new buffer."""
    replay = ReplayBuffer(env.observation_space, env.action_space, capacity or steps, seed=seed)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    first = True
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n)) if policy is None else policy(env)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, float(reward), bool(terminated), first)
        first = False
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            first = True
    return replay


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture
def catch_env() -> Catch:
    return Catch(size=16, grid=8, max_steps=60)


@pytest.fixture
def cartpole_env() -> gym.Env:
    return gym.make("CartPole-v1")
