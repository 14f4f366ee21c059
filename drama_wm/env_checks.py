"""Checks on what the real env returns, so bad data from the world never reaches the replay or the weights.

:class:`CheckEnvData` wraps the env :class:`~drama_wm.Drama` trains and evaluates on (before any observation
adaptation, so observations are checked against the env's own declared space). Every observation that ``reset()``
and ``step()`` return must be a numpy array of the space's exact dtype and shape, and finite when the dtype is a
float; every reward must be a finite real number (Python or numpy int, float or bool, or a 0-d numeric array).
Anything else raises :class:`EnvDataError`, which names the real step, the field, what was expected and what came.
Nothing is converted silently: a float64 observation for a float32 space is an error, not a cast.

The checks cost a few microseconds per step (``benchmarks/env_checks.py``: under 3 us on CartPole, under 1 us for
a uint8 84x84x3 frame, on one CPU core; a real step of the tiny preset takes about 1 ms), so they cannot be
turned off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


class EnvDataError(ValueError):
    """An env returned an observation or reward that Drama cannot train on.

    Attributes:
        field: "observation" or "reward".
        step: the real step (1-based, as ``num_timesteps`` counts them) whose data was bad; for an observation
            returned by ``reset()``, the step that would have come next.
    """

    def __init__(self, message: str, field: str, step: int) -> None:
        super().__init__(message)
        self.field = field
        self.step = step


def observation_problem(obs: Any, space: gym.spaces.Space) -> str | None:
    """What is wrong with ``obs`` as an observation of ``space`` (expected, then got), or None when it is fine.

    Box spaces: a numpy array of exactly ``space.dtype`` and ``space.shape``, all finite for float dtypes (bounds are
    not checked: values outside them are legal data for the world model). Other spaces: ``space.contains(obs)``.
    """
    if not isinstance(space, gym.spaces.Box):
        return None if space.contains(obs) else f"expected a member of {space}, got {_describe(obs)}"
    if not isinstance(obs, np.ndarray):
        return f"expected a numpy array of dtype {space.dtype} and shape {space.shape}, got {_describe(obs)}"
    if obs.dtype != space.dtype:
        return (
            f"expected dtype {space.dtype} (the declared {space}), got {obs.dtype}: make the env return "
            f"{space.dtype} (e.g. gymnasium.wrappers.DtypeObservation) or declare the dtype it returns"
        )
    if obs.shape != space.shape:
        return f"expected shape {space.shape} (the declared {space}), got shape {obs.shape}"
    if obs.dtype.kind == "f" and not np.isfinite(obs).all():
        bad = np.argwhere(~np.isfinite(obs))
        index = tuple(int(i) for i in bad[0])
        return (
            f"expected finite values, got {obs[index]} at index {index} ({len(bad)} of {obs.size} entries are NaN "
            "or infinite)"
        )
    return None


def reward_problem(reward: Any) -> str | None:
    """What is wrong with ``reward`` (expected, then got), or None for a finite real number (int, float, bool,
    numpy scalar or 0-d numeric array)."""
    if isinstance(reward, float):  # the common case first
        return None if math.isfinite(reward) else f"expected a finite number, got {reward}"
    if isinstance(reward, np.ndarray):
        if reward.ndim != 0 or reward.dtype.kind not in "biuf":
            return f"expected a single number, got {_describe(reward)}"
        reward = reward[()]
    if not isinstance(reward, Real):
        return f"expected a number (int or float), got {_describe(reward)}"
    return None if math.isfinite(reward) else f"expected a finite number, got {reward}"


class CheckEnvData(gym.Wrapper):
    """Raises :class:`EnvDataError` for observations (from ``reset`` and ``step``) and rewards that Drama cannot
    train on (see :func:`observation_problem` and :func:`reward_problem`); passes everything else through unchanged.

    Args:
        env: the env as given, before any observation adaptation.
        steps_taken: returns how many real steps were taken before the current one (the driver's
            ``num_timesteps``), called only to word an error; by default the wrapper counts its own ``step()`` calls.
        label: how errors name a step ("real step" in training, "evaluation step" in evaluation).
    """

    def __init__(self, env: gym.Env, steps_taken: Callable[[], int] | None = None, label: str = "real step") -> None:
        super().__init__(env)
        self._steps_taken = steps_taken
        self._label = label
        self._own_steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        problem = observation_problem(obs, self.env.observation_space)
        if problem is not None:
            step = self._next_step()
            raise EnvDataError(
                f"the env's reset() before {self._label} {step} returned a bad observation: {problem}",
                "observation",
                step,
            )
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        problem = observation_problem(obs, self.env.observation_space)
        field = "observation"
        if problem is None:
            problem, field = reward_problem(reward), "reward"
        if problem is not None:
            step = self._next_step()
            raise EnvDataError(f"the env returned a bad {field} at {self._label} {step}: {problem}", field, step)
        self._own_steps += 1
        return obs, reward, terminated, truncated, info

    def _next_step(self) -> int:
        return (self._steps_taken() if self._steps_taken is not None else self._own_steps) + 1


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


__all__ = ["CheckEnvData", "EnvDataError", "observation_problem", "reward_problem"]
