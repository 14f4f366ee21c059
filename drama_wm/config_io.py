"""Configs as plain data: one way to turn nested config dataclasses into dicts and back.

Checkpoints, sweeps and JSON files store configs as plain data (dicts, lists, tuples, numbers, strings); this module
rebuilds the typed dataclasses from their field annotations, so no config writes its own ``from_dict``:

- a nested dataclass field is rebuilt from its dict;
- ``tuple[...]`` fields get tuples back (JSON turns them into lists);
- a field typed with a :class:`Variant` family (e.g. the sequence backbone, the behaviour learner) holds one of the
  family's member configs; its dict names the member by ``"kind"``.

Unknown keys are errors that list the known fields; missing keys take the field's default, so configs saved before
a field existed still load.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from typing import Any, ClassVar, TypeVar, Union

T = TypeVar("T")


class Variant:
    """Base of a family of config dataclasses told apart by a ``kind`` name.

    A family is a direct subclass without a kind (``class BackboneConfig(Variant)``); its members name theirs
    (``class Mamba2Config(BackboneConfig, kind="mamba2")``). Members defined in optional modules register by module
    path first (:meth:`register_lazy`), so a saved config of theirs loads without importing them up front.
    """

    kind: ClassVar[str] = ""
    _members: ClassVar[dict[str, type]]
    _lazy: ClassVar[dict[str, str]]

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is None:
            if Variant in cls.__bases__:  # a new family
                cls._members, cls._lazy = {}, {}
            return
        if kind in cls._members:
            raise ValueError(f"{cls.__name__}: kind {kind!r} is already taken by {cls._members[kind].__name__}")
        cls.kind = kind
        cls._members[kind] = cls

    @classmethod
    def register_lazy(cls, kind: str, module: str) -> None:
        """Member ``kind`` is defined in ``module``, imported the first time the kind is asked for."""
        cls._lazy.setdefault(kind, module)

    @classmethod
    def kinds(cls) -> list[str]:
        """Every kind of this family, registered or lazy."""
        return sorted({*cls._members, *cls._lazy})

    @classmethod
    def member(cls, kind: str) -> type:
        """The member config class named ``kind`` (imports its module when registered lazily)."""
        if kind not in cls._members and kind in cls._lazy:
            try:
                importlib.import_module(cls._lazy[kind])
            except ImportError as error:
                module = cls._lazy[kind]
                raise ValueError(f"{cls.__name__} kind {kind!r} needs {module}, which failed: {error}") from None
        if kind not in cls._members:
            raise ValueError(f"unknown {cls.__name__} kind {kind!r}; known kinds: {', '.join(cls.kinds())}")
        return cls._members[kind]


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain data; members of a :class:`Variant` family carry their ``"kind"``."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"to_dict takes a config dataclass instance, got {type(config).__name__}")
    out: dict[str, Any] = {"kind": config.kind} if isinstance(config, Variant) and config.kind else {}
    for f in dataclasses.fields(config):
        out[f.name] = _plain(getattr(config, f.name))
    return out


def from_dict(cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """Rebuild the config dataclass ``cls`` from :func:`to_dict` output (or JSON of it).

    ``cls`` may be a :class:`Variant` family; ``data["kind"]`` then picks the member. ``where`` names the config in
    error messages (``cls``'s name by default).
    """
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise TypeError(f"{where} must be a dict of its fields, got {type(data).__name__}")
    data = dict(data)
    if isinstance(cls, type) and issubclass(cls, Variant):
        kind = data.pop("kind", None)
        if kind is None and not cls.kind:
            raise ValueError(f"{where} must name its kind (one of {', '.join(cls.kinds())}) under 'kind'")
        if kind is not None and kind != cls.kind:
            member = cls.member(kind)
            if not issubclass(member, cls):
                raise ValueError(f"{where}: kind {kind!r} is a {member.__name__}, not a {cls.__name__}")
            cls = member
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{where}: {cls.__name__} is not a config dataclass")
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where} has no field {', '.join(map(repr, unknown))}; known fields: {', '.join(known)}")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**values)


def is_plain(value: Any) -> bool:
    """Whether ``value`` is plain data: None, bool, int, float, str, and lists, tuples and str-keyed dicts of them."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _convert(annotation: Any, value: Any, where: str) -> Any:
    """``value`` (plain data) as the type ``annotation`` says; a clear error when it cannot be."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, where)
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        raise TypeError(f"{where}: {value!r} fits none of {annotation}: " + "; ".join(errors))
    if isinstance(annotation, type) and (dataclasses.is_dataclass(annotation) or issubclass(annotation, Variant)):
        return from_dict(annotation, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where} must be a tuple (or list), got {value!r}")
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ValueError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{where} must be a dict, got {value!r}")
        return dict(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where} must be a list, got {value!r}")
        return list(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{where} must be a bool, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where} must be an int, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a string, got {value!r}")
        return value
    return value  # other annotations (enums, protocols) are taken as stored


__all__ = ["Variant", "from_dict", "is_plain", "to_dict"]
