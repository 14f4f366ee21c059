"""Small building blocks shared by the sequence backbones, the world model and the learners."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from drama_wm.checks import positive_int


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich, 2019) with a learned scale.

    Shapes: x [..., d] -> [..., d]. Normalises in float32 for stability under autocast.
    """

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if dtype not in (torch.float16, torch.bfloat16) and self.weight.dtype == dtype:
            # torch's fused rms_norm: the same value as the composite below (bitwise on CPU), in one op call
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        x32 = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(dtype) * self.weight


def mlp(d_in: int, d_hidden: int, d_out: int, n_hidden_layers: int) -> nn.Sequential:
    """Linear -> RMSNorm -> SiLU, repeated ``n_hidden_layers`` times, then a Linear head (paper Tables 7-8).

    Shapes: [..., d_in] -> [..., d_out].
    """
    positive_int("n_hidden_layers", n_hidden_layers)
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(d, d_hidden, bias=False), RMSNorm(d_hidden), nn.SiLU()]
        d = d_hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)
