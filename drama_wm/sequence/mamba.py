"""Mamba (Mamba-1) backbone (Gu & Dao 2024), the ablation of paper Sec. 3.2.2 / Figure 2.

Per layer a selective SSM with a diagonal A [d_inner, N] (one decay per channel *and* state entry):

    h_t = exp(dt_t A) * h_t-1 + (dt_t x_t) B_t^T        h_t [d_inner, N], dt_t [d_inner]
    y_t = h_t C_t + D * x_t

Unlike Mamba-2, the decay differs per (channel, state) entry, so there is no matmul (SSD) form: every
parallel algorithm must touch B * L * d_inner * N numbers. The training form here is a selective scan with a
hand-written backward (:class:`_SelectiveScan`): a loop over time of one fused multiply-add on [B, d_inner, N]
per token (forward) and two (backward), with all other work batched per chunk of 64 tokens. Only the chunk
boundary states are stored, so activation memory is O(L * d_inner) + O(L / 64 * d_inner * N), not
O(L * d_inner * N) as autograd through a scan would need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from drama_wm.checks import positive_int
from drama_wm.sequence.common import (
    Mixer,
    ResidualStack,
    State,
    causal_depthwise_conv,
    conv_step,
    inverse_softplus_dt_bias,
)
from drama_wm.sequence.config import BackboneConfig

_SCAN_CHUNK = 64  # tokens whose [B, d_inner, N] states are materialised at once inside the scan


@dataclass(frozen=True)
class MambaConfig(BackboneConfig, kind="mamba"):
    """A Mamba-1 backbone: the fields of :class:`BackboneConfig` and those of each layer (Mamba's defaults)."""

    d_state: int = 16  #: N, SSM state size per channel
    expand: int = 2  #: E, d_inner = E * D
    d_conv: int = 4  #: K, causal convolution width
    dt_rank: int | None = None  #: R, rank of the dt projection; None: ceil(D / 16) (Mamba's "auto")
    dt_min: float = 1e-3  #: dt starts logUniform[dt_min, dt_max]
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("d_state", "expand", "d_conv"):
            positive_int(f"MambaConfig.{name}", getattr(self, name))
        if self.dt_rank is not None:
            positive_int("MambaConfig.dt_rank", self.dt_rank)
        if not 0.0 < self.dt_min <= self.dt_max:
            raise ValueError(f"MambaConfig needs 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}")

    @property
    def rank(self) -> int:
        """R, the dt projection's rank with "auto" (None) resolved."""
        return math.ceil(self.d_model / 16) if self.dt_rank is None else self.dt_rank


class _SelectiveScan(torch.autograd.Function):
    """Selective scan h_t = exp(dt_t A) * keep_t * h_t-1 + dt_t x_t B_t^T, y_t = h_t C_t.

    Shapes: x, dt [B, L, D]; A [D, N]; Bm, Cm [B, L, N]; h0 [B, D, N]; keep [B, L] (0. at resets) or None.
    Returns y [B, L, D] and the final state [B, D, N]. Internally time-major and contiguous, so that the
    per-token slices [B, D, N] of a chunk are contiguous blocks.
    """

    @staticmethod
    def _time_major(*tensors: torch.Tensor) -> list[torch.Tensor]:
        return [t.transpose(0, 1).contiguous() for t in tensors]

    @staticmethod
    def _chunk(
        x: torch.Tensor,
        dt: torch.Tensor,
        A: torch.Tensor,
        Bm: torch.Tensor,
        keep: torch.Tensor | None,
        h: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the recurrence over one time-major chunk (x, dt [q, B, D], Bm [q, B, N], keep [q, B]).

        Returns (decay [q, B, D, N], states [q, B, D, N]) where states[i] = h after token i.
        """
        decay = (dt.unsqueeze(-1) * A).exp_()  # [q, B, D, N]
        if keep is not None:
            decay.mul_(keep[:, :, None, None])
        states = (dt * x).unsqueeze(-1) * Bm.unsqueeze(-2)  # the inputs dt x B^T, overwritten by the states
        for i in range(states.shape[0]):
            h = states[i].addcmul_(decay[i], h)
        return decay, states

    # ctx is typed Any, as in torch.autograd.Function: FunctionCtx's stub has no saved_tensors.
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        dt: torch.Tensor,
        A: torch.Tensor,
        Bm: torch.Tensor,
        Cm: torch.Tensor,
        h0: torch.Tensor,
        keep: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xs, dts, bs, cs = _SelectiveScan._time_major(x, dt, Bm, Cm)
        ks = _SelectiveScan._time_major(keep)[0] if keep is not None else None
        length = xs.shape[0]
        y = torch.empty_like(xs)
        starts = []
        h = h0.contiguous()
        for t0 in range(0, length, _SCAN_CHUNK):
            sl = slice(t0, min(length, t0 + _SCAN_CHUNK))
            starts.append(h)
            _, states = _SelectiveScan._chunk(xs[sl], dts[sl], A, bs[sl], ks[sl] if ks is not None else None, h)
            y[sl] = (states @ cs[sl].unsqueeze(-1)).squeeze(-1)
            h = states[-1].clone()  # do not keep the whole chunk alive through a view
        ctx.save_for_backward(x, dt, A, Bm, Cm, keep, torch.stack(starts))
        return y.transpose(0, 1), h

    @staticmethod
    def backward(
        ctx: Any, grad_y: torch.Tensor, grad_h: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        x, dt, A, Bm, Cm, keep, starts = ctx.saved_tensors
        xs, dts, bs, cs, gys = _SelectiveScan._time_major(x, dt, Bm, Cm, grad_y)
        ks = _SelectiveScan._time_major(keep)[0] if keep is not None else None
        length = xs.shape[0]
        grad_x, grad_dt = torch.empty_like(xs), torch.empty_like(dts)
        grad_b, grad_c = torch.empty_like(bs), torch.empty_like(cs)
        grad_a = torch.zeros_like(A)
        # carry = dL/dh_{t-1} through the decay, exp(dt_t A) keep_t g_t; it enters at the end as dL/dh_L.
        carry = grad_h.clone() if grad_h is not None else torch.zeros_like(starts[0])
        chunk_starts = list(range(0, length, _SCAN_CHUNK))
        for c in reversed(range(len(chunk_starts))):
            sl = slice(chunk_starts[c], min(length, chunk_starts[c] + _SCAN_CHUNK))
            start = starts[c]
            decay, states = _SelectiveScan._chunk(xs[sl], dts[sl], A, bs[sl], ks[sl] if ks is not None else None, start)
            # g_t = dL/dh_t = gy_t C_t^T + exp(dt_{t+1} A) g_{t+1}, built in place over the readout gradient.
            g = gys[sl].unsqueeze(-1) * cs[sl].unsqueeze(-2)  # [q, B, D, N]
            for i in reversed(range(g.shape[0])):
                carry = g[i].add_(carry) * decay[i]
            grad_c[sl] = (gys[sl].unsqueeze(-2) @ states).squeeze(-2)
            grad_inp = (g @ bs[sl].unsqueeze(-1)).squeeze(-1)  # dL/d(dt x) [q, B, D]
            grad_b[sl] = ((dts[sl] * xs[sl]).unsqueeze(-2) @ g).squeeze(-2)
            # dL/d(dt_t A) = g_t * h_{t-1} * decay_t, computed in place in g (no longer needed).
            g.mul_(decay)
            g[1:].mul_(states[:-1])
            g[0].mul_(start)
            grad_a += (g * dts[sl].unsqueeze(-1)).sum(dim=(0, 1))
            grad_dt[sl] = (g * A).sum(-1) + grad_inp * xs[sl]
            grad_x[sl] = grad_inp * dts[sl]
        return (
            grad_x.transpose(0, 1),
            grad_dt.transpose(0, 1),
            grad_a,
            grad_b.transpose(0, 1),
            grad_c.transpose(0, 1),
            carry,
            None,
        )


def selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    initial_state: torch.Tensor,
    first: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mamba-1 selective scan (without the D skip).

    Args:
        x, dt: [b, L, D] inputs and positive step sizes.
        A: [D, N] negative decay rates.
        B, C: [b, L, N].
        initial_state: [b, D, N].
        first: [b, L] bool or None; at a reset the state from before is dropped.

    Returns:
        y [b, L, D] and the final state [b, D, N].
    """
    keep = (~first).to(x.dtype) if first is not None else None
    return _SelectiveScan.apply(x, dt, A, B, C, initial_state, keep)


class MambaMixer(Mixer):
    """One Mamba-1 mixer: in_proj -> (x, z); causal conv + SiLU; x_proj -> (dt_low, B, C); dt_proj;
    selective scan; y * silu(z); out_proj. State: (conv_state [B, d_inner, K-1], ssm_state [B, d_inner, N]).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int,
        expand: int,
        d_conv: int,
        dt_rank: int,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        self.d_inner = d_inner = expand * d_model
        self.d_state, self.d_conv, self.dt_rank = d_state, d_conv, dt_rank
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        conv = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner)  # for its default initialisation only
        self.conv_weight = nn.Parameter(conv.weight.detach().squeeze(1).clone())  # [d_inner, K]
        assert conv.bias is not None  # Conv1d's bias defaults to on
        self.conv_bias = nn.Parameter(conv.bias.detach().clone())
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        nn.init.uniform_(self.dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
        with torch.no_grad():
            self.dt_proj.bias.copy_(inverse_softplus_dt_bias(d_inner, dt_min, dt_max, dt_init_floor))
        # S4D-real initialisation: A[:, n] = -(n + 1).
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))  # [d_inner, N]
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def state_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        return [(batch_size, self.d_inner, self.d_conv - 1), (batch_size, self.d_inner, self.d_state)]

    def _ssm_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [..., d_inner] -> (dt [..., d_inner], B [..., N], C [..., N])."""
        dt_low, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        return self.dt_proj(dt_low), B, C

    def forward(self, u: torch.Tensor, state: State, first: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """u [B, L, D] -> (y [B, L, D], (conv_state, ssm_state))."""
        conv_state, ssm_state = state
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x, new_conv = causal_depthwise_conv(x, self.conv_weight, self.conv_bias, conv_state, first)
        x = F.silu(x)
        dt, B, C = self._ssm_params(x)
        sdt = ssm_state.dtype  # scan in >= fp32 even under autocast
        with torch.autocast(u.device.type, enabled=False):
            x32 = x.to(sdt)
            y, ssm_state = selective_scan(
                x32,
                F.softplus(dt.to(sdt)),
                -torch.exp(self.A_log.to(sdt)),
                B.to(sdt),
                C.to(sdt),
                ssm_state,
                first,
            )
            y = y + x32 * self.D.to(sdt)
        y = y.to(u.dtype) * F.silu(z)
        return self.out_proj(y), (new_conv.to(conv_state.dtype), ssm_state)

    def step(self, u: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """u [B, D] -> (y [B, D], state); O(1) in the tokens consumed."""
        conv_state, ssm_state = state
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x, new_conv = conv_step(x, self.conv_weight, self.conv_bias, conv_state)
        x = F.silu(x)
        dt, B, C = self._ssm_params(x)
        sdt = ssm_state.dtype
        with torch.autocast(u.device.type, enabled=False):
            x32 = x.to(sdt)
            dt = F.softplus(dt.to(sdt))  # [B, d_inner]
            decay = torch.exp(dt.unsqueeze(-1) * -torch.exp(self.A_log.to(sdt)))  # [B, d_inner, N]
            ssm_state = torch.addcmul((dt * x32).unsqueeze(-1) * B.to(sdt).unsqueeze(1), decay, ssm_state)
            y = (ssm_state @ C.to(sdt).unsqueeze(-1)).squeeze(-1) + x32 * self.D.to(sdt)
        y = y.to(u.dtype) * F.silu(z)
        return self.out_proj(y), (new_conv.to(conv_state.dtype), ssm_state)


class Mamba(ResidualStack):
    """Stack of ``n_layers`` pre-norm residual Mamba-1 blocks with a final RMSNorm.

    Shapes: forward [B, L, d_model] -> [B, L, d_model]; step [B, d_model] -> [B, d_model].
    State: per layer (conv_state [B, E*D, K-1], ssm_state [B, E*D, N]), flattened over layers.
    ``config``: the sizes (the paper's when None).
    """

    config_class = MambaConfig

    def __init__(self, config: MambaConfig | None = None) -> None:
        c = self.checked_config(config)
        mixers = [
            MambaMixer(c.d_model, c.d_state, c.expand, c.d_conv, c.rank, c.dt_min, c.dt_max, c.dt_init_floor)
            for _ in range(c.n_layers)
        ]
        super().__init__(c, mixers)
