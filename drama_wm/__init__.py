"""drama_wm: Drama's Mamba-2 world model, and its imagination as a vectorized Gymnasium environment.

Public API:
- :class:`WorldModel`, :class:`WorldModelConfig`: the categorical VAE + sequence backbone + heads (paper Sec. 2.2).
- :class:`ReplayBuffer`, :class:`SamplerConfig`: sequence replay with dynamic frequency-based sampling (Sec. 2.4).
- :class:`DreamEnv`: the world model as a ``gymnasium.vector.VectorEnv`` starting from DFS-drawn real contexts.
- :class:`LatentObservation`: the real env seen through the world model (the same features as the dream).
- :class:`Drama`, :class:`DramaConfig`: the agent (Algorithm 1) with learn / predict / evaluate / save / load.
"""

from drama_wm.dream_env import DreamEnv
from drama_wm.driver import Drama, DramaConfig, make_env
from drama_wm.latent_observation import LatentObservation
from drama_wm.learners import ActorCritic, ActorCriticConfig, BehaviourLearner
from drama_wm.replay import Batch, ReplayBuffer, SamplerConfig
from drama_wm.world_model import RecurrentState, WorldModel, WorldModelConfig

__version__ = "0.1.0"

__all__ = [
    "ActorCritic",
    "ActorCriticConfig",
    "Batch",
    "BehaviourLearner",
    "Drama",
    "DramaConfig",
    "DreamEnv",
    "LatentObservation",
    "RecurrentState",
    "ReplayBuffer",
    "SamplerConfig",
    "WorldModel",
    "WorldModelConfig",
    "make_env",
]
