"""What a behaviour learner is: the protocol the driver talks to, and the family of learner configs.

The driver (:class:`drama_wm.Drama`) only talks to :class:`BehaviourLearner`, so external learners (e.g.
``drama_wm.integrations.sb3.SB3Learner``) plug in exactly like the built-in actor-critic. A learner that can be
built from plain data has a :class:`LearnerConfig` (its ``kind`` names it in checkpoints, the CLI and sweeps);
``DramaConfig.learner`` holds one, and ``config.make()`` builds the learner.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from drama_wm.config_io import Variant
from drama_wm.dream_env import DreamEnv


@runtime_checkable
class BehaviourLearner(Protocol):
    """What the driver needs from a behaviour learner.

    ``dream_options`` are the :class:`~drama_wm.DreamEnv` keywords the learner needs (e.g. ``array_type``,
    ``autoreset_mode``, ``num_envs``); the driver builds the dream with them plus its own context/horizon settings
    and ``DramaConfig.dream_termination`` (a ``termination`` given here must equal it), and calls ``bind(dream)``
    before anything else. The dream reads the world model in place, so it stays valid
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
        """Everything that shapes behaviour (weights, optimiser states, normalisation statistics), as tensors,
        arrays and plain data only (checkpoints load with ``weights_only=True``)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class LearnerConfig(Variant):
    """The family of behaviour-learner configs (dataclasses); each member names its ``kind`` and builds its learner.

    Members: ``ActorCriticConfig`` ("actor-critic", built in) and ``SB3PPOConfig`` ("sb3-ppo", in
    ``drama_wm.integrations.sb3``, imported when first asked for).
    """

    def make(self) -> BehaviourLearner:
        """A new, unbound learner with this configuration."""
        raise NotImplementedError(f"{type(self).__name__} must implement make()")


LearnerConfig.register_lazy("sb3-ppo", "drama_wm.integrations.sb3")

__all__ = ["BehaviourLearner", "LearnerConfig"]
