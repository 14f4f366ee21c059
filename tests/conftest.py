"""Shared fixtures: tiny envs and the torch seed. Test doubles and helpers are in helpers.py."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from drama_wm.envs import Catch


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture
def catch_env() -> Catch:
    return Catch(size=16, grid=8, max_steps=60)


@pytest.fixture
def cartpole_env() -> gym.Env:
    return gym.make("CartPole-v1")
