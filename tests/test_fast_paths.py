"""Rewritten hot-path functions against straightforward reference implementations (same values within tolerance).

Each reference is the plain formula the fast version replaced; a wrong rewrite (a transposed view, a missed term, a
wrong broadcast) fails here even where the end-to-end tests would only see slightly different learning.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from drama_wm.distributions import SymlogTwoHot, mode_one_hot, sample_one_hot, softmax, symexp, unimix_probs
from drama_wm.layers import RMSNorm
from drama_wm.learners.actor_critic import ActorCritic, ActorCriticConfig
from drama_wm.optim import LaProp
from drama_wm.sequence.common import conv_step
from drama_wm.sequence.mamba2 import Mamba2Config, Mamba2Mixer, gated_rms_norm, ssd_scan, ssm_step


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_ssm_step(state, decay, x_dt, B, C):
    new = decay[:, :, None, None] * state + x_dt.unsqueeze(-1) * B[:, None, None, :]
    y = torch.einsum("bhpn,bn->bhp", new, C)
    return new, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (5, 3, 4, 2), (256, 8, 32, 16)])
def test_ssm_step_matches_reference(shape: tuple[int, int, int, int], dtype: torch.dtype) -> None:
    b, h, p, n = shape
    g = _gen()
    state = torch.randn(shape, generator=g, dtype=dtype)
    decay = torch.rand(b, h, generator=g, dtype=dtype)
    x_dt = torch.randn(b, h, p, generator=g, dtype=dtype)
    B, C = torch.randn(b, n, generator=g, dtype=dtype), torch.randn(b, n, generator=g, dtype=dtype)
    before = state.clone()
    new, y = ssm_step(state, decay, x_dt, B, C)
    ref_new, ref_y = reference_ssm_step(state, decay, x_dt, B, C)
    torch.testing.assert_close(new, ref_new)
    torch.testing.assert_close(y, ref_y)
    assert torch.equal(state, before), "the carried state must not be modified in place"


def test_ssm_step_accepts_strided_b_and_c() -> None:
    """In the mixer B and C are column slices of one projection, not contiguous tensors."""
    g = _gen(1)
    state = torch.randn(4, 2, 3, 5, generator=g)
    bc = torch.randn(4, 17, generator=g)
    B, C = bc[:, 2:7], bc[:, 9:14]
    decay, x_dt = torch.rand(4, 2, generator=g), torch.randn(4, 2, 3, generator=g)
    new, y = ssm_step(state, decay, x_dt, B, C)
    ref_new, ref_y = reference_ssm_step(state, decay, x_dt, B.contiguous(), C.contiguous())
    torch.testing.assert_close(new, ref_new)
    torch.testing.assert_close(y, ref_y)


def reference_conv_step(x, weight, bias, conv_state):
    window = torch.cat([conv_state, x.unsqueeze(-1)], dim=-1)
    y = (window * weight).sum(-1)
    return (y + bias if bias is not None else y), window[:, :, 1:]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_conv_step_matches_reference(k: int, with_bias: bool) -> None:
    g = _gen(2)
    x, weight = torch.randn(7, 9, generator=g), torch.randn(9, k, generator=g)
    bias = torch.randn(9, generator=g) if with_bias else None
    conv_state = torch.randn(7, 9, k - 1, generator=g)
    y, new_state = conv_step(x, weight, bias, conv_state)
    ref_y, ref_state = reference_conv_step(x, weight, bias, conv_state)
    torch.testing.assert_close(y, ref_y)
    assert torch.equal(new_state, ref_state)


def reference_mixer_step(mixer: Mamba2Mixer, u: torch.Tensor, state):
    """The pre-rewrite Mamba-2 step, op for op."""
    cfg = mixer.config
    conv_state, ssm_state = state
    z, xbc, dt = mixer._split_proj(mixer.in_proj(u))
    xbc, new_conv = reference_conv_step(xbc, mixer.conv_weight, mixer.conv_bias, conv_state)
    x, B, C = torch.split(F.silu(xbc), [cfg.d_inner, cfg.d_state, cfg.d_state], dim=-1)
    x = x.reshape(-1, cfg.n_heads, cfg.head_dim)
    dt = F.softplus(dt + mixer.dt_bias)
    decay = torch.exp(dt * -torch.exp(mixer.A_log))
    inp = (x * dt.unsqueeze(-1)).unsqueeze(-1) * B.view(-1, 1, 1, cfg.d_state)
    ssm_state = decay.view(-1, cfg.n_heads, 1, 1) * ssm_state + inp
    y = (ssm_state @ C.view(-1, 1, cfg.d_state, 1)).squeeze(-1) + x * mixer.D.view(-1, 1)
    y = mixer.norm(y.reshape(-1, cfg.d_inner) * F.silu(z))
    return mixer.out_proj(y), (new_conv, ssm_state)


def test_mamba2_mixer_step_matches_reference_over_steps() -> None:
    torch.manual_seed(0)
    mixer = Mamba2Mixer(Mamba2Config(d_model=16, d_state=4, head_dim=8))
    g = _gen(3)
    state = tuple(torch.randn(s, generator=g) for s in mixer.state_shapes(6))
    ref_state = state
    for _ in range(5):
        u = torch.randn(6, 16, generator=g)
        y, state = mixer.step(u, state)
        ref_y, ref_state = reference_mixer_step(mixer, u, ref_state)
        torch.testing.assert_close(y, ref_y, rtol=1e-5, atol=1e-5)
        for s, r in zip(state, ref_state, strict=True):
            torch.testing.assert_close(s, r, rtol=1e-5, atol=1e-5)


def reference_two_hot_loss(two_hot, logits, target):
    return -(two_hot.encode(target) * F.log_softmax(logits, dim=-1)).sum(-1)


def reference_two_hot_mean(two_hot, logits):
    return symexp((F.softmax(logits, dim=-1) * two_hot.bins(logits)).sum(-1))


def test_two_hot_gathered_loss_matches_dense_cross_entropy_and_its_gradient() -> None:
    two_hot = SymlogTwoHot(255)
    g = _gen(4)
    logits = torch.randn(3, 5, 255, generator=g, dtype=torch.float64, requires_grad=True)
    # inside the range, exactly on bins, on both edges and beyond them (clamped)
    t1 = torch.cat([torch.randn(13, generator=g, dtype=torch.float64) * 50, torch.tensor([0.0, 1e9])]).view(3, 5)
    t2 = symexp(two_hot.bins(t1)[torch.randint(0, 255, (3, 5), generator=g)])
    loss1, loss2 = two_hot.loss_from_log_probs(F.log_softmax(logits, dim=-1), t1, t2)
    torch.testing.assert_close(loss1, reference_two_hot_loss(two_hot, logits, t1))
    torch.testing.assert_close(loss2, reference_two_hot_loss(two_hot, logits, t2))
    torch.testing.assert_close(two_hot.loss(logits, t1), loss1)
    (grad,) = torch.autograd.grad((loss1 + 0.5 * loss2).sum(), logits)
    (ref_grad,) = torch.autograd.grad(
        (reference_two_hot_loss(two_hot, logits, t1) + 0.5 * reference_two_hot_loss(two_hot, logits, t2)).sum(), logits
    )
    torch.testing.assert_close(grad, ref_grad)


def test_two_hot_mean_matches_reference() -> None:
    two_hot = SymlogTwoHot(255, -20.0, 20.0)
    logits = torch.randn(4, 6, 255, generator=_gen(5)) * 3
    torch.testing.assert_close(two_hot.mean(logits), reference_two_hot_mean(two_hot, logits), rtol=1e-5, atol=1e-6)


def test_actor_critic_quantile_levels_match_separate_quantiles() -> None:
    learner = ActorCritic(ActorCriticConfig.tiny())
    returns = torch.randn(16, 64, generator=_gen(6))
    low, high = torch.quantile(returns.flatten(), learner._quantiles(returns))
    assert low == torch.quantile(returns.flatten(), 0.05)
    assert high == torch.quantile(returns.flatten(), 0.95)


@pytest.mark.parametrize("shape", [(2048, 8, 8), (3, 32), (5, 1), (4, 17)])
def test_softmax_matches_torch_softmax(shape: tuple[int, ...]) -> None:
    logits = torch.randn(shape, generator=_gen(7)) * 10
    with torch.no_grad():
        torch.testing.assert_close(softmax(logits), F.softmax(logits, dim=-1), rtol=1e-6, atol=1e-7)
    assert torch.equal(softmax(logits.requires_grad_()), F.softmax(logits, dim=-1)), "autograd keeps F.softmax"


def test_one_hot_samples_match_reference_values_and_straight_through_gradient() -> None:
    logits = torch.randn(6, 4, 8, generator=_gen(8), requires_grad=True)
    probs = unimix_probs(logits, 0.01)
    u = torch.rand(6, 4, 8, generator=_gen(9))
    index = (torch.log(probs.detach()) - torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-7)))).argmax(-1)
    reference = F.one_hot(index, 8).to(probs.dtype)
    z = sample_one_hot(probs, uniform=u)
    assert torch.equal(z, reference + probs - probs.detach())
    (grad,) = torch.autograd.grad((z * torch.arange(8.0)).sum(), logits, retain_graph=True)
    (ref_grad,) = torch.autograd.grad((probs * torch.arange(8.0)).sum(), logits)
    torch.testing.assert_close(grad, ref_grad)
    mode = mode_one_hot(probs)
    assert torch.equal(mode, F.one_hot(probs.argmax(-1), 8).to(probs.dtype) + probs - probs.detach())


def test_keep_freed_memory_is_idempotent_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from drama_wm import allocator

    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setenv(allocator.ENV_SWITCH, "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.delenv(allocator.ENV_SWITCH)
    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() is first
    x = torch.randn(1024, 1024)  # allocations still work
    assert torch.isfinite(x.sum())


class ReferenceLaProp(torch.optim.Optimizer):
    """The per-parameter LaProp loop the foreach version replaced."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                grad = p.grad
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                rms = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt_().add_(group["eps"])
                state["exp_avg"].mul_(beta1).addcdiv_(grad, rms, value=1 - beta1)
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(state["exp_avg"], alpha=-group["lr"] / (1 - beta1**t))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_laprop_foreach_matches_per_parameter_loop_exactly(weight_decay: float) -> None:
    g = _gen(10)
    ours = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in [(3, 4), (5,), (2, 2, 2)]]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = LaProp(ours, lr=1e-2, betas=(0.9, 0.999), eps=1e-20, weight_decay=weight_decay)
    ref_opt = ReferenceLaProp(ref, lr=1e-2, betas=(0.9, 0.999), eps=1e-20, weight_decay=weight_decay)
    for step in range(6):
        for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
            grad = torch.randn(a.shape, generator=g)
            skip = step == 2 and i == 1  # a parameter without a gradient falls one step behind
            a.grad = None if skip else grad.clone()
            b.grad = None if skip else grad.clone()
        opt.step()
        ref_opt.step()
        for a, b in zip(ours, ref, strict=True):
            assert torch.equal(a, b)
            assert opt.state[a]["step"] == ref_opt.state[b]["step"]
            assert torch.equal(opt.state[a]["exp_avg"], ref_opt.state[b]["exp_avg"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rms_norm_matches_composite(dtype: torch.dtype) -> None:
    norm = RMSNorm(24).to(dtype)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(7, 3, 24, generator=_gen(11), dtype=dtype) * 4
    reference = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight
    torch.testing.assert_close(norm(x), reference)


def test_gated_rms_norm_without_graph_matches_the_autograd_function() -> None:
    norm = RMSNorm(32)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    proj = torch.randn(9, 70, generator=_gen(12))
    y, z = torch.randn(9, 32, generator=_gen(13)), proj[:, 3:35]  # z strided, as a slice of in_proj's output
    with_graph = gated_rms_norm(y.requires_grad_(), z, norm)
    assert with_graph.requires_grad
    with torch.no_grad():
        without = gated_rms_norm(y, z, norm)
    torch.testing.assert_close(without, with_graph.detach())
    torch.testing.assert_close(without, norm(y.detach() * F.silu(z)))


@pytest.mark.parametrize("length,chunk", [(8, 64), (8, 8), (13, 4)])
@pytest.mark.parametrize("with_resets", [False, True])
def test_ssd_scan_from_a_zero_state_matches_the_general_path(length: int, chunk: int, with_resets: bool) -> None:
    """The zero-start shortcut gives exactly what the general path computes (forced by a graph on the state)."""
    g = _gen(14)
    b, h, p, n = 3, 2, 4, 5
    x = torch.randn(b, length, h, p, generator=g, dtype=torch.float64)
    dt = torch.rand(b, length, h, generator=g, dtype=torch.float64) * 0.5
    A = -torch.rand(h, generator=g, dtype=torch.float64) * 4
    B, C = torch.randn(b, length, n, generator=g, dtype=torch.float64), torch.randn(b, length, n, generator=g)
    C = C.double()
    D = torch.randn(h, generator=g, dtype=torch.float64)
    first = torch.rand(b, length, generator=g) < 0.2 if with_resets else None
    zero = torch.zeros(b, h, p, n, dtype=torch.float64)
    y_fast, s_fast = ssd_scan(x, dt, A, B, C, chunk, zero, D, first)
    y_ref, s_ref = ssd_scan(x, dt, A, B, C, chunk, zero.clone().requires_grad_(), D, first)
    torch.testing.assert_close(y_fast, y_ref.detach(), rtol=0, atol=0)
    torch.testing.assert_close(s_fast, s_ref.detach(), rtol=0, atol=0)


def _cartpole_dream(**kwargs):
    import gymnasium as gym
    from helpers import fill_replay

    from drama_wm import DreamEnv, WorldModel, WorldModelConfig

    env = gym.make("CartPole-v1")
    replay = fill_replay(env, 80)
    torch.manual_seed(0)
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    return DreamEnv(model, replay, num_envs=4, context_length=4, horizon=5, seed=3, **kwargs)


def _dream_rollout(dream, steps: int = 6) -> list:
    obs, _ = dream.reset(seed=5)
    out = [obs]
    for t in range(steps):
        obs, reward, terminated, truncated, _ = dream.step(torch.tensor([t % 2, 1, 0, 1]).numpy())
        out += [obs, reward, terminated, truncated]
    return out


def test_dream_compile_step_falls_back_to_eager_when_compilation_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no compiler here")

        return run

    reference = _dream_rollout(_cartpole_dream())
    monkeypatch.setattr(torch, "compile", broken_compile)
    dream = _cartpole_dream(compile_step=True)
    with pytest.warns(UserWarning, match="compile_step failed"):
        rolled = _dream_rollout(dream)
    for a, b in zip(reference, rolled, strict=True):
        torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), rtol=0, atol=0)


@pytest.mark.slow
def test_dream_compile_step_matches_eager() -> None:
    """torch.compile of the transition (tens of seconds on CPU): same dream up to float rounding."""
    reference = _dream_rollout(_cartpole_dream())
    rolled = _dream_rollout(_cartpole_dream(compile_step=True))
    for a, b in zip(reference, rolled, strict=True):
        torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), rtol=1e-4, atol=1e-5)
