"""Exact snapshots of a real env's state as plain data, so a resumed run continues the interrupted episode.

:func:`capture` walks an env's wrapper stack, outermost first, down to the base env, and asks a handler registered
for each layer's exact type for that layer's state; :func:`restore` writes such a snapshot into an env built the
same way (e.g. rebuilt from a checkpoint's recipe). Snapshots hold only numpy arrays and plain Python values (int,
float, str, bool, None, list, tuple, dict), never pickles, so checkpoints can be loaded with
``torch.load(weights_only=True)``.

Handled out of the box:

- ALE envs as :func:`drama_wm.envs.make_atari` builds them (without sticky actions, its default): the emulator
  (ALE's ``cloneState(include_rng=True)``, serialised to a uint8 array), the env's and its action space's numpy
  RNGs, and every wrapper of the stack (:class:`~drama_wm.envs.atari.LifeLossTermination`'s lives, game return and
  length, last frame and info; :class:`~drama_wm.envs.atari.SeedOnFirstReset`'s pending seed; the stateless
  frame-skip and resize wrappers).
- Gymnasium's discrete-action classic-control envs (CartPole, Acrobot, MountainCar) and drama_wm's ``Catch``: their
  dynamic state, ``np_random``'s ``bit_generator.state`` and seed.
- The wrappers ``gym.make`` adds: ``TimeLimit`` (elapsed steps), ``OrderEnforcing`` and ``PassiveEnvChecker``.

With sticky actions (``repeat_action_probability > 0``) ALE repeats its last applied action, which ALE's state does
not hold, so such games are not captured. There, and for any layer without a handler, :func:`capture` returns None
(the state cannot be captured exactly; a resumed run then starts a new episode). :func:`register` adds handlers for
other env or wrapper types.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control import AcrobotEnv, CartPoleEnv, MountainCarEnv
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, ResizeObservation, TimeLimit

from drama_wm.envs.atari import LifeLossTermination, MaxPoolSkip, SeedOnFirstReset
from drama_wm.envs.toy import Catch

#: Version of the snapshot layout (bumped when a handler's fields change).
FORMAT_VERSION = 1

CaptureFn = Callable[[Any], dict[str, Any] | None]  #: None: this layer's state cannot be captured exactly
RestoreFn = Callable[[Any, dict[str, Any]], None]


@dataclass(frozen=True)
class _Handler:
    capture: CaptureFn
    restore: RestoreFn


_HANDLERS: dict[type, _Handler] = {}


def register(cls: type, capture_fn: CaptureFn, restore_fn: RestoreFn) -> None:
    """Handle layers of exactly type ``cls`` (subclasses may hold more state, so they need their own handler).

    ``capture_fn(layer) -> dict | None`` returns that layer's own state (not its inner env's) as plain data, or
    None when it cannot be captured exactly;
    ``restore_fn(layer, state)`` writes it back into a freshly built layer of the same type.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register needs a class, got {cls!r}")
    _HANDLERS[cls] = _Handler(capture_fn, restore_fn)


def capture(env: gym.Env) -> dict[str, Any] | None:
    """The state of ``env`` and every wrapper around it as plain data, or None when some layer has no handler.

    Returns ``{"version": FORMAT_VERSION, "layers": [{"type": "module.Class", "state": {...}}, ...]}``, outermost
    layer first. Arrays are copies: stepping the env afterwards does not change the snapshot.
    """
    layers = []
    for layer in _layers(env):
        handler = _HANDLERS.get(type(layer))
        if handler is None:
            return None
        state = handler.capture(layer)
        if state is None or not _is_plain(state):  # e.g. a LifeLossTermination whose inner env put objects into info
            return None
        layers.append({"type": _type_name(type(layer)), "state": state})
    return {"version": FORMAT_VERSION, "layers": layers}


