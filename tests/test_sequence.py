"""Tests of drama_wm.sequence: equivalence of the parallel and recurrent forms, resets, causality,
gradients, input validation and the state helpers, for all four backbones (tiny sizes, float64, CPU)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from drama_wm.config_io import from_dict, to_dict
from drama_wm.layers import RMSNorm
from drama_wm.sequence import (
    BACKBONES,
    GRU,
    KINDS,
    BackboneConfig,
    GRUConfig,
    Mamba,
    Mamba2,
    Mamba2Config,
    MambaConfig,
    Transformer,
    TransformerConfig,
    make,
    merge_state,
    select_state,
)
from drama_wm.sequence.common import causal_depthwise_conv
from drama_wm.sequence.mamba import selective_scan
from drama_wm.sequence.mamba2 import Mamba2Mixer, gated_rms_norm, ssd_scan

D_MODEL = 16
SIZES = {"d_model": D_MODEL, "n_layers": 2, "dropout": 0.0}
TINY: dict[str, BackboneConfig] = {
    "mamba2": Mamba2Config(**SIZES, d_state=4, head_dim=8, chunk_size=4),  # d_inner 32 -> 4 heads
    "mamba": MambaConfig(**SIZES, d_state=4),
    "gru": GRUConfig(**SIZES),
    "transformer": TransformerConfig(**SIZES, n_heads=2, max_len=5),  # window shorter than the longer sequences
}
ATOL = 1e-10


def build(kind: str, seed: int = 0, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return make(replace(TINY[kind], **overrides)).double()


def randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_states_close(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> None:
    assert len(a) == len(b)
    for sa, sb in zip(a, b, strict=True):
        assert sa.shape == sb.shape and sa.dtype == sb.dtype
        if sa.dtype == torch.bool:
            assert torch.equal(sa, sb)
        else:
            torch.testing.assert_close(sa, sb, atol=ATOL, rtol=0)


def run_steps(model, x, state=None, first=None):
    state = model.init_state(x.shape[0]) if state is None else state
    ys = []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state, None if first is None else first[:, t])
        ys.append(y)
    return torch.stack(ys, dim=1), state


# ------------------------------------------------------------------------------------------ equivalence
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("length", [1, 7, 19])
def test_forward_equals_steps_equals_halves(kind: str, batch: int, length: int) -> None:
    model = build(kind).eval()
    x = randn(batch, length, D_MODEL)
    y, state = model(x)
    assert y.shape == (batch, length, D_MODEL)

    y_steps, state_steps = run_steps(model, x)
    torch.testing.assert_close(y_steps, y, atol=ATOL, rtol=0)
    assert_states_close(state_steps, state)

    for cut in {1, length // 2, length - 1} - {0, length}:
        y1, s1 = model(x[:, :cut])
        y2, s2 = model(x[:, cut:], s1)
        torch.testing.assert_close(torch.cat([y1, y2], dim=1), y, atol=ATOL, rtol=0)
        assert_states_close(s2, state)


@pytest.mark.parametrize("kind", list(KINDS))
def test_forward_continues_from_a_nonfresh_state(kind: str) -> None:
    model = build(kind).eval()
    _, warm = model(randn(3, 9, D_MODEL, seed=5))
    x = randn(3, 11, D_MODEL)
    y, state = model(x, warm)
    y_steps, state_steps = run_steps(model, x, warm)
    torch.testing.assert_close(y_steps, y, atol=ATOL, rtol=0)
    assert_states_close(state_steps, state)


def test_state_layout_is_flat_batch_first_and_fixed() -> None:
    for kind in KINDS:
        model = build(kind)
        state = model.init_state(3)
        assert isinstance(state, tuple) and all(isinstance(s, torch.Tensor) for s in state)
        assert all(s.shape[0] == 3 for s in state)
        _, after = model(randn(3, 23, D_MODEL))
        assert [s.shape for s in after] == [s.shape for s in state]  # bounded: does not grow with L
        assert [s.dtype for s in after] == [s.dtype for s in state]
    float_state = build("mamba2").init_state(2, dtype=torch.float32)
    assert all(s.dtype == torch.float32 for s in float_state)
    assert build("transformer").init_state(2)[2].dtype == torch.bool


# ------------------------------------------------------------------------------------------ Mamba-2 maths
def naive_mamba2_mixer(mixer: Mamba2Mixer, u: torch.Tensor) -> torch.Tensor:
    """The Mamba-2 block written token by token from the paper's equations, independently of the module."""
    cfg = mixer.config
    batch, length, _ = u.shape
    window = torch.zeros(batch, cfg.conv_dim, cfg.d_conv, dtype=u.dtype)
    h = torch.zeros(batch, cfg.n_heads, cfg.head_dim, cfg.d_state, dtype=u.dtype)
    A = -torch.exp(mixer.A_log)
    outputs = []
    for t in range(length):
        proj = u[:, t] @ mixer.in_proj.weight.T
        z = proj[:, : cfg.d_inner]
        xbc = proj[:, cfg.d_inner : cfg.d_inner + cfg.conv_dim]
        dt = F.softplus(proj[:, cfg.d_inner + cfg.conv_dim :] + mixer.dt_bias)  # [B, H]
        window = torch.cat([window[:, :, 1:], xbc.unsqueeze(-1)], dim=-1)
        xbc = F.silu((window * mixer.conv_weight).sum(-1) + mixer.conv_bias)
        x = xbc[:, : cfg.d_inner].reshape(batch, cfg.n_heads, cfg.head_dim)
        B = xbc[:, cfg.d_inner : cfg.d_inner + cfg.d_state]
        C = xbc[:, cfg.d_inner + cfg.d_state :]
        y = torch.empty_like(x)
        for head in range(cfg.n_heads):
            for b in range(batch):
                decay = torch.exp(dt[b, head] * A[head])
                h[b, head] = decay * h[b, head] + dt[b, head] * torch.outer(x[b, head], B[b])
                y[b, head] = h[b, head] @ C[b] + mixer.D[head] * x[b, head]
        g = y.reshape(batch, cfg.d_inner) * F.silu(z)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + mixer.norm.eps) * mixer.norm.weight
        outputs.append(g @ mixer.out_proj.weight.T)
    return torch.stack(outputs, dim=1)


