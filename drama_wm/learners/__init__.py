"""Behaviour learners: anything that learns in a DreamEnv and acts on world-model features.

The driver (:class:`drama_wm.Drama`) only talks to this protocol, so external learners (e.g.
``drama_wm.integrations.sb3.SB3Learner``) plug in exactly like the built-in actor-critic.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from drama_wm.dream_env import DreamEnv
from drama_wm.learners.actor_critic import ActorCritic, ActorCriticConfig


@runtime_checkable
class BehaviourLearner(Protocol):
    """What the driver needs from a behaviour learner.

    ``dream_options`` are the :class:`~drama_wm.DreamEnv` keywords the learner needs (e.g. ``array_type``,
    ``autoreset_mode``, ``num_envs``); the driver builds the dream with them plus its own context/horizon settings
    and calls ``bind(dream)`` before anything else. The dream reads the world model in place, so it stays valid
    while the driver keeps training the world model; ``bind`` may be called again to attach another dream without
    losing the learner's state.
    """

    dream_options: dict[str, Any]

    def bind(self, dream: DreamEnv) -> None:
        """Build the learner for ``dream``'s spaces and device (first call) or re-attach it (later calls)."""

    def learn(self) -> dict[str, float]:
        """One behaviour update from imagination in the bound dream; returns scalar metrics for logging."""

    def act(self, features: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """features [B, feature_dim] float32 -> actions [B] int64."""

    def state_dict(self) -> dict[str, Any]:
        """Everything that shapes behaviour (weights, optimiser states, normalisation statistics)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


__all__ = ["ActorCritic", "ActorCriticConfig", "BehaviourLearner"]
