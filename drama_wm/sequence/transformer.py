"""Causal Transformer backbone with a sliding attention window and a key/value cache (paper Sec. 3.2.3 and
Figure 10 baseline).

Positions: ALiBi (Press et al. 2022), a per-head linear penalty -m_h * (t - s) on the attention logits. It
depends only on the distance between query and key, so it needs no position counter in the state and is
identical in the parallel form, in the cached step form and across the sliding window.

Window: token t attends to the tokens s with t - max_len < s <= t of its own episode. The state caches the
keys and values of the last ``max_len - 1`` tokens (shift buffer) plus a validity flag per slot, so ``step``
costs O(max_len) however many tokens were consumed. ``forward`` over more than ``max_len`` tokens computes the
same sliding-window attention (masked; its cost is still quadratic in the sequence length).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from drama_wm.checks import positive_int
from drama_wm.sequence.common import Mixer, ResidualStack, State
from drama_wm.sequence.config import BackboneConfig


@dataclass(frozen=True)
class TransformerConfig(BackboneConfig, kind="transformer"):
    """A causal Transformer backbone: the fields of :class:`BackboneConfig` and those of each block."""

    n_heads: int = 8  #: attention heads; d_model must be divisible by it
    max_len: int = 128  #: attention window: a token sees itself and the max_len - 1 tokens before it
    mlp_ratio: int = 4  #: MLP width = mlp_ratio * d_model

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_heads", "max_len", "mlp_ratio"):
            positive_int(f"TransformerConfig.{name}", getattr(self, name))
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model = {self.d_model} must be divisible by n_heads = {self.n_heads}")


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi slopes [n_heads]: the geometric sequence 2^(-8/n), 2^(-16/n), ... for n a power of two; otherwise
    those of the next lower power of two followed by every other slope of the next higher one (Press et al.).
    """

    def powers(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    lower = 2 ** math.floor(math.log2(n_heads))
    slopes = powers(lower)
    if lower < n_heads:
        slopes += powers(2 * lower)[0::2][: n_heads - lower]
    return torch.tensor(slopes)


class CausalSelfAttention(Mixer):
    """Multi-head causal self-attention with ALiBi and a window of ``max_len`` tokens.

    State: (keys [B, H, max_len-1, d_head], values [B, H, max_len-1, d_head], valid [B, max_len-1] bool),
    oldest slot first.
    """

    slopes: torch.Tensor  #: [H] ALiBi slopes, a non-persistent buffer

    def __init__(self, d_model: int, n_heads: int, max_len: int) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model = {d_model} must be divisible by n_heads = {n_heads}")
        self.d_model, self.n_heads, self.max_len = d_model, n_heads, max_len
        self.d_head = d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    @property
    def cache_len(self) -> int:
        """Previous tokens kept in the state: max_len - 1 (the current token completes the window)."""
        return self.max_len - 1

    def state_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        kv = (batch_size, self.n_heads, self.cache_len, self.d_head)
        return [kv, kv, (batch_size, self.cache_len)]

    def state_dtypes(self, dtype: torch.dtype) -> list[torch.dtype]:
        return [dtype, dtype, torch.bool]

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, L, D] -> q, k, v each [B, H, L, d_head]."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor, state: State, first: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """x [B, L, D] -> (y [B, L, D], (keys, values, valid))."""
        batch, length, _ = x.shape
        k_cache, v_cache, valid = state
        q, k, v = self._heads(x)
        episode = first.cumsum(dim=1) if first is not None else None  # [B, L]: resets up to and including t
        # Cached slots take part only when one is valid (skipping them makes fresh sequences cheaper).
        use_cache = self.cache_len > 0 and bool(valid.any())
        n_old = self.cache_len if use_cache else 0
        pos_q = torch.arange(length, device=x.device)
        pos_k = torch.arange(-n_old, length, device=x.device)
        dist = pos_q.unsqueeze(1) - pos_k.unsqueeze(0)  # [L, n_old + L]
        allowed = (dist >= 0) & (dist < self.max_len)  # causal, inside the window
        if use_cache or episode is not None:
            allowed = allowed.expand(batch, -1, -1)
            if use_cache:
                old_ok = valid.unsqueeze(1)  # cached keys: valid and the query's episode has not reset since
                if episode is not None:
                    old_ok = old_ok & (episode == 0).unsqueeze(-1)
                allowed = torch.cat([allowed[:, :, :n_old] & old_ok, allowed[:, :, n_old:]], dim=-1)
            if episode is not None:
                same = episode.unsqueeze(-1) == episode.unsqueeze(-2)  # [B, L, L]
                allowed = torch.cat([allowed[:, :, :n_old], allowed[:, :, n_old:] & same], dim=-1)
            allowed = allowed.unsqueeze(1)  # [B, 1, L, n_old + L]
        bias = -self.slopes.to(q.dtype).view(-1, 1, 1) * dist.to(q.dtype)  # [H, L, n_old + L]
        mask = bias.masked_fill(~allowed, -math.inf)  # every query may attend to itself: no empty rows
        keys = torch.cat([k_cache.to(k.dtype), k], dim=2) if use_cache else k
        values = torch.cat([v_cache.to(v.dtype), v], dim=2) if use_cache else v
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)  # [B, H, L, d_head]
        y = self.out_proj(y.transpose(1, 2).reshape(batch, length, self.d_model))
        return y, self._next_state(state, k, v, episode)

    def _next_state(self, state: State, k: torch.Tensor, v: torch.Tensor, episode: torch.Tensor | None) -> State:
        """Keep the last cache_len keys/values of (old cache ++ new tokens); valid = same episode as the last."""
        n = self.cache_len
        if n == 0:
            return state
        k_cache, v_cache, valid = state
        new_valid = torch.ones(k.shape[0], k.shape[2], dtype=torch.bool, device=k.device)
        old_valid = valid
        if episode is not None:
            new_valid = episode == episode[:, -1:]
            old_valid = valid & (episode[:, -1:] == 0)
        flags = torch.cat([old_valid, new_valid], dim=1)[:, -n:]
        # Invalid slots are zeroed so that a state has one canonical value (as if built by step()).
        drop = ~flags[:, None, :, None]
        keys = torch.cat([k_cache, k.to(k_cache.dtype)], dim=2)[:, :, -n:].masked_fill(drop, 0)
        values = torch.cat([v_cache, v.to(v_cache.dtype)], dim=2)[:, :, -n:].masked_fill(drop, 0)
        return keys, values, flags

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """x [B, D] -> (y [B, D], state); O(max_len) per token."""
        k_cache, v_cache, valid = state
        q, k, v = self._heads(x.unsqueeze(1))  # [B, H, 1, d_head]
        keys = torch.cat([k_cache.to(k.dtype), k], dim=2)  # [B, H, max_len, d_head]
        values = torch.cat([v_cache.to(v.dtype), v], dim=2)
        ok = torch.cat([valid, valid.new_ones(valid.shape[0], 1)], dim=1)  # [B, max_len]
        dist = torch.arange(self.max_len - 1, -1, -1, device=x.device, dtype=q.dtype)  # slot distance to query
        bias = (-self.slopes.to(q.dtype).view(-1, 1) * dist).view(1, self.n_heads, 1, self.max_len)
        mask = bias.masked_fill(~ok.view(-1, 1, 1, self.max_len), -math.inf)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)  # [B, H, 1, d_head]
        y = self.out_proj(y.reshape(x.shape[0], self.d_model))
        n = self.cache_len
        new_state = (
            keys[:, :, 1:].to(k_cache.dtype) if n > 0 else k_cache,
            values[:, :, 1:].to(v_cache.dtype) if n > 0 else v_cache,
            ok[:, 1:] if n > 0 else valid,
        )
        return y, new_state


class Transformer(ResidualStack):
    """Stack of ``n_layers`` pre-norm causal Transformer blocks (attention + SiLU MLP) with a final RMSNorm.

    Shapes: forward [B, L, d_model] -> [B, L, d_model]; step [B, d_model] -> [B, d_model].
    State: per layer (keys, values [B, n_heads, max_len-1, d_model/n_heads], valid [B, max_len-1] bool).
    ``config``: the sizes (the paper's when None); the MLP is mlp_ratio * d_model wide.
    """

    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig | None = None) -> None:
        c = self.checked_config(config)
        d, width = c.d_model, c.mlp_ratio * c.d_model
        mixers = [CausalSelfAttention(d, c.n_heads, c.max_len) for _ in range(c.n_layers)]
        ffns = [nn.Sequential(nn.Linear(d, width), nn.SiLU(), nn.Linear(width, d)) for _ in range(c.n_layers)]
        super().__init__(c, mixers, ffns)
        self.max_len = c.max_len
