"""drama_wm: Drama's Mamba-2 world model, and its imagination as a vectorized Gymnasium environment.

Public API:
- :class:`WorldModel`, :class:`WorldModelConfig`: the categorical VAE + sequence backbone + heads (paper Sec. 2.2).
- :class:`ReplayBuffer`, :class:`SamplerConfig`: sequence replay with dynamic frequency-based sampling (Sec. 2.4).
- :class:`DreamEnv`: the world model as a ``gymnasium.vector.VectorEnv`` starting from DFS-drawn real contexts;
  :class:`SingleDreamEnv`: one dream as a plain ``gymnasium.Env``.
- :class:`LatentObservation`: the real env seen through the world model (the same features as the dream).
- :class:`RecurrentState`, :class:`Carry`: what the world model carries between steps (with the current latent).
- :class:`Drama`, :class:`DramaConfig`: the agent (Algorithm 1) with learn / predict / evaluate / save / load.

The names are imported on first use (PEP 562), so ``import drama_wm`` (and the ``drama-wm`` command's ``--help``)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: public name -> the module that defines it
_EXPORTS = {
    "ActorCritic": "drama_wm.learners",
    "ActorCriticConfig": "drama_wm.learners",
    "BehaviourLearner": "drama_wm.learners",
    "LearnerConfig": "drama_wm.learners",
    "evaluate_policy": "drama_wm.evaluation",
    "Batch": "drama_wm.replay",
    "ReplayBuffer": "drama_wm.replay",
    "SamplerConfig": "drama_wm.replay",
    "Drama": "drama_wm.driver",
    "DramaConfig": "drama_wm.config",
    "make_env": "drama_wm.env_recipes",
    "DreamEnv": "drama_wm.dream_env",
    "SingleDreamEnv": "drama_wm.dream_env",
    "LatentObservation": "drama_wm.latent_observation",
    "Carry": "drama_wm.carry",
    "RecurrentState": "drama_wm.carry",
    "WorldModel": "drama_wm.world_model",
    "WorldModelConfig": "drama_wm.world_model",
}

if TYPE_CHECKING:
    from drama_wm.carry import Carry, RecurrentState
    from drama_wm.config import DramaConfig
    from drama_wm.dream_env import DreamEnv, SingleDreamEnv
    from drama_wm.driver import Drama
    from drama_wm.env_recipes import make_env
    from drama_wm.evaluation import evaluate_policy
    from drama_wm.latent_observation import LatentObservation
    from drama_wm.learners import ActorCritic, ActorCriticConfig, BehaviourLearner, LearnerConfig
    from drama_wm.replay import Batch, ReplayBuffer, SamplerConfig
    from drama_wm.world_model import WorldModel, WorldModelConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'drama_wm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ActorCritic",
    "ActorCriticConfig",
    "Batch",
    "BehaviourLearner",
    "Carry",
    "Drama",
    "DramaConfig",
    "DreamEnv",
    "LatentObservation",
    "LearnerConfig",
    "RecurrentState",
    "ReplayBuffer",
    "SamplerConfig",
    "SingleDreamEnv",
    "WorldModel",
    "WorldModelConfig",
    "evaluate_policy",
    "make_env",
]
