"""Encoders and decoders for small grids of binary cells (MinAtar's 10x10xC boolean frames).

The paper's conv stack expects 64x64 frames (four stride-2 layers); a 10x10 grid needs its own. Two are offered,
selected by ``WorldModelConfig.grid_encoder`` (measured in BENCHMARKS.md, "MinAtar encoder"):

- ``"mlp"``: the grid flattened to a C*H*W vector, then the vector MLP (Linear -> RMSNorm -> SiLU);
- ``"conv"``: two 3x3 convolutions (stride 1, then 2) and a Linear; the decoder mirrors it.

Both take [N, C, H, W] in [0, 1] and their decoders return [N, C, H, W] in (0, 1) (a sigmoid), the contract of the
image encoder/decoder, so the world model's loss and ``decode`` are the same for grids and frames.
"""

from __future__ import annotations

import torch
from torch import nn

from drama_wm.layers import mlp

GRID_ENCODERS = ("mlp", "conv")
#: Frames of at most this side are "grids" (the grid encoder); larger ones need the paper's conv encoder.
MAX_GRID_SIDE = 16


class GridMLPEncoder(nn.Module):
    """[N, C, H, W] -> [N, hidden]: flatten, then ``layers`` x (Linear -> RMSNorm -> SiLU) and a Linear."""

    def __init__(self, shape: tuple[int, int, int], hidden: int, layers: int) -> None:
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(nn.Flatten(), mlp(c * h * w, hidden, hidden, layers))
        self.embed_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GridMLPDecoder(nn.Module):
    """z [N, latent] -> [N, C, H, W] in (0, 1): the vector MLP, reshaped, then a sigmoid."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], hidden: int, layers: int) -> None:
        super().__init__()
        self.shape = shape
        self.net = mlp(latent_dim, hidden, shape[0] * shape[1] * shape[2], layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z).view(z.shape[0], *self.shape))


class GridConvEncoder(nn.Module):
    """[N, C, H, W] -> [N, hidden]: conv 3x3 (stride 1, ``channels``) -> conv 3x3 (stride 2, 2 x channels) -> Linear."""

    def __init__(self, shape: tuple[int, int, int], channels: int, hidden: int) -> None:
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, 3, 1, 1),
            nn.SiLU(),
            nn.Conv2d(channels, 2 * channels, 3, 2, 1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * channels * ((h + 1) // 2) * ((w + 1) // 2), hidden),
            nn.SiLU(),
        )
        self.embed_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GridConvDecoder(nn.Module):
    """Mirror of :class:`GridConvEncoder`: z -> Linear -> [2 x channels, H/2, W/2] -> transposed conv -> conv -> C."""

    def __init__(self, latent_dim: int, shape: tuple[int, int, int], channels: int, hidden: int) -> None:
        super().__init__()
        c, h, w = shape
        self.shape = shape
        self.start = (2 * channels, (h + 1) // 2, (w + 1) // 2)
        self.linear = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, self.start[0] * self.start[1] * self.start[2])
        )
        self.net = nn.Sequential(
            nn.SiLU(),
            nn.ConvTranspose2d(2 * channels, channels, 3, 2, 1, output_padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, c, 3, 1, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(self.linear(z).view(z.shape[0], *self.start))
        return torch.sigmoid(x[:, :, : self.shape[1], : self.shape[2]])


def make_grid_codec(
    kind: str, shape: tuple[int, int, int], latent_dim: int, hidden: int, layers: int, channels: int
) -> tuple[nn.Module, nn.Module, int]:
    """(encoder, decoder, embedding size) for grids of ``shape`` (C, H, W); ``kind`` one of :data:`GRID_ENCODERS`."""
    if kind == "mlp":
        encoder: nn.Module = GridMLPEncoder(shape, hidden, layers)
        return encoder, GridMLPDecoder(latent_dim, shape, hidden, layers), hidden
    if kind == "conv":
        encoder = GridConvEncoder(shape, channels, hidden)
        return encoder, GridConvDecoder(latent_dim, shape, channels, hidden), hidden
    raise ValueError(f"grid_encoder must be one of {GRID_ENCODERS}, got {kind!r}")


__all__ = ["GRID_ENCODERS", "MAX_GRID_SIDE", "make_grid_codec"]
