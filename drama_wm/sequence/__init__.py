"""Sequence backbones of the world model, all with one interface.

``Mamba2`` (the Drama default), ``Mamba`` (Mamba-1), ``GRU`` and ``Transformer`` map [B, L, d_model] to
[B, L, d_model]. Each is built from its config, a member of the :class:`BackboneConfig` family (``Mamba2Config``,
``MambaConfig``, ``GRUConfig``, ``TransformerConfig``); :func:`make` builds the backbone of any of them. They expose

* ``init_state(batch_size, device=None, dtype=None) -> state``
* ``forward(x [B, L, D], state=None, first=None [B, L] bool) -> (y, state)``: parallel over the sequence
* ``step(x [B, D], state, first=None [B] bool) -> (y [B, D], state)``: one token

A state is a flat tuple of tensors, each with the batch as leading dimension; :func:`select_state` and
:func:`merge_state` index and merge them row-wise for any backbone. ``first`` marks episode starts: nothing
from before a start reaches outputs at or after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch

from drama_wm.sequence.common import ResidualStack, State
from drama_wm.sequence.config import SHARED_SIZES, BackboneConfig
from drama_wm.sequence.gru import GRU, GRUConfig
from drama_wm.sequence.mamba import Mamba, MambaConfig
from drama_wm.sequence.mamba2 import Mamba2, Mamba2Config
from drama_wm.sequence.transformer import Transformer, TransformerConfig

__all__ = [
    "BACKBONES",
    "GRU",
    "KINDS",
    "SHARED_SIZES",
    "BackboneConfig",
    "GRUConfig",
    "Mamba",
    "Mamba2",
    "Mamba2Config",
    "MambaConfig",
    "ResidualStack",
    "State",
    "Transformer",
    "TransformerConfig",
    "make",
    "merge_state",
    "select_state",
]

#: Which backbone each config builds.
BACKBONES: dict[type[BackboneConfig], type[ResidualStack]] = {
    backbone.config_class: backbone for backbone in (Mamba2, Mamba, GRU, Transformer)
}
#: The kind names, Drama's first (for command lines and benchmarks; ``BackboneConfig.member(kind)`` is the config).
KINDS: tuple[str, ...] = tuple(config.kind for config in BACKBONES)


def make(config: BackboneConfig) -> ResidualStack:
    """The backbone ``config`` describes, e.g. ``make(Mamba2Config(d_model=128, n_layers=1, head_dim=32))``."""
    backbone = BACKBONES.get(type(config))
    if backbone is None:
        known = ", ".join(c.__name__ for c in BACKBONES)
        raise TypeError(
            f"make() takes a backbone config ({known}), got {type(config).__name__}; "
            "BackboneConfig.member(kind)() is the default config of a kind name"
        )
    # Each backbone's __init__ takes its config alone (the base class's also takes the mixers).
    return cast(Callable[[BackboneConfig], ResidualStack], backbone)(config)


def select_state(state: State, index: torch.Tensor | slice | int | list[int]) -> State:
    """Rows ``index`` of every tensor of ``state`` (batch is the leading dimension of each).

    An int index keeps the batch dimension (returns a batch of one), so the result is always a valid state.
    """
    if isinstance(index, int) and not isinstance(index, bool):
        index = slice(index, index + 1) if index != -1 else slice(-1, None)
    return tuple(s[index] for s in state)


def merge_state(mask: torch.Tensor, new_state: State, old_state: State) -> State:
    """Row-wise merge: rows where ``mask`` [B] (bool) is True come from ``new_state``, the others from
    ``old_state``. Both states must come from the same backbone and batch size.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 1:
        raise TypeError(f"mask must be a 1-d bool tensor [B], got {_describe(mask)}")
    if len(new_state) != len(old_state):
        raise ValueError(f"states have different lengths: {len(new_state)} and {len(old_state)}")
    out = []
    for i, (a, b) in enumerate(zip(new_state, old_state, strict=True)):
        if a.shape != b.shape or a.shape[0] != mask.shape[0]:
            raise ValueError(
                f"state[{i}] shapes {tuple(a.shape)} and {tuple(b.shape)} must match each other and "
                f"the mask's batch {mask.shape[0]}"
            )
        out.append(torch.where(mask.view(-1, *[1] * (a.dim() - 1)), a, b))
    return tuple(out)


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__
