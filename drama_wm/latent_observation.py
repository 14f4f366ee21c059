"""LatentObservation: the real environment seen through the world model, with the features DreamEnv gives."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from drama_wm.world_model import RecurrentState, WorldModel


class LatentObservation(gym.Wrapper):
    """Observations become the world model's features [z_t, d_{t-1}] (float32, ``feature_dim``).

    One O(1) recurrent update per real step: the posterior of the new frame, and one backbone step on the token of
    the previous (z, a). The recurrent state is carried, never recomputed from a window of past frames, and it is reset
    at every ``reset()`` (an episode start, including the life-loss "resets" of :func:`drama_wm.envs.make_atari`).
    A policy trained on :class:`~drama_wm.DreamEnv`'s latent observations acts here unchanged.

    Args:
        env: a single (non-vector) env whose spaces match the world model's.
        world_model: the world model; it is read, never trained, here.
        sample: sample z from the posterior (as in training) or take its mode (deterministic features).

    Attributes:
        raw_observation: the last observation of the wrapped env (what a replay buffer stores).
    """

    def __init__(self, env: gym.Env, world_model: WorldModel, sample: bool = True) -> None:
        super().__init__(env)
        if env.observation_space != world_model.observation_space or env.action_space != world_model.action_space:
            raise ValueError(
                f"env spaces {env.observation_space}, {env.action_space} differ from the world model's "
                f"{world_model.observation_space}, {world_model.action_space}"
            )
        self.world_model = world_model
        self.sample = sample
        dim = world_model.config.feature_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.raw_observation: Any = None
        self._device = world_model.prior_head.weight.device
        self._generator = torch.Generator(device=self._device)
        self._generator.seed()
        self._state: RecurrentState | None = None
        self._z: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._generator.manual_seed(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._state = self.world_model.initial_state(1, self._device)
        return self._features(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        with torch.no_grad():
            a = torch.as_tensor(np.asarray(action).reshape(1), device=self._device).long()
            self._state = self.world_model.advance(self._state, self._z, a)
        return self._features(obs), reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        """The carried recurrent state, last latent, last raw observation and sampling RNG (for exact resumes)."""
        carried = None
        if self._state is not None:
            carried = {"backbone": self._state.backbone, "d": self._state.d, "z": self._z}
        return {"generator": self._generator.get_state(), "carried": carried, "raw_observation": self.raw_observation}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])
        self.raw_observation = state["raw_observation"]
        carried = state["carried"]
        if carried is not None:
            to = self._device
            self._state = RecurrentState(tuple(s.to(to) for s in carried["backbone"]), carried["d"].to(to))
            self._z = carried["z"].to(to)

    def _features(self, obs: Any) -> np.ndarray:
        self.raw_observation = obs
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs), device=self._device).unsqueeze(0)
            self._z = self.world_model.encode(x, sample=self.sample, generator=self._generator)
            return self.world_model.features(self._z, self._state)[0].float().cpu().numpy()
