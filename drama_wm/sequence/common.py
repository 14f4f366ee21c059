"""Machinery shared by the sequence backbones: the mixer interface, the residual stack, input checks and the
reset-aware causal depthwise convolution used by both Mamba blocks.

Conventions used throughout ``drama_wm.sequence`` (B = batch, L = sequence length, D = d_model):

* A *state* is a flat ``tuple[torch.Tensor, ...]`` of fixed length per backbone instance; every tensor has the
  batch as its leading dimension, so states can be indexed and merged row-wise without knowing the backbone.
* ``first`` is an optional bool tensor ([B, L] for ``forward``, [B] for ``step``) marking episode starts. A reset
  at t means token t is processed exactly as if it were the first token after ``init_state``: nothing computed
  from tokens before t (recurrent state, convolution window, attention keys) reaches outputs at or after t.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from drama_wm.checks import positive_int
from drama_wm.layers import RMSNorm
from drama_wm.sequence.config import BackboneConfig

State = tuple[torch.Tensor, ...]
C = TypeVar("C", bound=BackboneConfig)


class Mixer(nn.Module, abc.ABC):
    """One sequence-mixing layer (the token-mixing half of a residual block).

    Subclasses define the state layout and the two computation forms. They receive inputs already validated
    by :class:`ResidualStack` and never see ``first`` in ``step``: the stack resets state rows beforehand.
    """

    @abc.abstractmethod
    def state_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        """Shapes of this layer's state tensors for ``batch_size`` rows (batch first)."""

    def state_dtypes(self, dtype: torch.dtype) -> list[torch.dtype]:
        """Dtype of each state tensor when the floating state dtype is ``dtype``. Default: all floating."""
        return [dtype] * len(self.state_shapes(1))

    def init_state(self, batch_size: int, device: torch.device | None, dtype: torch.dtype) -> State:
        """Fresh (all-zero / all-False) state: the state before the first token of an episode."""
        return tuple(
            torch.zeros(shape, device=device, dtype=dt)
            for shape, dt in zip(self.state_shapes(batch_size), self.state_dtypes(dtype), strict=True)
        )

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, state: State, first: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """Parallel form. x [B, L, D], first [B, L] bool or None -> (y [B, L, D], state after the last token)."""

    @abc.abstractmethod
    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Recurrent form for one token. x [B, D] -> (y [B, D], next state)."""


class ResidualStack(nn.Module):
    """Pre-norm residual stack shared by all backbones: ``h = h + drop(mixer(norm(h)))`` per layer, optionally
    followed by ``h = h + drop(ffn(norm(h)))`` (Transformer blocks), then a final RMSNorm (paper Table 6:
    RMSNorm, pre-norm residual). Shapes: [B, L, d_model] -> [B, L, d_model].

    Subclasses name their config class (``config_class``), build the mixers from a config of it and pass both
    here; this class owns input validation, the flat state layout and dropout.

    ``cpu_tokens_per_pass``: on CPU, ``forward`` processes the batch in groups of about this many tokens
    (whole rows, at least one), which keeps each op's tensors cache-sized; None processes the whole batch at
    once (the GRU, whose recurrence is faster over more rows). Results do not depend on it.
    """

    cpu_tokens_per_pass: int | None = 2048
    config_class: ClassVar[type[BackboneConfig]]  #: the config dataclass this backbone is built from

    def __init__(
        self,
        config: BackboneConfig,
        mixers: Sequence[Mixer],
        ffns: Sequence[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if len(mixers) != config.n_layers:
            raise ValueError(f"got {len(mixers)} mixers for n_layers = {config.n_layers}")
        if ffns is not None and len(ffns) != len(mixers):
            raise ValueError(f"got {len(ffns)} feed-forward blocks for {len(mixers)} mixers")
        self.config = config
        d_model, dropout = config.d_model, config.dropout
        self.d_model = d_model
        self.n_layers = len(mixers)
        self.mixers = nn.ModuleList(mixers)
        self.mixer_norms = nn.ModuleList(RMSNorm(d_model) for _ in mixers)
        self.ffns = nn.ModuleList(ffns) if ffns is not None else None
        self.ffn_norms = nn.ModuleList(RMSNorm(d_model) for _ in mixers) if ffns is not None else None
        self.final_norm = RMSNorm(d_model)
        # Dropout on each residual branch, active in training mode only; skipped entirely when 0.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._state_counts = [len(m.state_shapes(1)) for m in mixers]

    @classmethod
    def checked_config(cls, config: C | None) -> C:
        """``config``, or the paper's defaults when None; a TypeError when it is not a ``config_class``."""
        if config is None:
            return cls.config_class()  # type: ignore[return-value]
        if not isinstance(config, cls.config_class):
            raise TypeError(
                f"{cls.__name__} is built from a {cls.config_class.__name__}, got {type(config).__name__}; "
                "drama_wm.sequence.make(config) picks the backbone of any BackboneConfig"
            )
        return config

    @property
    def _layer_mixers(self) -> Sequence[Mixer]:
        """``self.mixers`` typed as what it holds (an ``nn.ModuleList`` yields plain Modules to a type checker)."""
        return cast(Sequence[Mixer], self.mixers)

    # ----------------------------------------------------------------------------------------- state layout
    def state_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        """Shapes of the flat state tuple for ``batch_size`` rows."""
        return [shape for m in self._layer_mixers for shape in m.state_shapes(batch_size)]

    def init_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Fresh state for ``batch_size`` rows. ``dtype`` (floating tensors only) defaults to the parameters'."""
        positive_int("batch_size", batch_size)
        param = next(self.parameters())
        device = param.device if device is None else torch.device(device)
        dtype = param.dtype if dtype is None else dtype
        if not dtype.is_floating_point:
            raise TypeError(f"state dtype must be floating point, got {dtype}")
        return tuple(s for m in self._layer_mixers for s in m.init_state(batch_size, device, dtype))

    def _split_state(self, state: State) -> list[State]:
        out, i = [], 0
        for n in self._state_counts:
            out.append(tuple(state[i : i + n]))
            i += n
        return out

    def _check_state(self, state: State, batch_size: int, device: torch.device) -> None:
        if not isinstance(state, tuple):
            raise TypeError(f"state must be a tuple of tensors, got {type(state).__name__}")
        shapes = self.state_shapes(batch_size)
        if len(state) != len(shapes):
            raise ValueError(f"state must have {len(shapes)} tensors for this backbone, got {len(state)}")
        for i, (s, shape) in enumerate(zip(state, shapes, strict=True)):
            if not isinstance(s, torch.Tensor):
                raise TypeError(f"state[{i}] must be a torch.Tensor, got {type(s).__name__}")
            if tuple(s.shape) != shape:
                raise ValueError(
                    f"state[{i}] must have shape {shape} (batch {batch_size}), got {tuple(s.shape)}; "
                    "was the state made for another batch size or backbone?"
                )
            if s.device != device:
                raise ValueError(f"state[{i}] is on {s.device} but the input is on {device}")

    # ----------------------------------------------------------------------------------------- computation
    def forward(
        self, x: torch.Tensor, state: State | None = None, first: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Parallel form over a whole sequence.

        Args:
            x: [B, L, d_model] input tokens.
            state: state to continue from (from ``init_state``/``forward``/``step``); None = fresh.
            first: optional bool [B, L]; True at t resets the recurrent state before token t.

        Returns:
            y [B, L, d_model] and the state after the last token.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape [B, L, {self.d_model}], got {_shape_of(x)}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x must have a non-empty batch and sequence, got shape {tuple(x.shape)}")
        batch = x.shape[0]
        if state is None:
            state = self.init_state(batch, x.device, _state_dtype(x.dtype))
        else:
            self._check_state(state, batch, x.device)
        if first is not None:
            _check_first(first, tuple(x.shape[:2]), x.device)
            if not bool(first.any()):
                first = None  # the reset-free fast path computes the same thing
        rows = (
            batch
            if self.cpu_tokens_per_pass is None or x.device.type != "cpu"
            else self.cpu_tokens_per_pass // x.shape[1]
        )
        if rows >= batch:
            return self._forward_layers(x, state, first)
        # CPU only: run groups of rows one after the other so that each group's activations stay in cache. The
        # rows are independent, so the result is the same; at B=16, L=1024, d_model=512 on a 2-core Xeon this
        # made a Mamba-2 training step about 1.5x faster than one pass over the whole batch.
        rows = max(rows, 1)
        outputs, states = [], []
        for start in range(0, batch, rows):
            part = slice(start, start + rows)
            part_first = first[part] if first is not None and bool(first[part].any()) else None
            y, s = self._forward_layers(x[part], tuple(t[part] for t in state), part_first)
            outputs.append(y)
            states.append(s)
        return torch.cat(outputs), tuple(torch.cat(parts) for parts in zip(*states, strict=True))

    def _forward_layers(self, x: torch.Tensor, state: State, first: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """The stack over an already validated batch (see ``forward``)."""
        new_state: list[torch.Tensor] = []
        h = x
        for i, (mixer, layer_state) in enumerate(zip(self._layer_mixers, self._split_state(state), strict=True)):
            y, s = mixer(self.mixer_norms[i](h), layer_state, first)
            h = h + self.dropout(y)
            if self.ffns is not None and self.ffn_norms is not None:
                h = h + self.dropout(self.ffns[i](self.ffn_norms[i](h)))
            new_state.extend(s)
        return self.final_norm(h), tuple(new_state)

    def step(self, x: torch.Tensor, state: State, first: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """Recurrent form for one token.

        Args:
            x: [B, d_model] the next token.
            state: the current state.
            first: optional bool [B]; rows marked True are reset to the fresh state before processing ``x``.

        Returns:
            y [B, d_model] and the next state.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape [B, {self.d_model}] in step(), got {_shape_of(x)}")
        batch = x.shape[0]
        self._check_state(state, batch, x.device)
        if first is not None:
            _check_first(first, (batch,), x.device)
            # Every fresh state is all zeros / all False, so a reset is a row-wise zeroing of every tensor.
            state = tuple(s.masked_fill(first.view(-1, *[1] * (s.dim() - 1)), 0) for s in state)
        new_state: list[torch.Tensor] = []
        h = x
        for i, (mixer, layer_state) in enumerate(zip(self._layer_mixers, self._split_state(state), strict=True)):
            y, s = mixer.step(self.mixer_norms[i](h), layer_state)
            h = h + self.dropout(y)
            if self.ffns is not None and self.ffn_norms is not None:
                h = h + self.dropout(self.ffns[i](self.ffn_norms[i](h)))
            new_state.extend(s)
        return self.final_norm(h), tuple(new_state)


# --------------------------------------------------------------------------------------------------- checks
def _shape_of(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    # Recurrent state accumulates over many steps: never keep it in half precision.
    return torch.promote_types(dtype, torch.float32)


def _check_first(first: object, shape: tuple[int, ...], device: torch.device) -> None:
    if not isinstance(first, torch.Tensor):
        raise TypeError(f"first must be a bool tensor of shape {shape}, got {type(first).__name__}")
    if first.dtype != torch.bool:
        raise TypeError(f"first must have dtype torch.bool, got {first.dtype}")
    if tuple(first.shape) != shape:
        raise ValueError(f"first must have shape {shape}, got {tuple(first.shape)}")
    if first.device != device:
        raise ValueError(f"first is on {first.device} but the input is on {device}")


# ---------------------------------------------------------------------------------- reset-aware conv1d
class _ShiftedMultiplyAdd(torch.autograd.Function):
    """y[b, t] = bias + sum_j w[:, j] * keep_j[b, t] * xt[b, t + j] for j < K: a causal depthwise convolution.

    Hand-written backward: autograd over K sliced multiply-adds zero-fills a [B, K-1+L, C] buffer per tap;
    here each tap costs one in-place multiply-add for grad_x and one multiply + reduce for grad_w.
    On CPU this is several times faster than F.conv1d's (oneDNN) depthwise backward.
    """

    @staticmethod
    def forward(
        ctx: Any,  # Any, as in torch.autograd.Function: FunctionCtx's stub has no saved_tensors
        xt: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        keep: torch.Tensor | None,
    ) -> torch.Tensor:
        k = weight.shape[1]
        length = xt.shape[1] - (k - 1)
        y = bias.expand(xt.shape[0], length, -1).clone()
        for j in range(k):
            src = xt[:, j : j + length]
            y.addcmul_(src if keep is None else src * keep[j], weight[:, j])
        ctx.save_for_backward(xt, weight, keep)
        return y

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None]:
        xt, weight, keep = ctx.saved_tensors
        k = weight.shape[1]
        length = grad.shape[1]
        grad_xt = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_xt = torch.zeros_like(xt)
        if ctx.needs_input_grad[1]:
            grad_w = torch.empty_like(weight)
        for j in range(k):
            g = grad if keep is None else grad * keep[j]
            if grad_xt is not None:
                grad_xt[:, j : j + length].addcmul_(g, weight[:, j])
            if grad_w is not None:
                grad_w[:, j] = (g * xt[:, j : j + length]).sum(dim=(0, 1))
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum(dim=(0, 1))
        return grad_xt, grad_w, grad_b, None


def causal_depthwise_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    conv_state: torch.Tensor,
    first: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise convolution over time that continues from ``conv_state`` and respects resets.

    Args:
        x: [B, L, C] inputs.
        weight: [C, K] kernel; weight[:, K-1] multiplies the current input, weight[:, K-1-k] the input k steps ago.
        bias: [C].
        conv_state: [B, C, K-1] the K-1 inputs preceding x (oldest first), zeros for a fresh state.
        first: [B, L] bool or None. Inputs before a reset contribute nothing at or after it, exactly as if the
            conv state had been zero there.

    Returns:
        y [B, L, C] (pre-activation) and the new conv state [B, C, K-1].
    """
    k = weight.shape[1]
    xt = torch.cat([conv_state.transpose(1, 2).to(x.dtype), x], dim=1)  # [B, K-1+L, C], time-major like x
    keep = None
    tail = xt[:, xt.shape[1] - (k - 1) :]  # [B, K-1, C]
    if first is not None:
        # Episode index of every position (the K-1 state positions count as episode 0): the input at s may
        # reach the output at t only when both lie in the same episode.
        seg = F.pad(first.cumsum(dim=1), (k - 1, 0))  # [B, K-1+L]
        length = x.shape[1]
        keep = torch.stack([seg[:, j : j + length] == seg[:, k - 1 :] for j in range(k)])  # [K, B, L]
        keep = keep.unsqueeze(-1).to(x.dtype)
        tail = tail * (seg[:, seg.shape[1] - (k - 1) :] == seg[:, -1:]).unsqueeze(-1)
    y = _ShiftedMultiplyAdd.apply(xt, weight.to(x.dtype), bias.to(x.dtype), keep)
    return y, tail.transpose(1, 2)


def conv_step(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv_state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of :func:`causal_depthwise_conv`. x [B, C], conv_state [B, C, K-1] -> (y [B, C], new state).

    One multiply-add per tap on [B, C] slices: a reduction over the size-K last axis of a [B, C, K] product is
    about twice as slow on CPU for these narrow windows (0.49 vs 0.26 ms at B=256, C=288, K=4, one thread).
    """
    k = weight.shape[1]
    y = torch.addcmul(bias, x, weight[:, k - 1]) if bias is not None else x * weight[:, k - 1]
    for j in range(k - 1):
        y.addcmul_(conv_state[:, :, j], weight[:, j])
    if k == 1:
        return y, conv_state
    # The window shifted by one, stacked from [B, C] slices (a cat along the size-K-1 last axis is ~4x slower).
    return y, torch.stack([*conv_state[:, :, 1:].unbind(-1), x], dim=-1)


def inverse_softplus_dt_bias(
    size: int, dt_min: float, dt_max: float, dt_init_floor: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bias b such that softplus(b) ~ logUniform[dt_min, dt_max] (Mamba's dt initialisation), shape [size]."""
    if not 0.0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    u = torch.rand(size, generator=generator)
    dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))  # softplus^{-1}(dt) = log(exp(dt) - 1), stable form
