"""GRU backbone: the recurrent baseline of paper Sec. 3.2.3 (Table 2), in the same residual stack as Mamba.

Each block's mixer is a single-layer ``torch.nn.GRU`` with hidden size d_model (its fused kernels precompute
the input projections for the whole sequence and loop only over the recurrent part). Episode resets inside a
sequence split the time axis at every position where *some* row resets; at each split the hidden state of
the resetting rows is zeroed. The number of GRU calls is 1 + the number of distinct reset times in the batch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from drama_wm.sequence.common import Mixer, ResidualStack, State
from drama_wm.sequence.config import BackboneConfig


@dataclass(frozen=True)
class GRUConfig(BackboneConfig, kind="gru"):
    """A GRU backbone: ``n_layers`` GRU blocks of width ``d_model`` (the fields of :class:`BackboneConfig`)."""


class GRUMixer(Mixer):
    """One GRU layer, d_model -> d_model. State: (h [B, d_model],)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.gru = nn.GRU(d_model, d_model, batch_first=True)

    def state_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        return [(batch_size, self.d_model)]

    def forward(self, x: torch.Tensor, state: State, first: torch.Tensor | None) -> tuple[torch.Tensor, State]:
        """x [B, L, D] -> (y [B, L, D], (h [B, D],))."""
        (h,) = state
        h = h.to(x.dtype)
        if first is None:
            y, h_n = self.gru(x, h.unsqueeze(0).contiguous())
            return y, (h_n[0].to(state[0].dtype),)
        # Split points: every t > 0 where at least one row starts an episode; t = 0 always starts a segment.
        reset_times = torch.nonzero(first[:, 1:].any(dim=0)).flatten().add(1).tolist()
        bounds = [0, *reset_times, x.shape[1]]
        outputs = []
        for start, stop in itertools.pairwise(bounds):
            h = h.masked_fill(first[:, start].unsqueeze(-1), 0)  # zero the rows that reset here
            y, h_n = self.gru(x[:, start:stop], h.unsqueeze(0).contiguous())
            outputs.append(y)
            h = h_n[0]
        return torch.cat(outputs, dim=1), (h.to(state[0].dtype),)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """x [B, D] -> (y [B, D], (h,)); O(1) in the tokens consumed."""
        (h,) = state
        y, h_n = self.gru(x.unsqueeze(1), h.to(x.dtype).unsqueeze(0).contiguous())
        return y[:, 0], (h_n[0].to(h.dtype),)


class GRU(ResidualStack):
    """Stack of ``n_layers`` pre-norm residual GRU blocks with a final RMSNorm.

    Shapes: forward [B, L, d_model] -> [B, L, d_model]; step [B, d_model] -> [B, d_model].
    State: one hidden state h [B, d_model] per layer. ``config``: the sizes (the paper's when None).
    """

    cpu_tokens_per_pass = None  # the recurrence runs over time: the more rows per step, the better
    config_class = GRUConfig

    def __init__(self, config: GRUConfig | None = None) -> None:
        config = self.checked_config(config)
        super().__init__(config, [GRUMixer(config.d_model) for _ in range(config.n_layers)])
