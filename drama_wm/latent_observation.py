"""LatentObservation: the real environment seen through the world model, with the features DreamEnv gives."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from drama_wm.carry import Carry, RecurrentState
from drama_wm.world_model import WorldModel


class LatentObservation(gym.Wrapper):
    """Observations become the world model's features [z_t, d_{t-1}] (float32, ``feature_dim``).

    One O(1) recurrent update per real step: the posterior of the new frame, and one backbone step on the token of
    the previous (z, a). The recurrent state is carried, never recomputed from a window of past frames, and it is reset
    at every ``reset()`` that starts an episode. A ``reset()`` that only continues a game after a life loss
    (:func:`drama_wm.envs.make_atari` reports it as ``info["life_loss_reset"]``) keeps the recurrent state and
    returns the features of the step that lost the life again, unless ``continue_on_life_loss=False``.
    A policy trained on :class:`~drama_wm.DreamEnv`'s latent observations acts here unchanged.

    Args:
        env: a single (non-vector) env whose spaces match the world model's.
        world_model: the world model; it is read, never trained, here.
        sample: sample z from the posterior (as in training) or take its mode (deterministic features).
        continue_on_life_loss: keep the recurrent state through a life-loss reset (the authors' behaviour; a life
            loss is a termination flag for the learner, not a new episode for the world model).

    Attributes:
        raw_observation: the last observation of the wrapped env (what a replay buffer stores).
        episode_start: whether the last ``reset()`` started an episode (the recurrent state was reset): the
            ``first`` flag of the next replay row. False after a reset that continued a game.
    """

    def __init__(
        self, env: gym.Env, world_model: WorldModel, sample: bool = True, continue_on_life_loss: bool = True
    ) -> None:
        super().__init__(env)
        if env.observation_space != world_model.observation_space or env.action_space != world_model.action_space:
            raise ValueError(
                f"env spaces {env.observation_space}, {env.action_space} differ from the world model's "
                f"{world_model.observation_space}, {world_model.action_space}"
            )
        if not isinstance(continue_on_life_loss, bool):
            raise TypeError(f"continue_on_life_loss must be a bool, got {continue_on_life_loss!r}")
        self.world_model = world_model
        self.sample = sample
        self.continue_on_life_loss = continue_on_life_loss
        self.episode_start = True
        dim = world_model.config.feature_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.raw_observation: Any = None
        self._device = world_model.prior_head.weight.device
        self._generator = torch.Generator(device=self._device)
        self._generator.seed()
        self._carry: Carry | None = None  # (recurrent state holding d_{t-1}, z_t) of the current step
        self._last_features: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._generator.manual_seed(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        continuing = bool(info.get("life_loss_reset", False)) and self.continue_on_life_loss
        if continuing and self._carry is not None and self._last_features is not None:
            # The game goes on from the frame the last step returned: same state, same features.
            self.episode_start = False
            return self._last_features.copy(), info
        self.episode_start = True
        return self._features(obs, self.world_model.initial_state(1, self._device)), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        if self._carry is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        with torch.no_grad():
            a = torch.as_tensor(np.asarray(action).reshape(1), device=self._device).long()
            state = self.world_model.advance(self._carry.state, self._carry.z, a)
        return self._features(obs, state), reward, terminated, truncated, info

    @property
    def carry(self) -> Carry | None:
        """The carried (recurrent state holding d_{t-1}, latent z_t [1, latent_dim]) of the current step; None before
        the first reset."""
        return self._carry

    def state_dict(self) -> dict[str, Any]:
        """The carried recurrent state, last latent, last raw observation and sampling RNG (for exact resumes)."""
        return {
            "generator": self._generator.get_state(),
            "carried": None if self._carry is None else self._carry.state_dict(),
            "raw_observation": self.raw_observation,
            "last_features": self._last_features,
            "episode_start": self.episode_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])
        self.raw_observation = state["raw_observation"]
        # Checkpoints written before these two fields existed lack them: features are then recomputed at the next
        # episode start.
        self._last_features = state.get("last_features")
        self.episode_start = bool(state.get("episode_start", True))
        if state["carried"] is not None:
            self._carry = Carry.from_state_dict(state["carried"], self._device)

    def _features(self, obs: Any, state: RecurrentState) -> np.ndarray:
        """Carry (``state``, z_t ~ posterior(obs)) and return the features [z_t, d_{t-1}] of the step."""
        self.raw_observation = obs
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs), device=self._device).unsqueeze(0)
            z = self.world_model.encode(x, sample=self.sample, generator=self._generator)
            self._carry = Carry(state, z)
            self._last_features = self.world_model.features(z, state)[0].float().cpu().numpy()
        return self._last_features.copy()
