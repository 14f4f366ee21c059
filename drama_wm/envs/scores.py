"""Random and human reference scores for the 26 Atari 100k games, and human-normalised scores.

Source of the numbers. The paper's Table 1 (and Tables 3-4) list a Random and a Human column for every game,
printed as integers. Those integers are the standard reference scores of the Atari literature (the random and
human scores distributed with DeepMind's ``dqn_zoo`` (atari_data.py) and used by the DreamerV3, STORM and IRIS
evaluations) rounded to the nearest integer: every value below rounds to exactly the number printed in the
paper (checked in ``tests/test_envs.py``). We keep the unrounded values
because they are what the Atari 100k literature computes normalised scores with; with the paper's DramaXS column
they give a normalised mean of 104.9% and median of 27.0%, the paper's reported 105% / 27% (Table 1).
"""

from __future__ import annotations

import re

# game -> (random score, human score). Paper Table 1 prints these rounded to integers.
ATARI_100K_SCORES: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7),
    "UpNDown": (533.4, 11693.2),
}

ATARI_100K_GAMES: tuple[str, ...] = tuple(ATARI_100K_SCORES)

# Gym-style decorations that do not change which game is meant: "ALE/" namespace, "-v5" version,
# and the v4-era "NoFrameskip"/"Deterministic" suffixes.
_NAMESPACE = re.compile(r"^ale/", re.IGNORECASE)
_VERSION = re.compile(r"-v\d+$", re.IGNORECASE)
_LEGACY_SUFFIX = re.compile(r"(noframeskip|deterministic)$", re.IGNORECASE)


def game_key(name: str) -> str:
    """Reduce any common spelling of an Atari game to a compact lowercase key.

    "Pong", "pong", "PongNoFrameskip-v4", "ALE/Pong-v5" -> "pong"; "MsPacman", "ms_pacman" -> "mspacman".
    The key only identifies the game; it is not checked against any game list here.
    """
    if not isinstance(name, str):
        raise TypeError(f"game name must be a str, got {type(name).__name__}")
    stripped = _LEGACY_SUFFIX.sub("", _VERSION.sub("", _NAMESPACE.sub("", name.strip())))
    return re.sub(r"[_\-\s]", "", stripped).lower()


_BY_KEY: dict[str, str] = {game_key(game): game for game in ATARI_100K_GAMES}


def is_atari_100k_game(name: str) -> bool:
    """Whether ``name`` (any spelling :func:`game_key` accepts) is one of the 26 Atari 100k games."""
    return isinstance(name, str) and game_key(name) in _BY_KEY


def human_normalized_score(game: str, score: float) -> float:
    """Human-normalised score (score - random) / (human - random) as a fraction (1.0 = human level).

    ``game`` accepts the same spellings as :func:`drama_wm.envs.make_atari`. Raises KeyError for games outside
    the 26-game Atari 100k set.
    """
    key = game_key(game)
    if key not in _BY_KEY:
        raise KeyError(f"no Atari 100k reference scores for game {game!r}; known games: {', '.join(ATARI_100K_GAMES)}")
    random_score, human_score = ATARI_100K_SCORES[_BY_KEY[key]]
    return (float(score) - random_score) / (human_score - random_score)
