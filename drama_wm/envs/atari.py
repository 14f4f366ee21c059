"""Atari environments under the Atari 100k protocol used by Drama (REFERENCE.md, "Atari 100k protocol").

Wrapper stack built by :func:`make_atari`, innermost first:

1. ``ALE/<Game>-v5`` with ``frameskip=1`` (skipping is done by our wrapper so that frames can be max-pooled),
   ``repeat_action_probability=0`` (no sticky actions), the minimal action set, and ALE's own frame counter
   enforcing the episode limit (108,000 frames = 27,000 agent steps) as truncation.
2. :class:`MaxPoolSkip`: each agent action is repeated ``frame_skip`` times, rewards are summed and the
   observation is the pixel-wise max of the last two raw frames (Atari sprites flicker between frames).
3. ``ResizeObservation`` to ``size x size`` RGB uint8 (OpenCV area interpolation).
4. :class:`LifeLossTermination`: a lost life ends the learner's episode without resetting the game; it also
   reports the return of the whole game (all lives) for evaluation.
5. :class:`SeedOnFirstReset`: the ``seed`` given to :func:`make_atari` seeds the first ``reset()``.

No no-op starts, no reward clipping (the world model's symlog two-hot reward head handles reward scale).
"""

from __future__ import annotations

import difflib
from typing import Any, SupportsFloat

import ale_py
import gymnasium as gym
import numpy as np
from ale_py import roms
from gymnasium.wrappers import ResizeObservation

from drama_wm.checks import positive_int
from drama_wm.envs.scores import game_key

gym.register_envs(ale_py)

_DEFAULTS: dict[str, Any] = {
    "frame_skip": 4,
    "size": 64,
    "max_episode_frames": 108_000,
    "terminal_on_life_loss": True,
    "repeat_action_probability": 0.0,
}


class MaxPoolSkip(gym.Wrapper):
    """Repeat each action ``skip`` times; sum the rewards; return the max over the last two raw frames.

    If the episode terminates or truncates inside the skip, the remaining repeats are not played. The
    returned observation is the element-wise max of the last two raw frames produced by *this* step; when the
    step ended after a single raw frame, that frame is returned unchanged (frames of a previous step are never
    mixed in). ``info`` is the info of the last raw frame. Observations keep the wrapped env's shape/dtype.
    """

    def __init__(self, env: gym.Env, skip: int = 4) -> None:
        super().__init__(env)
        positive_int("skip", skip)
        self.skip = skip

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        total_reward = 0.0
        previous: np.ndarray | None = None
        obs: np.ndarray | None = None
        terminated = truncated = False
        info: dict[str, Any] = {}
        for _ in range(self.skip):
            previous = obs
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            if terminated or truncated:
                break
        assert obs is not None  # skip >= 1 guarantees at least one raw step
        pooled = obs if previous is None else np.maximum(previous, obs)
        return pooled, total_reward, terminated, truncated, info


class LifeLossTermination(gym.Wrapper):
    """Report a lost life as ``terminated=True`` without resetting the emulator; track whole-game returns.

    Keys added to ``info`` by ``step()`` (always present):

    - ``"life_loss"`` (bool): a life was lost on this step while the game goes on. With
      ``terminal_on_life_loss=True`` the step also returns ``terminated=True``.
    - ``"episode_game_over"`` (bool): the real game ended on this step (ALE game over, or truncation at the
      frame limit); the next ``reset()`` resets the emulator.

    Present only when ``info["episode_game_over"]`` is True:

    - ``"game_return"`` (float): undiscounted sum of rewards over the whole game, all lives (the score that
      Atari 100k reports).
    - ``"game_length"`` (int): agent steps in the whole game.

    ``reset()`` right after a life-loss termination does *not* reset the emulator: it returns the last
    observation again, with ALE's info of that step plus ``info["life_loss_reset"] = True``, and the game simply
    continues from where it was (repeated resets before the next step keep doing so). Every other reset is
    real and has ``info["life_loss_reset"] = False``. Passing ``seed`` to ``reset()`` always forces a real
    reset (a new game), since a seed asks for a fresh game.
    """

    def __init__(self, env: gym.Env, terminal_on_life_loss: bool = True) -> None:
        super().__init__(env)
        if not isinstance(terminal_on_life_loss, bool):
            raise TypeError(f"terminal_on_life_loss must be a bool, got {terminal_on_life_loss!r}")
        self.terminal_on_life_loss = terminal_on_life_loss
        self._continue_on_reset = False
        self._lives = 0
        self._game_return = 0.0
        self._game_length = 0
        self._last_obs: np.ndarray | None = None
        self._last_info: dict[str, Any] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if self._continue_on_reset and seed is None and self._last_obs is not None:
            # Idempotent: resetting again before stepping still continues the same game.
            return self._last_obs, {**self._last_info, "life_loss_reset": True}
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = int(info.get("lives", 0))
        self._game_return = 0.0
        self._game_length = 0
        self._last_obs, self._last_info = obs, dict(info)
        return obs, {**info, "life_loss_reset": False}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._game_return += float(reward)
        self._game_length += 1
        lives = int(info.get("lives", 0))
        game_over = bool(terminated or truncated)
        # Only a decrease counts: some games award extra lives.
        life_loss = lives < self._lives and not game_over
        self._lives = lives
        # Only a reset right after a life-loss termination continues the game; any other reset is real.
        self._continue_on_reset = life_loss and self.terminal_on_life_loss
        self._last_obs, self._last_info = obs, dict(info)
        info = {**info, "life_loss": life_loss, "episode_game_over": game_over}
        if game_over:
            info["game_return"] = self._game_return
            info["game_length"] = self._game_length
        if life_loss and self.terminal_on_life_loss:
            terminated = True
        return obs, reward, terminated, truncated, info


