"""MinAtar (Young & Tian, 2019) for Drama: five Atari-inspired games on 10x10xC boolean grids.

Needs the optional extra ``pip install drama-wm[minatar]``; nothing here imports ``minatar`` until an env is made.
The games keep MinAtar's defaults: sticky actions with probability 0.1 and difficulty ramping on (REFERENCE.md).
Ids are MinAtar's Gymnasium ids, ``MinAtar/<Game>-v1`` (minimal action set) or ``-v0`` (all 6 actions).

Drama sees the boolean grid as a uint8 frame with cells 0 or 255 (:class:`BinaryGridObservation`): the replay stores
one byte per cell, and the world model's preprocessing (divide by 255) gives back exactly 0 and 1. Frames of at most
16x16 go through the grid encoder (``WorldModelConfig.grid_encoder``). The model-free baselines of the sweep flatten
the grid to a float vector instead (:func:`make_minatar_vector`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")


def is_minatar_id(env_id: str) -> bool:
    """Whether ``env_id`` names a MinAtar game ("MinAtar/Breakout-v1")."""
    return env_id.startswith("MinAtar/")


def register_minatar() -> None:
    """Register MinAtar's Gymnasium ids (``minatar.gym.register_envs``); one clear error when minatar is missing."""
    if "MinAtar/Breakout-v1" in gym.registry:
        return
    try:
        import minatar.gym
    except ImportError:
        raise ImportError("MinAtar envs need the minatar package: pip install drama-wm[minatar]") from None
    minatar.gym.register_envs()


class BinaryGridObservation(gym.ObservationWrapper):
    """bool (H, W, C) grids -> uint8 (H, W, C) frames with cells 0 / 255."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or space.dtype != np.bool_ or len(space.shape) != 3:
            raise TypeError(f"BinaryGridObservation expects a bool Box of shape (H, W, C), got {space}")
        self.observation_space = gym.spaces.Box(0, 255, space.shape, np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.uint8) * np.uint8(255)


def _check_id(env_id: str) -> None:
    register_minatar()
    if env_id not in gym.registry:
        games = ", ".join(f"MinAtar/{g}-v1" for g in MINATAR_GAMES)
        raise ValueError(f"unknown MinAtar id {env_id!r}: use one of {games} (or -v0 for the full action set)")


def make_minatar(env_id: str, **kwargs: Any) -> gym.Env:
    """The MinAtar game ``env_id`` as Drama sees it: uint8 (10, 10, C) frames with cells 0 / 255."""
    _check_id(env_id)
    return BinaryGridObservation(gym.make(env_id, **kwargs))


def make_minatar_vector(env_id: str, **kwargs: Any) -> gym.Env:
    """The MinAtar game ``env_id`` for model-free baselines: the grid flattened to a float32 vector of 0 / 1."""
    _check_id(env_id)
    env = gym.make(env_id, **kwargs)
    flat = gym.wrappers.FlattenObservation(env)
    space = flat.observation_space
    return gym.wrappers.TransformObservation(
        flat,
        lambda obs: np.asarray(obs, dtype=np.float32),
        gym.spaces.Box(0.0, 1.0, space.shape, np.float32),
    )


__all__ = [
    "MINATAR_GAMES",
    "BinaryGridObservation",
    "is_minatar_id",
    "make_minatar",
    "make_minatar_vector",
    "register_minatar",
]
