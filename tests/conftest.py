"""Shared fixtures: tiny envs and replay buffers filled with real transitions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm import RecurrentState, ReplayBuffer, WorldModel
from drama_wm.envs import Catch


class CountingWorldModel(WorldModel):
    """A world model whose dream is known exactly: after a (re)start d = 0 and every step adds 1 to every entry of d.

    reward = count + 0.1 * action; sub-env i terminates when its count reaches ``terminate_at[i]``. The count is the
    last entry of the latent observation (features end with d).
    """

    terminate_at: torch.Tensor

    def observe(self, obs, action, first, state=None, sample=True, generator=None):
        features, d, state = super().observe(obs, action, first, state, sample, generator)
        return features, d, RecurrentState(state.backbone, torch.zeros_like(state.d))

    def imagine_step(self, state, z, action, generator=None, uniform=None):
        d = state.d + 1
        count = d[:, 0]
        p_term = (count == self.terminate_at[: len(count)].to(count)).float()
        return RecurrentState(state.backbone, d), z, count + 0.1 * action.float(), p_term


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
