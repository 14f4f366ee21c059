"""Dotted ``key=value`` overrides of a :class:`~drama_wm.DramaConfig`: ``--set`` of ``drama-wm sweep`` and the
benchmarks (``sampler.kind=uniform``, ``world_model.backbone=mamba``, ``world_model.lr=0.002``).

Values are parsed as the type of the field they replace (JSON syntax for numbers, lists and dicts); unknown keys and
values of the wrong type are errors that name what was expected.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any


def _config_fields(obj: Any) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _parse_value(text: str, current: Any, key: str) -> Any:
    """``text`` as a value of the type of ``current`` (JSON for numbers, lists and dicts; words for strings)."""
    if isinstance(current, str):
        return text
    try:
        value = json.loads(text.replace("True", "true").replace("False", "false").replace("None", "null"))
    except json.JSONDecodeError:
        expected = type(current).__name__
        raise ValueError(f"--set {key}={text}: expected a {expected} (JSON syntax), got {text!r}") from None
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"--set {key}={text}: expected true or false")
        return value
    if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, int):
        return value
    if isinstance(current, float) and not isinstance(value, bool) and isinstance(value, (int, float)):
        return float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(current, dict) and isinstance(value, dict):
        return value
    if current is None:
        return value
    raise ValueError(f"--set {key}={text}: expected a {type(current).__name__}, got {type(value).__name__}")


def parse_overrides(assignments: Iterable[str]) -> list[tuple[tuple[str, ...], str]]:
    """``key=value`` strings as (the dotted key split into a path, the value's text); :func:`apply_overrides` checks
    the keys against the config it changes."""
    parsed = []
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value (e.g. sampler.kind=uniform), got {text!r}")
        parsed.append((tuple(key.split(".")), value))
    return parsed


def apply_overrides(config: Any, assignments: Iterable[str]) -> Any:
    """A copy of ``config`` (a DramaConfig) with the dotted ``key=value`` assignments applied and validated.

    A key that names a whole config of a :class:`~drama_wm.config_io.Variant` family takes a kind name:
    ``world_model.backbone=mamba`` makes the backbone the current one as that kind (the kind's defaults at the
    current d_model, n_layers, dropout and d_state, as ``drama-wm train --backbone`` does), ``learner=sb3-ppo`` gives
    that learner's defaults. Kind changes apply before field assignments, so ``world_model.backbone=transformer``
    and ``world_model.backbone.n_heads=4`` combine in either order.
    """
    from drama_wm.config_io import Variant

    def changes_kind(path: tuple[str, ...]) -> bool:
        obj = config
        for part in path:
            obj = getattr(obj, part, None)
        return isinstance(obj, Variant)

    items = parse_overrides(assignments)
    items.sort(key=lambda item: not changes_kind(item[0]))  # stable: kind changes first, then the fields
    for path, text in items:
        key = ".".join(path)
        current = _value_at(config, path)
        if isinstance(current, Variant):
            value = _as_kind(current, text, key)
        elif dataclasses.is_dataclass(current):
            raise ValueError(f"--set {key}: is a whole config; set one of its fields ({key}.<field>)")
        else:
            value = _parse_value(text, current, key)
        config = _replace_at(config, path, value)
    return config


def _value_at(config: Any, path: tuple[str, ...]) -> Any:
    """The value of ``config`` at the dotted ``path``; a ValueError listing the known fields where one is unknown."""
    obj = config
    for i, part in enumerate(path):
        known = _config_fields(obj) if dataclasses.is_dataclass(obj) else {}
        if part not in known:
            where = ".".join(path[:i]) or type(config).__name__
            raise ValueError(
                f"--set {'.'.join(path)}: {where} has no field {part!r}; known: {', '.join(sorted(known)) or 'none'}"
            )
        obj = getattr(obj, part)
    return obj


def _replace_at(config: Any, path: tuple[str, ...], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(config, **{path[0]: value})
    return dataclasses.replace(config, **{path[0]: _replace_at(getattr(config, path[0]), path[1:], value)})


def _as_kind(current: Any, kind: str, key: str) -> Any:
    """``current`` (a Variant config) as the member ``kind`` of its family (see :func:`apply_overrides`)."""
    from drama_wm.config_io import Variant
    from drama_wm.sequence import BackboneConfig

    family = next(c for c in type(current).__mro__ if Variant in c.__bases__ and issubclass(c, Variant))
    if kind not in family.kinds():
        kinds = ", ".join(family.kinds())
        raise ValueError(f"--set {key}={kind}: expected a kind of {family.__name__}, one of {kinds}")
    if isinstance(current, BackboneConfig):
        return current.as_kind(kind)
    return current if kind == current.kind else family.member(kind)()


__all__ = ["apply_overrides", "parse_overrides"]
