"""Behaviour learners: anything that learns in a DreamEnv and acts on world-model features.

:class:`BehaviourLearner` is the protocol the driver talks to; :class:`LearnerConfig` is the family of learner
configs, told apart by ``kind``. Built in: :class:`ActorCritic` ("actor-critic").
"""

from __future__ import annotations

from drama_wm.learners.actor_critic import ActorCritic, ActorCriticConfig
from drama_wm.learners.base import BehaviourLearner, LearnerConfig

__all__ = ["ActorCritic", "ActorCriticConfig", "BehaviourLearner", "LearnerConfig"]