def restore(env: gym.Env, state: dict[str, Any]) -> None:
    """Write a :func:`capture` snapshot into ``env``, which must be built the same way (same wrapper stack)."""
    if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION or "layers" not in state:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"expected an env state of version {FORMAT_VERSION} from env_state.capture, got {found!r}")
    layers = list(_layers(env))
    have = [_type_name(type(layer)) for layer in layers]
    saved = [entry["type"] for entry in state["layers"]]
    if have != saved:
        raise ValueError(
            f"the env state was captured from the wrapper stack {saved}, but this env is {have}: restore it into an "
            "env built the same way (e.g. from the checkpoint's env recipe)"
        )
    for layer, entry in zip(layers, state["layers"], strict=True):
        _HANDLERS[type(layer)].restore(layer, entry["state"])


# ----------------------------------------------------------------------------------------------------------------------
def _layers(env: gym.Env) -> Iterator[Any]:
    """``env``, then each wrapped env inside it, down to the base env."""
    layer: Any = env
    while isinstance(layer, gym.Wrapper):
        yield layer
        layer = layer.env
    yield layer


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_plain(value: Any) -> bool:
    """Whether ``value`` is made only of numpy arrays (not of objects) and plain Python values."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype != object
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _copy(value: Any) -> Any:
    """A deep copy with numpy scalars, anywhere inside, turned into Python ones (e.g. ALE's reset info
    ``"seeds"``), so the snapshot stays plain."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _stateless(layer: Any) -> dict[str, Any]:
    return {}


def _nothing(layer: Any, state: dict[str, Any]) -> None:
    return None


def _attributes(*names: str) -> tuple[Callable[[Any], dict[str, Any]], RestoreFn]:
    """A handler that copies the attributes ``names`` (ints, floats, arrays, tuples, dicts of them)."""

    def capture_fn(layer: Any) -> dict[str, Any]:
        return {name: _copy(getattr(layer, name)) for name in names}

    def restore_fn(layer: Any, state: dict[str, Any]) -> None:
        for name in names:
            setattr(layer, name, copy.deepcopy(state[name]))

    return capture_fn, restore_fn


def _rng_state(generator: np.random.Generator | None) -> dict[str, Any] | None:
    return None if generator is None else dict(copy.deepcopy(generator.bit_generator.state))


def _rng_from(state: dict[str, Any] | None) -> np.random.Generator | None:
    if state is None:
        return None
    name = state.get("bit_generator")
    bit_generator = getattr(np.random, str(name), None)
    if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
        raise ValueError(f"expected a numpy bit generator state, got bit_generator={name!r}")
    generator = np.random.Generator(bit_generator())
    generator.bit_generator.state = state
    return generator


def _base_env_rngs(env: gym.Env) -> dict[str, Any]:
    """The env's ``np_random`` and seed, and its action space's RNG (the private fields: reading the public
    properties would seed them as a side effect)."""
    return {
        "np_random": _rng_state(env._np_random),
        "np_random_seed": getattr(env, "_np_random_seed", None),
        "action_space_rng": _rng_state(env.action_space._np_random),
    }


def _restore_base_env_rngs(env: gym.Env, state: dict[str, Any]) -> None:
    env._np_random = _rng_from(state["np_random"])
    env._np_random_seed = state["np_random_seed"]
    # gymnasium declares Space._np_random a Generator, though a space starts with None (unseeded) as here
    env.action_space._np_random = _rng_from(state["action_space_rng"])  # type: ignore[assignment]


def _base_env(*names: str) -> tuple[CaptureFn, RestoreFn]:
    """A handler for a base env: its attributes ``names`` plus its RNGs."""
    capture_attrs, restore_attrs = _attributes(*names)

    def capture_fn(env: Any) -> dict[str, Any]:
        return {**capture_attrs(env), **_base_env_rngs(env)}

    def restore_fn(env: Any, state: dict[str, Any]) -> None:
        restore_attrs(env, state)
        _restore_base_env_rngs(env, state)

    return capture_fn, restore_fn


