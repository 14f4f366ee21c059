"""Optimisation helpers: the LaProp optimiser the authors used, and the warm-up + clipping update step."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import overload

import torch
from torch import nn


class LaProp(torch.optim.Optimizer):
    """LaProp (Ziyin et al., 2020): Adam with the momentum taken *after* dividing by the RMS of the gradient.

    Decoupling momentum from the adaptive scale makes a tiny ``eps`` (DreamerV3 and the Drama authors use 1e-20)
    safe, because the normalised step stays bounded even when the second moment is almost zero. Weight decay is
    decoupled (AdamW style).
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or eps < 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1:
            raise ValueError(f"invalid LaProp settings: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One LaProp step for every parameter with a gradient.

        Parameters are updated with ``torch._foreach_*`` ops, one call per operation for all parameters that share a
        step count (normally all of them) instead of one per parameter: the same elementwise arithmetic in the same
        order, without several hundred Python-level op calls per step.
        """
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            by_step: dict[int, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            for t, params in by_step.items():
                grads = [p.grad for p in params if p.grad is not None]  # all of them: filtered above
                exp_avg = [self.state[p]["exp_avg"] for p in params]
                exp_avg_sq = [self.state[p]["exp_avg_sq"] for p in params]
                torch._foreach_mul_(exp_avg_sq, beta2)
                torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
                rms = torch._foreach_div(exp_avg_sq, 1 - beta2**t)
                torch._foreach_sqrt_(rms)
                torch._foreach_add_(rms, eps)
                torch._foreach_mul_(exp_avg, beta1)
                torch._foreach_addcdiv_(exp_avg, grads, rms, value=1 - beta1)
                if weight_decay:
                    torch._foreach_mul_(params, 1 - lr * weight_decay)
                torch._foreach_add_(params, exp_avg, alpha=-lr / (1 - beta1**t))
        return loss


def make_optimizer(
    params: Iterable[nn.Parameter], kind: str, lr: float, eps: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``kind`` is "laprop" (the authors' choice) or "adam" (AdamW with the same decoupled weight decay)."""
    if kind == "laprop":
        return LaProp(params, lr=lr, eps=eps, weight_decay=weight_decay)
    if kind == "adam":
        return torch.optim.AdamW(params, lr=lr, eps=eps, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'laprop' or 'adam', got {kind!r}")


def warmup_factor(update: int, warmup_updates: int) -> float:
    """Linear learning-rate warm-up (REFERENCE.md: 1000 updates), 1.0 afterwards."""
    if warmup_updates <= 0:
        return 1.0
    return min(1.0, (update + 1) / warmup_updates)


def apply_gradients(
    loss: torch.Tensor,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    update: int,
    warmup_updates: int,
    grad_clip: float,
) -> tuple[float, bool]:
    """Backward, clip, and step unless the loss or the gradient norm is non-finite.

    Returns (gradient norm before clipping, whether the step was applied). A non-finite loss or gradient is never
    written into the weights: the step is skipped and the caller logs it.
    """
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return math.nan, False
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    if not torch.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        return float(grad_norm), False
    for group in optimizer.param_groups:
        group["lr"] = base_lr * warmup_factor(update, warmup_updates)
    optimizer.step()
    return float(grad_norm), True
