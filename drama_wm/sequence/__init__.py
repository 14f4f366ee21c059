"""Sequence backbones of the world model, all with one interface.

``Mamba2`` (the Drama default), ``Mamba`` (Mamba-1), ``GRU`` and ``Transformer`` map [B, L, d_model] to
[B, L, d_model] and expose

* ``init_state(batch_size, device=None, dtype=None) -> state``
* ``forward(x [B, L, D], state=None, first=None [B, L] bool) -> (y, state)``: parallel over the sequence
* ``step(x [B, D], state, first=None [B] bool) -> (y [B, D], state)``: one token

A state is a flat tuple of tensors, each with the batch as leading dimension; :func:`select_state` and
:func:`merge_state` index and merge them row-wise for any backbone. ``first`` marks episode starts: nothing
from before a start reaches outputs at or after it.
"""

from __future__ import annotations

import inspect

import torch

from drama_wm.sequence.common import ResidualStack, State
from drama_wm.sequence.gru import GRU
from drama_wm.sequence.mamba import Mamba
from drama_wm.sequence.mamba2 import Mamba2, Mamba2Config
from drama_wm.sequence.transformer import Transformer

__all__ = [
    "GRU",
    "KINDS",
    "Mamba",
    "Mamba2",
    "Mamba2Config",
    "ResidualStack",
    "State",
    "Transformer",
    "make",
    "merge_state",
    "select_state",
]

KINDS: dict[str, type[ResidualStack]] = {
    "mamba2": Mamba2,
    "mamba": Mamba,
    "gru": GRU,
    "transformer": Transformer,
}

# Keys a caller may pass to every kind although only some kinds use them. The world model builds any backbone
# with make(kind, d_model=..., n_layers=..., dropout=..., d_state=..., **extra): the SSM state size simply has
# no meaning for the GRU and the Transformer, so it is dropped for them instead of being an error.
_IGNORED_WHERE_UNUSED = frozenset({"d_state"})


def _accepted_keys(cls: type[ResidualStack]) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    return {name for name in params if name != "self"}


def make(kind: str, **kwargs: object) -> ResidualStack:
    """Build the backbone ``kind`` (one of ``KINDS``) from keyword arguments.

    ``d_state`` is silently ignored by the kinds that have no SSM state ("gru", "transformer"). Any other
    keyword the kind does not accept raises a TypeError naming the key and the kind.

    Example: ``make("mamba2", d_model=512, n_layers=2, dropout=0.1, d_state=16, head_dim=128)``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown sequence backbone {kind!r}; valid kinds are {sorted(KINDS)}")
    cls = KINDS[kind]
    accepted = _accepted_keys(cls)
    unknown = sorted(k for k in kwargs if k not in accepted and k not in _IGNORED_WHERE_UNUSED)
    if unknown:
        users = {k: sorted(name for name, c in KINDS.items() if k in _accepted_keys(c)) for k in unknown}
        details = "; ".join(
            f"{k!r} (accepted by {users[k]})" if users[k] else f"{k!r} (accepted by no backbone)" for k in unknown
        )
        raise TypeError(f"sequence backbone {kind!r} does not accept {details}; it accepts {sorted(accepted)}")
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


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