# ---------------------------------------------------------------------------------------------------------- ALE
def _capture_atari(env: Any) -> dict[str, Any] | None:
    if env.ale.getFloat("repeat_action_probability") > 0:
        # Sticky actions repeat ALE's last applied action, which its state does not hold (ALE 0.12 keeps it in
        # StellaEnvironment, outside cloneState): such a game cannot be continued exactly.
        return None
    emulator = env.ale.cloneState(include_rng=True).serialize()
    return {"ale": np.frombuffer(emulator, dtype=np.uint8).copy(), **_base_env_rngs(env)}


def _restore_atari(env: Any, state: dict[str, Any]) -> None:
    emulator = np.asarray(state["ale"])
    if emulator.dtype != np.uint8 or emulator.ndim != 1:
        raise ValueError(f"expected ALE's serialised state as a 1-D uint8 array, got {emulator.dtype} {emulator.shape}")
    env.ale.restoreState(ale_py.ALEState(emulator.tobytes()))
    _restore_base_env_rngs(env, state)


def _capture_life_loss(layer: LifeLossTermination) -> dict[str, Any]:
    return {
        "continue_on_reset": layer._continue_on_reset,
        "lives": layer._lives,
        "game_return": layer._game_return,
        "game_length": layer._game_length,
        "last_obs": None if layer._last_obs is None else np.array(layer._last_obs, copy=True),
        "last_info": {k: _copy(v) for k, v in layer._last_info.items()},
    }


def _restore_life_loss(layer: LifeLossTermination, state: dict[str, Any]) -> None:
    layer._continue_on_reset = bool(state["continue_on_reset"])
    layer._lives = int(state["lives"])
    layer._game_return = float(state["game_return"])
    layer._game_length = int(state["game_length"])
    layer._last_obs = None if state["last_obs"] is None else np.array(state["last_obs"], copy=True)
    layer._last_info = copy.deepcopy(state["last_info"])


# ------------------------------------------------------------------------------------------- gym.make's wrappers
def _capture_checker(layer: PassiveEnvChecker) -> dict[str, Any]:
    previous = layer._previous_data  # (obs, info) of the last reset until the first step has compared against it
    return {
        "checked_reset": layer.checked_reset,
        "checked_step": layer.checked_step,
        "checked_render": layer.checked_render,
        "checked_data_reuse": getattr(layer, "checked_data_reuse", None),
        "previous_data": None if previous is None else [_copy(previous[0]), _copy(previous[1])],
    }


def _restore_checker(layer: PassiveEnvChecker, state: dict[str, Any]) -> None:
    layer.checked_reset = state["checked_reset"]
    layer.checked_step = state["checked_step"]
    layer.checked_render = state["checked_render"]
    if state["checked_data_reuse"] is not None:  # Gymnasium versions before the data-reuse check lack both fields
        layer.checked_data_reuse = state["checked_data_reuse"]
        previous = state["previous_data"]
        layer._previous_data = None if previous is None else (copy.deepcopy(previous[0]), copy.deepcopy(previous[1]))


def _register_defaults() -> None:
    for stateless in (MaxPoolSkip, ResizeObservation):
        register(stateless, _stateless, _nothing)
    register(SeedOnFirstReset, *_attributes("_pending_seed"))
    register(LifeLossTermination, _capture_life_loss, _restore_life_loss)
    register(ale_py.AtariEnv, _capture_atari, _restore_atari)
    register(TimeLimit, *_attributes("_elapsed_steps"))
    register(OrderEnforcing, *_attributes("_has_reset"))
    register(PassiveEnvChecker, _capture_checker, _restore_checker)
    register(CartPoleEnv, *_base_env("state", "steps_beyond_terminated"))
    register(AcrobotEnv, *_base_env("state"))
    register(MountainCarEnv, *_base_env("state"))
    register(Catch, *_base_env("_ball", "_paddle", "_steps"))


_register_defaults()

__all__ = ["FORMAT_VERSION", "capture", "register", "restore"]
