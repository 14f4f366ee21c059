"""Building the real env: from an instance, a factory or an id, and again from a checkpoint's recipe.

A recipe is plain data saying how to make an env again, so checkpoints can rebuild the env they were trained on
without pickling it: ``{"id": ...}``, ``{"make_atari": kwargs}`` or ``{"gym_spec": fields}`` (a Gymnasium spec with
its wrappers). A recipe from a file is untrusted: a Gymnasium spec is made only when its id is registered in this
process with the same entry point, so a checkpoint cannot name a function of its own choosing to call.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec as GymEnvSpec
from gymnasium.envs.registration import WrapperSpec

from drama_wm.config_io import is_plain

EnvSpec = gym.Env | str | Callable[[], gym.Env]


def make_env(env: EnvSpec, seed: int | None = None) -> gym.Env:
    """An env instance from an instance, a factory, or an id (ALE ids and Atari game names go through make_atari).

    ``"module:EnvId"`` imports ``module`` first (Gymnasium's ``gym.make`` convention), so envs it registers work.
    """
    if isinstance(env, gym.Env):
        return env
    if callable(env):
        return env()
    if isinstance(env, str):
        if env.startswith("MinAtar/"):  # 10x10 boolean grids as uint8 0/255 frames (pip install drama-wm[minatar])
            from drama_wm.envs.minatar import make_minatar

            return make_minatar(env)
        from drama_wm.envs import make_atari  # also registers drama_wm/GridWorld-v0 and drama_wm/Catch-v0
        from drama_wm.envs.atari import atari_game_names, is_atari_game

        if ":" in env:
            module = env.split(":", 1)[0]
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                raise ValueError(
                    f"cannot import {module!r} for env {env!r} ({err}): 'module:EnvId' imports module, which must "
                    "register EnvId with gymnasium.register; check the module is on the Python path"
                ) from None
            return gym.make(env)  # the id the module registered
        # ALE ids, legacy NoFrameskip ids and bare game names ("Pong") get the Atari 100k protocol.
        if env.startswith("ALE/") or "NoFrameskip" in env:
            return make_atari(env, seed=seed)
        if env in gym.registry:
            return gym.make(env)
        if is_atari_game(env):
            return make_atari(env, seed=seed)
        close = difflib.get_close_matches(env, [*gym.registry, *atari_game_names()], n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown environment {env!r}: expected a registered Gymnasium id (e.g. 'CartPole-v1'), an Atari game "
            f"(e.g. 'Pong' or 'ALE/Pong-v5') or 'module:EnvId' for an env your module registers{hint}"
        )
    raise TypeError(f"env must be a gymnasium.Env, an env id or a zero-argument factory, got {type(env).__name__}")


def env_recipe(env: EnvSpec, instance: gym.Env | None = None) -> dict[str, Any] | None:
    """How to build ``env`` again, as plain data: ``{"id": ...}`` for ids, ``{"make_atari": kwargs}`` for
    :func:`~drama_wm.envs.make_atari` envs, ``{"gym_spec": fields}`` for envs whose Gymnasium spec, wrappers included,
    can be made again; None when it cannot be rebuilt (then ``load`` and ``evaluate`` need ``env=``)."""
    if isinstance(env, str):
        return {"id": env}
    instance = env if isinstance(env, gym.Env) else instance
    if instance is None:
        return None
    atari = getattr(instance, "make_atari_args", None)
    if isinstance(atari, dict):
        return {"make_atari": dict(atari)}
    try:
        spec = instance.spec
        if spec is None:
            return None
        spec.to_json()  # raises for wrappers that did not record their arguments, so cannot be made again
        plain = _spec_to_plain(spec)
        return {"gym_spec": plain} if is_plain(plain) else None
    except Exception:  # wrappers without recorded arguments, entry points that are not import paths, ...
        return None


def make_env_from_recipe(recipe: dict[str, Any], seed: int | None = None) -> gym.Env:
    """The env :func:`env_recipe` describes (from an untrusted file: see the module's docstring)."""
    if not isinstance(recipe, dict) or len(recipe) != 1:
        raise ValueError(f"an env recipe is a dict with one key 'id', 'make_atari' or 'gym_spec', got {recipe!r}")
    if "id" in recipe:
        return make_env(recipe["id"], seed)
    if "make_atari" in recipe:
        from drama_wm.envs import make_atari

        args = dict(recipe["make_atari"])
        return make_atari(args.pop("game"), seed=seed, **args)
    if "gym_spec" in recipe:
        spec = _spec_from_plain(recipe["gym_spec"])
        registered = gym.registry.get(spec.id)
        if registered is None or registered.entry_point != spec.entry_point:
            raise ValueError(
                f"the recipe's env {spec.id!r} (entry point {spec.entry_point!r}) is not registered with that entry "
                "point in this process: import the module that registers it, or pass env="
            )
        for wrapper in spec.additional_wrappers:
            _check_wrapper(wrapper.entry_point)
        return gym.make(spec)
    raise ValueError(f"unknown env recipe {recipe!r}: expected a key 'id', 'make_atari' or 'gym_spec'")


def _check_wrapper(entry_point: str) -> None:
    """A recipe's wrapper must be a ``gym.Wrapper`` class of a module this process has imported already."""
    module, _, name = entry_point.partition(":")
    wrapper = getattr(sys.modules.get(module), name, None)
    if not (isinstance(wrapper, type) and issubclass(wrapper, gym.Wrapper)):
        raise ValueError(
            f"the recipe's wrapper {entry_point!r} is not a gymnasium Wrapper class of an imported module: "
            "import its module first, or pass env="
        )


def recipe_name(recipe: dict[str, Any] | None) -> str | None:
    """The env id or game name a recipe makes (None for no recipe)."""
    recipe = recipe or {}
    if "id" in recipe:
        return str(recipe["id"])
    if "make_atari" in recipe:
        return str(recipe["make_atari"]["game"])
    if "gym_spec" in recipe:
        return str(recipe["gym_spec"]["id"])
    return None


def _spec_to_plain(spec: GymEnvSpec) -> dict[str, Any]:
    """A Gymnasium spec as plain data that keeps tuples (its JSON would turn wrapper arguments' tuples into lists,
    which wrappers such as ResizeObservation refuse)."""
    plain = {
        f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.init and f.name != "additional_wrappers"
    }
    plain["entry_point"] = spec.entry_point if isinstance(spec.entry_point, str) else None
    plain["vector_entry_point"] = spec.vector_entry_point if isinstance(spec.vector_entry_point, str) else None
    plain["additional_wrappers"] = [
        {"name": w.name, "entry_point": w.entry_point, "kwargs": dict(w.kwargs or {})} for w in spec.additional_wrappers
    ]
    return plain


def _spec_from_plain(plain: dict[str, Any]) -> GymEnvSpec:
    fields = dict(plain)
    wrappers = tuple(WrapperSpec(**w) for w in fields.pop("additional_wrappers"))
    return GymEnvSpec(**fields, additional_wrappers=wrappers)


__all__ = ["EnvSpec", "env_recipe", "make_env", "make_env_from_recipe", "recipe_name"]
