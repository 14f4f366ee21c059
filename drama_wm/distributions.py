"""Distributions used by the world model and the critic: symlog two-hot and unimix categorical latents.

References: DreamerV3 (Hafner et al., 2023) for symlog/two-hot; paper Sec. 2.2 and REFERENCE.md for the 1% unimix
and straight-through gradients of the 32x32 categorical latent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|): compresses large magnitudes, identity near 0."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


class SymlogTwoHot:
    """Regression by classification over ``n_bins`` bins evenly spaced in symlog space on [low, high].

    Paper Table 7: 255 bins on [-20, 20]. ``loss(logits, target)`` is the cross-entropy against the two-hot encoding
    of symlog(target); ``mean(logits)`` is symexp of the expected bin value.
    """

    def __init__(self, n_bins: int = 255, low: float = -20.0, high: float = 20.0) -> None:
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.n_bins = n_bins
        self.low = low
        self.high = high
        self._bins: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def bins(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._bins:
            self._bins[key] = torch.linspace(self.low, self.high, self.n_bins, device=like.device, dtype=like.dtype)
        return self._bins[key]

    def _neighbours(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The two bins around symlog(target) and the weight of the upper one: (below, above, w_above), each [...]."""
        y = symlog(target).clamp(self.low, self.high)
        step = (self.high - self.low) / (self.n_bins - 1)
        pos = (y - self.low) / step
        below = pos.floor().long().clamp(0, self.n_bins - 1)
        above = (below + 1).clamp(max=self.n_bins - 1)
        w_above = (pos - below.to(pos.dtype)).clamp(0.0, 1.0)
        return below, above, w_above

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """target [...] -> two-hot weights [..., n_bins] over the symlog bins (sums to 1)."""
        bins = self.bins(target)
        below, above, w_above = self._neighbours(target)
        out = torch.zeros(*target.shape, self.n_bins, device=target.device, dtype=bins.dtype)
        out.scatter_add_(-1, below.unsqueeze(-1), (1.0 - w_above).unsqueeze(-1))
        out.scatter_add_(-1, above.unsqueeze(-1), w_above.unsqueeze(-1))
        return out

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``target`` [...] under ``logits`` [..., n_bins]; returns [...]."""
        return self.loss_from_log_probs(F.log_softmax(logits, dim=-1), target)[0]

    def loss_from_log_probs(self, log_probs: torch.Tensor, *targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """:meth:`loss` of each of ``targets`` [...] from one ``log_softmax(logits)`` [..., n_bins].

        The two-hot encoding has two non-zero weights, so the cross-entropy is gathered at those two bins instead of
        summed over a dense [..., n_bins] product (same value: the other terms are exact zeros; same gradient). All
        targets share one gather, whose backward is one scatter into a zero [..., n_bins] gradient.
        """
        parts = [self._neighbours(t.to(log_probs.dtype)) for t in targets]
        index = torch.stack([i for below, above, _ in parts for i in (below, above)], dim=-1)
        picked = log_probs.gather(-1, index)  # [..., 2 * len(targets)]
        return tuple(
            -((1.0 - w_above) * picked[..., 2 * k] + w_above * picked[..., 2 * k + 1])
            for k, (_, _, w_above) in enumerate(parts)
        )

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """Point prediction [...] = symexp(softmax(logits) . bins)."""
        return symexp(F.softmax(logits, dim=-1) @ self.bins(logits))


#: Softmax over a last axis at most this wide runs as explicit ops when no gradient is needed (see :func:`softmax`).
SMALL_SOFTMAX = 16


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis.

    For narrow last axes (the 8- and 32-class latents) without autograd, ``exp(x - max) / sum`` as four whole-tensor
    ops: torch's CPU softmax kernel works row by row and is about 5x slower on [2048, 8, 8] (values agree to a
    rounding). Under autograd, and for wide axes, it is ``F.softmax``.
    """
    if logits.shape[-1] > SMALL_SOFTMAX or (logits.requires_grad and torch.is_grad_enabled()):
        return F.softmax(logits, dim=-1)
    e = (logits - logits.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def unimix_probs(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Softmax over the last axis mixed with ``unimix`` of the uniform distribution (REFERENCE.md: 1%)."""
    probs = softmax(logits)
    return (1.0 - unimix) * probs + unimix / probs.shape[-1]


def _one_hot_like(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``F.one_hot(index, classes).to(like.dtype)`` for ``like`` [..., classes] in one scatter (same values)."""
    return torch.zeros_like(like, memory_format=torch.contiguous_format).scatter_(-1, index.unsqueeze(-1), 1.0)


def sample_one_hot(
    probs: torch.Tensor, generator: torch.Generator | None = None, uniform: torch.Tensor | None = None
) -> torch.Tensor:
    """Straight-through one-hot sample: forward is a one-hot draw, gradient flows through ``probs``.

    probs [..., classes] -> one-hot [..., classes], floating point (never cast latents to integers: REFERENCE.md's
    known defect). ``uniform`` (probs' shape, U(0, 1)) is the draw's noise, taken from ``generator`` when None; it is
    passed in where the noise must be drawn outside a captured CUDA graph. Same noise, same sample.
    """
    # Gumbel-max draw: exact categorical sampling, one fused pass on any device, and it does not raise on non-finite
    # probabilities (the loss then turns non-finite and the update is skipped instead of crashing).
    p = probs.detach()
    if uniform is None:
        uniform = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    elif uniform.shape != p.shape:
        raise ValueError(f"uniform must have the shape of probs {tuple(p.shape)}, got {tuple(uniform.shape)}")
    u = uniform.to(p.dtype).clamp(1e-20, 1.0 - 1e-7)
    index = (torch.log(p) - torch.log(-torch.log(u))).argmax(-1)
    return _one_hot_like(index, p) + probs - p


def mode_one_hot(probs: torch.Tensor) -> torch.Tensor:
    """The most likely class of each categorical as a one-hot, with straight-through gradients."""
    p = probs.detach()
    return _one_hot_like(p.argmax(-1), p) + probs - p


def categorical_kl(p_probs: torch.Tensor, q_probs: torch.Tensor) -> torch.Tensor:
    """KL[p || q] of independent categoricals, probabilities [..., n_vars, classes] -> summed over vars [...]."""
    return (p_probs * (torch.log(p_probs.clamp_min(1e-8)) - torch.log(q_probs.clamp_min(1e-8)))).sum((-2, -1))