def test_mamba2_mixer_matches_naive_recurrence() -> None:
    model = build("mamba2", n_layers=1)
    mixer = model.mixers[0]
    u = randn(2, 11, D_MODEL)
    y, _ = mixer(u, mixer.init_state(2, None, torch.float64), None)
    torch.testing.assert_close(y, naive_mamba2_mixer(mixer, u), atol=ATOL, rtol=0)


def naive_ssd(x, dt, A, B, C, h0, first):
    h, ys = h0.clone(), []
    for t in range(x.shape[1]):
        h = h * (~first[:, t]).view(-1, 1, 1, 1)
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]
        h = decay * h + (dt[:, t, :, None] * x[:, t]).unsqueeze(-1) * B[:, t, None, None, :]
        ys.append(h @ C[:, t, None, :, None])
    return torch.stack(ys, dim=1).squeeze(-1), h


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 8, 64])
def test_ssd_scan_matches_naive_with_resets_and_initial_state(chunk_size: int) -> None:
    b, length, h, p, n = 3, 13, 2, 3, 4
    x, B, C = randn(b, length, h, p, seed=1), randn(b, length, n, seed=2), randn(b, length, n, seed=3)
    dt = randn(b, length, h, seed=4).abs() + 0.05
    A = -(randn(h, seed=5).abs() + 0.1)
    h0 = randn(b, h, p, n, seed=6)
    first = torch.zeros(b, length, dtype=torch.bool)
    first[0, 0] = True  # reset at position 0 discards a non-fresh initial state
    first[1, [4, 5, 12]] = True  # consecutive resets and one on the last token
    first[2, 8] = True  # a reset on a chunk boundary for chunk size 4 and 8
    y, final = ssd_scan(x, dt, A, B, C, chunk_size, h0, first=first)
    y_ref, final_ref = naive_ssd(x, dt, A, B, C, h0, first)
    torch.testing.assert_close(y, y_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(final, final_ref, atol=ATOL, rtol=0)


def test_mamba2_chunk_size_changes_nothing() -> None:
    x = randn(2, 19, D_MODEL)
    first = torch.zeros(2, 19, dtype=torch.bool)
    first[1, 6] = True
    results = []
    for chunk_size in (1, 4, 7, 32):
        model = build("mamba2", chunk_size=chunk_size)
        y, state = model(x, first=first)
        (y * randn(*y.shape, seed=9)).sum().backward()
        results.append((y, state, [p.grad for p in model.parameters()]))
    y0, s0, g0 = results[0]
    for y, s, g in results[1:]:
        torch.testing.assert_close(y, y0, atol=ATOL, rtol=0)
        assert_states_close(s, s0)
        for a, b in zip(g, g0, strict=True):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


def test_scans_and_conv_gradcheck() -> None:
    b, length = 2, 6
    first = torch.tensor([[0, 0, 1, 0, 0, 1], [1, 0, 0, 1, 0, 0]], dtype=torch.bool)
    x, dt = randn(b, length, 2, 3, seed=1).requires_grad_(), (randn(b, length, 2, seed=2).abs() + 0.1)
    A, B = -(randn(2, seed=3).abs() + 0.1), randn(b, length, 4, seed=4)
    C, h0, D = randn(b, length, 4, seed=5), randn(b, 2, 3, 4, seed=6), randn(2, seed=7)
    args = [t.requires_grad_() for t in (x, dt, A, B, C, h0, D)]
    assert torch.autograd.gradcheck(lambda x, dt, A, B, C, h0, D: ssd_scan(x, dt, A, B, C, 4, h0, D, first), args)
    xm, dtm = randn(b, length, 3, seed=8), randn(b, length, 3, seed=9).abs() + 0.1
    Am, h0m = -(randn(3, 4, seed=10).abs() + 0.1), randn(b, 3, 4, seed=11)
    args = [t.requires_grad_() for t in (xm, dtm, Am, B.detach(), C.detach(), h0m)]
    for resets in (None, first):
        assert torch.autograd.gradcheck(lambda *a, r=resets: selective_scan(*a, r), args)
    conv_args = [t.requires_grad_() for t in (randn(b, length, 3), randn(3, 4), randn(3), randn(b, 3, 3))]
    for resets in (None, first):
        assert torch.autograd.gradcheck(lambda *a, r=resets: causal_depthwise_conv(*a, r), conv_args)


def test_gated_rms_norm_matches_composite() -> None:
    norm = RMSNorm(6).double()
    with torch.no_grad():
        norm.weight.copy_(randn(6, seed=3))
    y, z = randn(2, 3, 6, seed=1).requires_grad_(), randn(2, 3, 6, seed=2).requires_grad_()
    torch.testing.assert_close(gated_rms_norm(y, z, norm), norm(y * F.silu(z)), atol=ATOL, rtol=0)
    g = randn(2, 3, 6, seed=4)
    fused = torch.autograd.grad((gated_rms_norm(y, z, norm) * g).sum(), (y, z, norm.weight))
    composite = torch.autograd.grad((norm(y * F.silu(z)) * g).sum(), (y, z, norm.weight))
    for a, b in zip(fused, composite, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_cpu_row_groups_change_nothing(kind: str) -> None:
    """forward over groups of rows (the CPU cache optimisation) equals one pass over the whole batch."""
    x = randn(5, 9, D_MODEL).requires_grad_()
    first = torch.zeros(5, 9, dtype=torch.bool)
    first[3, 4] = True
    results = []
    for tokens in (None, 9, 20):  # whole batch; one row per group; two rows per group (uneven last group)
        model = build(kind)
        model.cpu_tokens_per_pass = tokens
        _, warm = model(randn(5, 3, D_MODEL, seed=2))
        y, state = model(x, warm, first)
        grads = torch.autograd.grad((y * randn(*y.shape, seed=3)).sum(), [x, *model.parameters()])
        results.append((y, state, grads))
    for y, state, grads in results[1:]:
        torch.testing.assert_close(y, results[0][0], atol=ATOL, rtol=0)
        assert_states_close(state, results[0][1])
        for a, b in zip(grads, results[0][2], strict=True):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------------ causality, resets
@pytest.mark.parametrize("kind", list(KINDS))
def test_causality(kind: str) -> None:
    model = build(kind).eval()
    x = randn(2, 13, D_MODEL)
    y, _ = model(x)
    for t in (0, 5, 12):
        x2 = x.clone()
        x2[:, t] += randn(2, D_MODEL, seed=7)
        y2, _ = model(x2)
        torch.testing.assert_close(y2[:, :t], y[:, :t], atol=ATOL, rtol=0)
        assert (y2[:, t] - y[:, t]).abs().max() > 1e-6  # and the change does reach time t


@pytest.mark.parametrize("kind", list(KINDS))
def test_reset_equals_separate_segments(kind: str) -> None:
    model = build(kind).eval()
    batch, length = 3, 19
    x = randn(batch, length, D_MODEL)
    _, warm = model(randn(batch, 6, D_MODEL, seed=3))  # a non-fresh state to start from
    first = torch.zeros(batch, length, dtype=torch.bool)
    first[0, 0] = True  # reset at position 0: the warm state must be ignored
    first[1, [3, 11]] = True  # different places in different rows
    first[2, 16] = True
    y, state = model(x, warm, first)
    y_steps, state_steps = run_steps(model, x, warm, first)
    torch.testing.assert_close(y_steps, y, atol=ATOL, rtol=0)
    assert_states_close(state_steps, state)

    for row in range(batch):
        starts = [0, *torch.nonzero(first[row]).flatten().tolist(), length]
        starts = sorted(set(starts))
        seg_state = select_state(warm, row)
        for begin, end in itertools.pairwise(starts):
            fresh = begin > 0 or bool(first[row, 0])
            y_seg, seg_state = model(x[row : row + 1, begin:end], None if fresh else seg_state)
            torch.testing.assert_close(y_seg[0], y[row, begin:end], atol=ATOL, rtol=0)
        assert_states_close(seg_state, select_state(state, row))


def test_no_leak_across_reset() -> None:
    """Whatever happens before a reset cannot change anything at or after it."""
    for kind in KINDS:
        model = build(kind).eval()
        x = randn(2, 12, D_MODEL)
        first = torch.zeros(2, 12, dtype=torch.bool)
        first[:, 7] = True
        y, s = model(x, first=first)
        x2 = x.clone()
        x2[:, :7] = randn(2, 7, D_MODEL, seed=8)
        y2, s2 = model(x2, first=first)
        torch.testing.assert_close(y2[:, 7:], y[:, 7:], atol=ATOL, rtol=0)
        assert_states_close(s2, s)


# ------------------------------------------------------------------------------------------ gradients, dropout
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_parameter_gets_a_finite_nonzero_gradient(kind: str) -> None:
    model = build(kind, dropout=0.1).train()
    x = randn(2, 9, D_MODEL).requires_grad_()
    first = torch.zeros(2, 9, dtype=torch.bool)
    first[1, 4] = True
    y, _ = model(x, first=first)
    (y * randn(*y.shape, seed=4)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


@pytest.mark.parametrize("kind", list(KINDS))
def test_dropout_only_in_training(kind: str) -> None:
    plain, dropped = build(kind), build(kind, dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = randn(2, 7, D_MODEL)
    torch.testing.assert_close(dropped.eval()(x)[0], plain.eval()(x)[0], atol=0, rtol=0)
    torch.manual_seed(0)
    assert not torch.allclose(dropped.train()(x)[0], plain(x)[0])


# ------------------------------------------------------------------------------------------ factory, errors
def test_make_builds_the_backbone_of_each_config() -> None:
    assert type(make(Mamba2Config(d_model=32, n_layers=1, head_dim=16))) is Mamba2
    assert type(make(MambaConfig(d_model=32, n_layers=1))) is Mamba
    assert type(make(GRUConfig(d_model=32, n_layers=1))) is GRU
    assert type(make(TransformerConfig(d_model=32, n_layers=3, n_heads=4))) is Transformer
    model = make(TINY["transformer"])
    assert model.config is TINY["transformer"] and model.n_layers == 2 and model.max_len == 5
    assert KINDS == ("mamba2", "mamba", "gru", "transformer")
    assert sorted(KINDS) == BackboneConfig.kinds() and list(BACKBONES) == [BackboneConfig.member(k) for k in KINDS]


def test_configs_default_to_the_paper_sizes() -> None:
    """Paper Table 6 (REFERENCE.md): D = 512, 2 layers, dropout 0.1, N = 16, E = 2, P = 128, K = 4."""
    c = Mamba2Config()
    assert (c.d_model, c.n_layers, c.dropout, c.d_state, c.expand, c.head_dim, c.d_conv) == (512, 2, 0.1, 16, 2, 128, 4)
    assert (c.chunk_size, c.d_inner, c.n_heads) == (64, 1024, 8)
    assert Mamba2().config == c and Mamba2().n_layers == 2
    assert (MambaConfig().d_state, MambaConfig().rank, MambaConfig(dt_rank=3).rank) == (16, 32, 3)
    assert GRUConfig() == GRUConfig(d_model=512, n_layers=2, dropout=0.1)
    assert (TransformerConfig().n_heads, TransformerConfig().max_len, TransformerConfig().mlp_ratio) == (8, 128, 4)


def test_as_kind_keeps_the_shared_sizes_and_takes_the_kinds_defaults() -> None:
    base = Mamba2Config(d_model=64, n_layers=3, dropout=0.2, d_state=8, head_dim=32, chunk_size=16)
    assert base.as_kind("mamba2") is base  # its own kind: every setting kept
    assert base.as_kind("mamba") == MambaConfig(d_model=64, n_layers=3, dropout=0.2, d_state=8)
    assert base.as_kind("gru") == GRUConfig(d_model=64, n_layers=3, dropout=0.2)
    assert base.as_kind("transformer") == TransformerConfig(d_model=64, n_layers=3, dropout=0.2)
    assert base.as_kind("gru").as_kind("mamba") == MambaConfig(d_model=64, n_layers=3, dropout=0.2)  # N: default
    with pytest.raises(ValueError, match=r"unknown BackboneConfig kind 'lstm'; known kinds: gru, mamba, mamba2"):
        base.as_kind("lstm")


@pytest.mark.parametrize("kind", list(KINDS))
def test_config_round_trips_through_plain_data_with_its_kind(kind: str) -> None:
    config = TINY[kind]
    data = json.loads(json.dumps(to_dict(config)))  # as a checkpoint or a JSON file stores it
    assert data["kind"] == kind
    assert from_dict(BackboneConfig, data) == config
    assert type(from_dict(BackboneConfig, data)) is type(config)


def test_make_and_configs_reject_what_they_cannot_build() -> None:
    with pytest.raises(TypeError, match=r"make\(\) takes a backbone config \(Mamba2Config, .*\), got str"):
        make("gru")
    with pytest.raises(TypeError, match=r"GRU is built from a GRUConfig, got Mamba2Config"):
        GRU(Mamba2Config())
    with pytest.raises(ValueError, match=r"unknown BackboneConfig kind 'lstm'; known kinds: gru, mamba, mamba2"):
        from_dict(BackboneConfig, {"kind": "lstm", "d_model": 16})
    with pytest.raises(ValueError, match=r"BackboneConfig has no field 'head_dim'; known fields: d_model, n_layers"):
        from_dict(BackboneConfig, {"kind": "gru", "head_dim": 8})
    with pytest.raises(ValueError, match=r"BackboneConfig must name its kind"):
        from_dict(BackboneConfig, {"d_model": 16})


def test_bad_inputs_raise_clear_errors() -> None:
    model = build("mamba2")
    with pytest.raises(ValueError, match=r"x must have shape \[B, L, 16\], got \(3, 16\)"):
        model(randn(3, D_MODEL))
    with pytest.raises(ValueError, match=r"x must have shape \[B, L, 16\], got \(3, 5, 8\)"):
        model(randn(3, 5, 8))
    with pytest.raises(ValueError, match=r"x must have shape \[B, 16\] in step\(\)"):
        model.step(randn(3, 1, D_MODEL), model.init_state(3))
    with pytest.raises(ValueError, match=r"state\[0\] must have shape \(3, .*another batch size"):
        model(randn(3, 5, D_MODEL), model.init_state(2))
    with pytest.raises(ValueError, match=r"state must have 4 tensors"):
        model(randn(3, 5, D_MODEL), model.init_state(3)[:2])
    with pytest.raises(TypeError, match=r"state must be a tuple"):
        model(randn(3, 5, D_MODEL), list(model.init_state(3)))
    with pytest.raises(ValueError, match=r"first must have shape \(3, 5\), got \(3, 4\)"):
        model(randn(3, 5, D_MODEL), first=torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"first must have dtype torch.bool"):
        model(randn(3, 5, D_MODEL), first=torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"first must have shape \(3,\)"):
        model.step(randn(3, D_MODEL), model.init_state(3), torch.zeros(3, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"divisible by head_dim"):
        Mamba2Config(d_model=16, head_dim=12)
    with pytest.raises(ValueError, match=r"divisible by n_heads"):
        TransformerConfig(d_model=16, n_heads=3)
    with pytest.raises(ValueError, match=r"GRUConfig.n_layers must be an int >= 1, got 0 \(int\)"):
        GRUConfig(d_model=16, n_layers=0)
    with pytest.raises(ValueError, match=r"Mamba2Config.head_dim must be an int >= 1, got True \(bool\)"):
        Mamba2Config(d_model=16, head_dim=True)
    with pytest.raises(ValueError, match=r"MambaConfig.dropout must be in \[0, 1\), got 1.0"):
        MambaConfig(d_model=16, dropout=1.0)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0 \(int\)"):
        model.init_state(0)


# ------------------------------------------------------------------------------------------ state helpers
def test_select_and_merge_state() -> None:
    model = build("transformer")  # mixed float / bool state
    _, a = model(randn(3, 4, D_MODEL, seed=1))
    b = model.init_state(3)
    mask = torch.tensor([True, False, True])
    merged = merge_state(mask, a, b)
    for m, sa, sb in zip(merged, a, b, strict=True):
        assert torch.equal(m[0], sa[0]) and torch.equal(m[1], sb[1]) and torch.equal(m[2], sa[2])

    picked = select_state(a, torch.tensor([2, 0]))
    assert all(torch.equal(p, torch.stack([s[2], s[0]])) for p, s in zip(picked, a, strict=True))
    one = select_state(a, 1)
    assert all(p.shape[0] == 1 and torch.equal(p[0], s[1]) for p, s in zip(one, a, strict=True))
    assert all(p.shape[0] == 2 for p in select_state(a, slice(1, 3)))
    assert all(torch.equal(p, s[2:]) for p, s in zip(select_state(a, -1), a, strict=True))

    # A selected row continues exactly as in the full batch.
    x = randn(3, 5, D_MODEL, seed=2)
    y_full, _ = model(x, a)
    y_row, _ = model(x[1:2], select_state(a, 1))
    torch.testing.assert_close(y_row, y_full[1:2], atol=ATOL, rtol=0)

    with pytest.raises(TypeError, match=r"mask must be a 1-d bool tensor"):
        merge_state(torch.ones(3), a, b)
    with pytest.raises(ValueError, match=r"must match each other and the mask's batch 2"):
        merge_state(torch.ones(2, dtype=torch.bool), a, b)
    with pytest.raises(ValueError, match=r"different lengths"):
        merge_state(mask, a, b[:2])


def test_step_reset_equals_merge_with_fresh_state() -> None:
    for kind in KINDS:
        model = build(kind).eval()
        _, state = model(randn(3, 6, D_MODEL, seed=1))
        token = randn(3, D_MODEL, seed=2)
        mask = torch.tensor([False, True, False])
        y, s = model.step(token, state, mask)
        y_ref, s_ref = model.step(token, merge_state(mask, model.init_state(3), state))
        torch.testing.assert_close(y, y_ref, atol=0, rtol=0)
        assert_states_close(s, s_ref)
