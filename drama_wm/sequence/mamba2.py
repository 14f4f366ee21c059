"""Mamba-2 backbone (Dao & Gu 2024, "Transformers are SSMs"), the sequence model of Drama (paper Sec. 2.1).

Per layer the selective state-space model with a scalar decay per head is (paper Eq. 1, Dao & Gu Eq. 1-2):

    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T        h_t [P, N] per head
    y_t = h_t C_t + D x_t

Training uses the chunked state-space-duality (SSD) algorithm: the sequence is cut into chunks of Q tokens;
inside a chunk the output is the quadratic, attention-like form with the segment-sum decay matrix; between
chunks a linear recurrence carries one [P, N] state per head. Time and memory are O(L) for a fixed Q.
Imagination uses the recurrence above, O(1) per token.

Optional: with ``mamba_ssm`` installed, CUDA tensors and ``use_kernels=True``, the SSD scan runs in the
``mamba_chunk_scan_combined`` Triton kernel. Sequences whose ``first`` marks a reset after position 0 take the
pure path (the kernel's ``seq_idx`` is meant for packed variable-length batches; keeping resets in one audited
code path is worth more than the speed on the few batches that contain an episode boundary mid-sequence).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from drama_wm.checks import positive_int
from drama_wm.layers import RMSNorm
from drama_wm.sequence.common import (
    Mixer,
    ResidualStack,
    State,
    causal_depthwise_conv,
    conv_step,
    inverse_softplus_dt_bias,
)
from drama_wm.sequence.config import BackboneConfig


@dataclass(frozen=True)
class Mamba2Config(BackboneConfig, kind="mamba2"):
    """A Mamba-2 backbone: the stack's sizes and those of each layer (paper Table 6 defaults: the XS model).

    Attributes:
        d_model: D, width of the residual stream (512).
        n_layers: Mamba-2 blocks in the stack (2).
        dropout: on each residual branch, in training only (0.1).
        d_state: N, state size per head (16; 32 for the "S" preset).
        expand: E, inner width d_inner = E * D (2).
        head_dim: P, channels per head; H = d_inner / P heads. The paper's Table 6 uses P = 128 (and says
            "512/128 = 4 heads", dividing d_model rather than d_inner); with E = 2 this gives H = 8 heads.
            The authors' code ran the library default P = 64.
        d_conv: K, width of the causal depthwise convolution over (x, B, C) (4).
        chunk_size: Q, SSD chunk length. 64 is the fastest on CPU: a training step of the paper-size model
            (B=8, L=1024, one thread of a Xeon) took 2.5 / 2.3 / 2.5 / 3.2 s for Q = 32 / 64 / 128 / 256; the
            quadratic intra-chunk work grows with Q, the per-chunk overhead shrinks with it.
        dt_min, dt_max, dt_init_floor: dt = softplus(. + dt_bias) starts logUniform[dt_min, dt_max].
        a_init_min, a_init_max: A = -exp(A_log) starts Uniform[a_init_min, a_init_max] per head.
        use_kernels: use mamba_ssm's Triton SSD kernel when it is importable and tensors are on CUDA.
    """

    d_state: int = 16
    expand: int = 2
    head_dim: int = 128
    d_conv: int = 4
    chunk_size: int = 64
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4
    a_init_min: float = 1.0
    a_init_max: float = 16.0
    use_kernels: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("d_state", "expand", "head_dim", "d_conv", "chunk_size"):
            positive_int(f"Mamba2Config.{name}", getattr(self, name))
        if self.d_inner % self.head_dim != 0:
            raise ValueError(f"expand * d_model = {self.d_inner} must be divisible by head_dim = {self.head_dim}")
        if not 0.0 < self.a_init_min <= self.a_init_max:
            raise ValueError(f"need 0 < a_init_min <= a_init_max, got {self.a_init_min}, {self.a_init_max}")

    @property
    def d_inner(self) -> int:
        """E * D, the width of the SSM input x."""
        return self.expand * self.d_model

    @property
    def n_heads(self) -> int:
        """H = d_inner / P."""
        return self.d_inner // self.head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the convolution: x (d_inner) + B (N) + C (N), one group (ngroups = 1)."""
        return self.d_inner + 2 * self.d_state


