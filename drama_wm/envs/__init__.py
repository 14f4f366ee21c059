"""Environments: Atari 100k (``make_atari``), the paper's grid world, and the tiny ``Catch`` pixel game.

Importing this package registers ``drama_wm/GridWorld-v0`` and ``drama_wm/Catch-v0`` with Gymnasium, so
``gym.make("drama_wm/Catch-v0")`` works (keyword arguments are passed to the constructors). Both envs truncate
their own episodes, so no TimeLimit wrapper is registered.
"""

import gymnasium as gym

from drama_wm.envs.atari import make_atari
from drama_wm.envs.gridworld import (
    GridWorld,
    grid_error,
    make_sequence_dataset,
    tokenize_trajectory,
    untokenize_trajectory,
)
from drama_wm.envs.scores import ATARI_100K_GAMES, ATARI_100K_SCORES, human_normalized_score
from drama_wm.envs.toy import Catch

for _env_id, _entry_point in (
    ("drama_wm/GridWorld-v0", "drama_wm.envs.gridworld:GridWorld"),
    ("drama_wm/Catch-v0", "drama_wm.envs.toy:Catch"),
):
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point)

__all__ = [
    "ATARI_100K_GAMES",
    "ATARI_100K_SCORES",
    "Catch",
    "GridWorld",
    "grid_error",
    "human_normalized_score",
    "make_atari",
    "make_sequence_dataset",
    "tokenize_trajectory",
    "untokenize_trajectory",
]