class SeedOnFirstReset(gym.Wrapper):
    """Use ``seed`` for the first ``reset()`` that is not given one explicitly; later resets are unseeded."""

    #: set by :func:`make_atari` on the outermost wrapper: how to build the env again (see ``env_recipe``)
    make_atari_args: dict[str, Any] | None = None

    def __init__(self, env: gym.Env, seed: int | None) -> None:
        super().__init__(env)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self._pending_seed = seed
        if seed is not None:
            self.action_space.seed(seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        return self.env.reset(seed=seed, options=options)


def _rom_id(game: str) -> str:
    """Map any accepted spelling of a game to its ALE ROM id (e.g. "MsPacman" -> "ms_pacman")."""
    by_key = {game_key(rom): rom for rom in roms.get_all_rom_ids()}
    key = game_key(game)
    if key in by_key:
        return by_key[key]
    close = [_env_name(by_key[k]) for k in difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.6)]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown Atari game {game!r}: expected an ALE game name such as 'Pong', 'pong', "
        f"'PongNoFrameskip-v4' or 'ALE/Pong-v5'{hint}"
    )


def atari_game_names() -> list[str]:
    """Every ALE game's name as gymnasium ids spell it ("Pong", "MsPacman", ...)."""
    return sorted(_env_name(rom) for rom in roms.get_all_rom_ids())


def is_atari_game(game: str) -> bool:
    """Whether ``game`` names an ALE game in any spelling :func:`make_atari` accepts."""
    return game_key(game) in {game_key(rom) for rom in roms.get_all_rom_ids()}


def _env_name(rom: str) -> str:
    """ALE ROM id -> the PascalCase name used in gymnasium ids ("ms_pacman" -> "MsPacman")."""
    return rom.title().replace("_", "")


def _check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(_DEFAULTS))
    if unknown:
        raise TypeError(
            f"make_atari() got unknown override(s) {', '.join(unknown)}; valid overrides: "
            f"{', '.join(f'{k}={v!r}' for k, v in _DEFAULTS.items())}"
        )
    cfg = {**_DEFAULTS, **overrides}
    for name in ("frame_skip", "size", "max_episode_frames"):
        positive_int(name, cfg[name])
    if not isinstance(cfg["terminal_on_life_loss"], bool):
        raise TypeError(f"terminal_on_life_loss must be a bool, got {cfg['terminal_on_life_loss']!r}")
    prob = cfg["repeat_action_probability"]
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
        raise ValueError(f"repeat_action_probability must be a float in [0, 1], got {prob!r}")
    return cfg


def make_atari(game: str, seed: int | None = None, **overrides: Any) -> gym.Env:
    """Create an Atari game under the Atari 100k protocol of Drama.

    Args:
        game: "Pong", "pong", "PongNoFrameskip-v4" and "ALE/Pong-v5" all name the same game; any ALE game is
            accepted. Unknown names raise ValueError with close matches.
        seed: seeds the first ``reset()`` (emulator and ``action_space``); None leaves them unseeded.
        **overrides: protocol settings, defaults in brackets: ``frame_skip`` [4], ``size`` [64] (square
            observation side), ``max_episode_frames`` [108000] (raw emulator frames per game, then
            ``truncated=True``), ``terminal_on_life_loss`` [True], ``repeat_action_probability`` [0.0].
            Unknown names raise TypeError.

    Returns:
        An env with observations uint8 [size, size, 3] and ``Discrete(n)`` over the game's minimal action
        set. Rewards are raw game rewards summed over the skip (no clipping).

    Episode semantics (see :class:`LifeLossTermination` for details):

    - On a lost life ``step()`` returns ``terminated=True`` and ``info["life_loss"]=True`` (with
      ``terminal_on_life_loss=True``); the following ``reset()`` continues the same game and returns
      ``info["life_loss_reset"]=True``. A real game over, or truncation at ``max_episode_frames``, makes the
      next ``reset()`` start a new game (``info["life_loss_reset"]=False``).
    - Every ``step()`` info has ``"life_loss"`` and ``"episode_game_over"`` (bools). When
      ``info["episode_game_over"]`` is True, ``info["game_return"]`` (float, whole-game score over all lives)
      and ``info["game_length"]`` (int, agent steps in the game) are also present: report these as game
      scores, not per-life returns.
    - ALE's ``"lives"``, ``"episode_frame_number"`` and ``"frame_number"`` are passed through.
    """
    cfg = _check_overrides(overrides)
    env = gym.make(
        f"ALE/{_env_name(_rom_id(game))}-v5",
        frameskip=1,
        repeat_action_probability=float(cfg["repeat_action_probability"]),
        full_action_space=False,
        max_num_frames_per_episode=cfg["max_episode_frames"],
    )
    env = MaxPoolSkip(env, cfg["frame_skip"])
    env = ResizeObservation(env, (cfg["size"], cfg["size"]))
    env = LifeLossTermination(env, cfg["terminal_on_life_loss"])
    env = SeedOnFirstReset(env, seed)
    # How to build this env again (Drama stores it in checkpoints, so a loaded agent needs no env=).
    env.make_atari_args = {"game": game, **overrides}
    return env