# ---------------------------------------------------------------------------------------------- SSD
def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor,
    D: torch.Tensor | None = None,
    first: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD scan (Dao & Gu 2024, Sec. 6), pure PyTorch, any sequence length.

    Args:
        x: [b, L, H, P] SSM inputs.
        dt: [b, L, H] positive step sizes.
        A: [H] negative decay rates.
        B, C: [b, L, N] input / output projections shared by all heads (ngroups = 1).
        chunk_size: Q; the last chunk is zero-padded internally (dt = 0 there: decay 1, no input).
        initial_state: [b, H, P, N] state before the first token.
        D: [H] skip connection (y_t += D x_t) or None.
        first: [b, L] bool or None; at a reset the decay from the previous token is zero.

    Returns:
        y [b, L, H, P] and the final state [b, H, P, N].
    """
    b, length, h, p = x.shape
    n = B.shape[-1]
    q = min(chunk_size, length)
    pad = (-length) % q
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        dt = F.pad(dt, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, pad))
        first = F.pad(first, (0, pad)) if first is not None else None
    c = (length + pad) // q

    # One copy into head-major chunks so that every product below is a plain batched matmul over (b, H, c).
    xh = x.view(b, c, q, h, p).permute(0, 3, 1, 2, 4).contiguous()  # [b, H, c, q, P]
    dth = dt.view(b, c, q, h).permute(0, 3, 1, 2)  # [b, H, c, q]
    cs = (dth * A.view(1, h, 1, 1)).cumsum(dim=-1)  # cumulative log-decay from the chunk start
    Bc = B.view(b, c, q, n).unsqueeze(1)  # [b, 1, c, q, N]
    Cc = C.view(b, c, q, n).unsqueeze(1)

    # Which (target t, source s) pairs inside a chunk are connected: causal, and no reset in (s, t].
    causal = torch.ones(q, q, dtype=torch.bool, device=x.device).tril()
    if first is None:
        pair_mask, resets = causal, None
    else:
        resets = first.view(b, c, q).cumsum(dim=-1).unsqueeze(1)  # [b, 1, c, q]: resets in chunk up to t
        pair_mask = (resets.unsqueeze(-1) == resets.unsqueeze(-2)) & causal  # [b, 1, c, q, q]

    # Diagonal blocks: y_t = sum_s exp(cs_t - cs_s) (C_t . B_s) dt_s x_s (the 1-semiseparable matrix, Eq. 4).
    # Masked entries go to -inf *before* exp: exp(+large) would overflow and inf * 0 is NaN.
    seg = (cs.unsqueeze(-1) - cs.unsqueeze(-2)).masked_fill(~pair_mask, -math.inf)  # [b, H, c, q, q]
    scores = torch.exp(seg) * (Cc @ (Bc * dth.unsqueeze(-1)).transpose(-1, -2))  # dt_s folded into B_s
    if D is not None:  # the skip D x_t is the diagonal of the same token-mixing matrix
        scores.diagonal(dim1=-2, dim2=-1).add_(D.view(1, h, 1, 1))

    # Decays are folded into the small B / C factors ([.., N]) instead of the wide x / y ([.., P]).
    decay_to_end = torch.exp(cs[..., -1:] - cs) * dth  # [b, H, c, q]: weight of x_s in the chunk's state
    chunk_decay = torch.exp(cs[..., -1])  # [b, H, c]: decay across the whole chunk
    decay_from_start = torch.exp(cs)  # [b, H, c, q]: decay of the incoming state up to t
    if resets is not None:
        decay_to_end = decay_to_end * (resets[..., -1:] == resets)
        chunk_decay = chunk_decay * (resets[..., -1] == 0)
        decay_from_start = decay_from_start * (resets == 0)
    chunk_states = xh.transpose(-1, -2) @ (Bc * decay_to_end.unsqueeze(-1))  # [b, H, c, P, N]

    # A fresh (all-zero) initial state, as at every dream reset and in every world-model batch, contributes nothing:
    # its read-out and decay are skipped, which gives the same values. Checked on CPU only (the check reads the state
    # back to the host) and never for a state that is part of a graph (its gradient must still be produced).
    zero_start = not initial_state.is_cuda and not initial_state.requires_grad and not bool(initial_state.any())

    # Linear recurrence between chunks: c = L / Q steps on [b, H, P, N], O(L) overall.
    incoming = []
    state = initial_state
    for j, (decay_j, contribution_j) in enumerate(zip(chunk_decay.unbind(2), chunk_states.unbind(2), strict=True)):
        incoming.append(state)
        if j == 0 and zero_start:
            state = contribution_j
        else:
            state = torch.addcmul(contribution_j, decay_j.view(b, h, 1, 1), state)

    # Off-diagonal blocks (incoming state read out by C_t, decayed to t) plus diagonal blocks, in one baddbmm.
    if c == 1 and zero_start:
        y = torch.bmm(scores.flatten(0, 2), xh.flatten(0, 2))
    else:
        # [b, H, c, P, N]: state entering each chunk (a view for a single chunk)
        states_in = initial_state.unsqueeze(2) if c == 1 else torch.stack(incoming, dim=2)
        y_off = (Cc * decay_from_start.unsqueeze(-1)) @ states_in.transpose(-1, -2)  # [b, H, c, q, P]
        y = torch.baddbmm(y_off.flatten(0, 2), scores.flatten(0, 2), xh.flatten(0, 2))
    y = _contiguous_grad(y.view(b, h, c, q, p)).permute(0, 2, 3, 1, 4).reshape(b, c * q, h, p)
    return y[:, :length], state


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    The gradient of a head-major -> token-major permute arrives strided; bmm on CPU then clones it matrix by
    matrix. One explicit copy is about three times cheaper (profiled at B=16, L=1024, H=8, P=128).
    """

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def _contiguous_grad(x: torch.Tensor) -> torch.Tensor:
    return _ContiguousGrad.apply(x)


class _GatedRMSNorm(torch.autograd.Function):
    """out = RMSNorm(y * silu(z)) with a hand-written backward that saves only y, z and 1/rms.

    Autograd through the composite keeps four [tokens, E*D] tensors (silu(z), the product, the normalised
    product, the storage of z's in_proj output) per layer; recomputing them in backward cuts Mamba-2's
    activation memory by about a quarter, which on CPU also saves the page faults of allocating it.
    """

    @staticmethod
    def forward(
        ctx: Any,  # Any, as in torch.autograd.Function: FunctionCtx's stub has no saved_tensors
        y: torch.Tensor,
        z: torch.Tensor,
        weight: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        a = F.silu(z).mul_(y)
        rstd = torch.rsqrt(a.square().mean(-1, keepdim=True).add_(eps))
        ctx.save_for_backward(y, z.contiguous(), weight, rstd)
        return a.mul_(rstd).mul_(weight)

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        y, z, weight, rstd = ctx.saved_tensors
        sig = torch.sigmoid(z)
        gate = z * sig  # silu(z)
        normed = (y * gate).mul_(rstd)  # n = y silu(z) / rms
        grad_w = (grad * normed).sum(dim=tuple(range(grad.dim() - 1)))
        grad_n = grad * weight
        # d n / d a = rstd (I - n n^T / d): project out the radial component.
        dot = (grad_n * normed).mean(-1, keepdim=True)
        grad_a = grad_n.sub_(normed.mul_(dot)).mul_(rstd)
        grad_y = grad_a * gate
        # silu'(z) = sig + silu(z) (1 - sig)
        dsilu = gate.mul_(1 - sig).add_(sig)
        grad_z = grad_a.mul_(y).mul_(dsilu)
        return grad_y, grad_z, grad_w, None


def gated_rms_norm(y: torch.Tensor, z: torch.Tensor, norm: RMSNorm) -> torch.Tensor:
    """norm(y * silu(z)) for y, z [..., d] with the scale and eps of ``norm`` (an RMSNorm of width d).

    Computed in the inputs' precision; under autocast (half inputs) it defers to the composite, which keeps
    RMSNorm's float32 normalisation.
    """
    if y.dtype in (torch.float16, torch.bfloat16) or z.dtype != y.dtype:
        return norm(y * F.silu(z))
    if not (torch.is_grad_enabled() and (y.requires_grad or z.requires_grad or norm.weight.requires_grad)):
        # No graph to build (imagination, acting): skip the autograd.Function and its saved copy of z.
        return F.rms_norm(F.silu(z).mul_(y), norm.weight.shape, norm.weight.to(y.dtype), norm.eps)
    return _GatedRMSNorm.apply(y, z, norm.weight.to(y.dtype), norm.eps)


@functools.cache
def _ssd_kernel() -> Callable[..., tuple[torch.Tensor, torch.Tensor]] | None:
    """mamba_ssm's fused SSD scan, or None when mamba_ssm (or its Triton/CUDA stack) cannot be imported."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except (ImportError, OSError, RuntimeError):
        return None
    return mamba_chunk_scan_combined


def kernels_available() -> bool:
    """True when mamba_ssm's Triton SSD kernel can be imported (it still needs CUDA tensors to run)."""
    return _ssd_kernel() is not None


# -------------------------------------------------------------------------------------------- mixer
class Mamba2Mixer(Mixer):
    """One Mamba-2 mixer: in_proj -> (z, xBC, dt); causal conv + SiLU on xBC; SSD; gated RMSNorm; out_proj.

    State: (conv_state [B, conv_dim, K-1], ssm_state [B, H, P, N]).
    """

    def __init__(self, config: Mamba2Config) -> None:
        super().__init__()
        self.config = cfg = config
        self.in_proj = nn.Linear(cfg.d_model, 2 * cfg.d_inner + 2 * cfg.d_state + cfg.n_heads, bias=False)
        # nn.Conv1d only for its default initialisation; the convolution itself is causal_depthwise_conv.
        conv = nn.Conv1d(cfg.conv_dim, cfg.conv_dim, cfg.d_conv, groups=cfg.conv_dim)
        self.conv_weight = nn.Parameter(conv.weight.detach().squeeze(1).clone())  # [conv_dim, K]
        assert conv.bias is not None  # Conv1d's bias defaults to on
        self.conv_bias = nn.Parameter(conv.bias.detach().clone())  # [conv_dim]
        self.dt_bias = nn.Parameter(inverse_softplus_dt_bias(cfg.n_heads, cfg.dt_min, cfg.dt_max, cfg.dt_init_floor))
        a = torch.empty(cfg.n_heads).uniform_(cfg.a_init_min, cfg.a_init_max)
        self.A_log = nn.Parameter(torch.log(a))  # A = -exp(A_log) < 0: a scalar decay per head
        self.D = nn.Parameter(torch.ones(cfg.n_heads))
        self.norm = RMSNorm(cfg.d_inner)
        self.out_proj = nn.Linear(cfg.d_inner, cfg.d_model, bias=False)

    def state_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        cfg = self.config
        return [
            (batch_size, cfg.conv_dim, cfg.d_conv - 1),
            (batch_size, cfg.n_heads, cfg.head_dim, cfg.d_state),
        ]

    def _split_proj(self, zxbcdt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.config
        z, xbc, dt = torch.split(zxbcdt, [cfg.d_inner, cfg.conv_dim, cfg.n_heads], dim=-1)
        return z, xbc, dt

    def _scan(
        self,
        x: torch.Tensor,
        dt: torch.Tensor,
        A: torch.Tensor,
        B: torch.Tensor,
        C: torch.Tensor,
        D: torch.Tensor,
        ssm_state: torch.Tensor,
        first: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes as :func:`ssd_scan`. Chooses the Triton kernel or the pure path (see module docstring)."""
        kernel = _ssd_kernel() if self.config.use_kernels and x.is_cuda else None
        if kernel is not None and (first is None or not bool(first[:, 1:].any())):
            if first is not None:  # a reset at t = 0 only: start those rows from the fresh (zero) state
                ssm_state = ssm_state.masked_fill(first[:, 0].view(-1, 1, 1, 1), 0)
            y, final = kernel(
                x.contiguous(),
                dt.contiguous(),
                A.contiguous(),
                B.unsqueeze(2).contiguous(),
                C.unsqueeze(2).contiguous(),
                self.config.chunk_size,
                D=D,
                initial_states=ssm_state.contiguous(),
                return_final_states=True,
            )
            return y, final.to(ssm_state.dtype)
        return ssd_scan(x, dt, A, B, C, self.config.chunk_size, ssm_state, D, first)

    def forward(self, u: torch.Tensor, state: State, first: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """u [B, L, D] -> (y [B, L, D], (conv_state, ssm_state))."""
        cfg = self.config
        conv_state, ssm_state = state
        batch, length, _ = u.shape
        z, xbc, dt = self._split_proj(self.in_proj(u))
        new_conv = causal_depthwise_conv(xbc, self.conv_weight, self.conv_bias, conv_state, first)
        xbc, conv_state = new_conv[0], new_conv[1].to(conv_state.dtype)
        x, B, C = torch.split(F.silu(xbc), [cfg.d_inner, cfg.d_state, cfg.d_state], dim=-1)
        # Own copies of the narrow B, C (2N of E*D + 2N columns): views would keep the whole SiLU output alive
        # for backward, and x is copied head-major inside the scan anyway.
        B, C = B.contiguous(), C.contiguous()
        x = x.reshape(batch, length, cfg.n_heads, cfg.head_dim)
        # The scan runs in the state's precision (>= fp32) even under autocast: it accumulates over L steps.
        sdt = ssm_state.dtype
        with torch.autocast(u.device.type, enabled=False):
            dt = F.softplus(dt.to(sdt) + self.dt_bias.to(sdt))  # [B, L, H]
            A = -torch.exp(self.A_log.to(sdt))  # [H]
            D = self.D.to(sdt)
            y, ssm_state = self._scan(x.to(sdt), dt, A, B.to(sdt), C.to(sdt), D, ssm_state, first)
        y = y.reshape(batch, length, cfg.d_inner).to(u.dtype)
        y = gated_rms_norm(y, z, self.norm)  # norm(y * silu(z)): Mamba-2's gated RMSNorm (norm_before_gate=False)
        return self.out_proj(y), (conv_state, ssm_state)

    def step(self, u: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """u [B, D] -> (y [B, D], state). The recurrence of paper Eq. 1, O(1) in the tokens consumed."""
        cfg = self.config
        h, p, n = cfg.n_heads, cfg.head_dim, cfg.d_state
        conv_state, ssm_state = state
        z, xbc, dt = self._split_proj(self.in_proj(u))
        xbc, new_conv = conv_step(xbc, self.conv_weight, self.conv_bias, conv_state)
        conv_state = new_conv.to(conv_state.dtype)
        x, B, C = torch.split(F.silu(xbc), [cfg.d_inner, n, n], dim=-1)
        x = x.reshape(-1, h, p)  # [B, H, P]
        sdt = ssm_state.dtype
        with torch.autocast(u.device.type, enabled=False):
            x = x.to(sdt)
            dt = F.softplus(dt.to(sdt) + self.dt_bias.to(sdt))  # [B, H]
            decay = torch.exp(dt * -torch.exp(self.A_log.to(sdt)))  # [B, H]
            ssm_state, y = ssm_step(ssm_state, decay, x * dt.unsqueeze(-1), B.to(sdt), C.to(sdt))
            y = y.addcmul_(x, self.D.to(sdt).view(-1, 1))  # + D x
        y = y.reshape(-1, cfg.d_inner).to(u.dtype)
        y = gated_rms_norm(y, z, self.norm)
        return self.out_proj(y), (conv_state, ssm_state)


def ssm_step(
    state: torch.Tensor, decay: torch.Tensor, x_dt: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the Mamba-2 recurrence: h' = decay h + (x dt) B^T and y = h' C (without the D skip).

    Shapes: state [b, H, P, N], decay [b, H], x_dt [b, H, P], B and C [b, N] -> (h' [b, H, P, N], y [b, H, P]).

    The state is the one large tensor of an imagined step (1 MB at cpu_demo's b=64, 16 MB at b=1024 for that model), so
    this touches it as little as possible: one allocation for h' (written by the decay product, then the rank-1 input
    added in place; the same roundings as ``decay * h + (x dt) B^T``) and one read for y, a batched
    row-vector-times-matrix product over the transposed state view. Composing it from broadcast ops allocated three
    state-sized temporaries (about 3x slower on one CPU thread, most of it page faults on freshly allocated memory).
    """
    b, h, p, n = state.shape
    new = state * decay.view(b, h, 1, 1)
    new.add_(x_dt.unsqueeze(-1) * B.view(b, 1, 1, n))
    y = torch.bmm(C.view(b, 1, n), new.view(b, h * p, n).transpose(1, 2))  # [b, 1, H * P]
    return new, y.view(b, h, p)


class Mamba2(ResidualStack):
    """Stack of ``n_layers`` pre-norm residual Mamba-2 blocks with a final RMSNorm (the Drama sequence model).

    Shapes: forward [B, L, d_model] -> [B, L, d_model]; step [B, d_model] -> [B, d_model].
    State: per layer (conv_state [B, E*D + 2N, K-1], ssm_state [B, H, P, N]), flattened over layers.
    ``config``: the sizes (the paper's when None).
    """

    config_class = Mamba2Config

    def __init__(self, config: Mamba2Config | None = None) -> None:
        config = self.checked_config(config)
        super().__init__(config, [Mamba2Mixer(config) for _ in range(config.n_layers)])
