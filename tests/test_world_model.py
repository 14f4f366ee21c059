"""World model: construction, the parallel vs O(1) recurrent paths, the Eq. 6-7 loss, and learning on real data."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import fill_replay

from drama_wm import WorldModel, WorldModelConfig
from drama_wm.config_io import from_dict, to_dict

IMAGE_SPACE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
VECTOR_SPACE = gym.spaces.Box(-1, 1, (4,), np.float32)


def _tiny_with(kind: str) -> WorldModelConfig:
    """The tiny preset with its backbone as ``kind`` (that kind's defaults at tiny's sizes)."""
    config = WorldModelConfig.tiny()
    return replace(config, backbone=config.backbone.as_kind(kind))


def test_xs_preset_has_about_seven_million_parameters():
    model = WorldModel(IMAGE_SPACE, gym.spaces.Discrete(6), WorldModelConfig.xs())
    n = sum(p.numel() for p in model.parameters())
    assert 6.5e6 <= n <= 7.7e6, n
    assert model.config.feature_dim == 1536


def test_s_preset_adds_about_three_million_parameters():
    xs = sum(p.numel() for p in WorldModel(IMAGE_SPACE, gym.spaces.Discrete(6), WorldModelConfig.xs()).parameters())
    s = sum(p.numel() for p in WorldModel(IMAGE_SPACE, gym.spaces.Discrete(6), WorldModelConfig.s()).parameters())
    assert 1.5e6 <= s - xs <= 4.5e6, s - xs


# What the presets built when the backbone was a string plus keyword arguments (before the typed configs), recorded
# from that code: parameter counts of whole world models (6 actions for 64x64x3 images, 2 for 4-vectors) and the
# names and shapes of the backbone's first layer and final norm (the other layers are alike).
PRESET_PARAMETERS = {
    ("xs", "mamba2", "image"): 7_146_707,
    ("xs", "mamba2", "vector"): 5_305_716,
    ("xs", "mamba", "vector"): 5_495_812,
    ("xs", "gru", "vector"): 5_258_244,
    ("xs", "transformer", "vector"): 8_403_972,
    ("s", "mamba2", "image"): 10_664_563,
    ("s", "mamba2", "vector"): 5_338_804,
    ("s", "mamba", "vector"): 5_594_116,
    ("s", "gru", "vector"): 5_258_244,
    ("s", "transformer", "vector"): 8_403_972,
    ("tiny", "mamba2", "image"): 352_971,
    ("tiny", "mamba2", "vector"): 255_548,
    ("tiny", "mamba", "image"): 364_307,
    ("tiny", "mamba", "vector"): 266_884,
    ("tiny", "gru", "image"): 346_899,
    ("tiny", "gru", "vector"): 249_476,
    ("tiny", "transformer", "image"): 445_203,
    ("tiny", "transformer", "vector"): 347_780,
    ("cpu_demo", "mamba2", "image"): 352_971,
    ("cpu_demo", "mamba2", "vector"): 255_548,
    ("cpu_demo", "mamba", "vector"): 266_884,
    ("cpu_demo", "gru", "vector"): 249_476,
    ("cpu_demo", "transformer", "vector"): 347_780,
}
BACKBONE_LAYER_0 = {
    ("xs", "mamba2"): {
        "mixers.0.conv_weight": (1056, 4),
        "mixers.0.conv_bias": (1056,),
        "mixers.0.dt_bias": (8,),
        "mixers.0.A_log": (8,),
        "mixers.0.D": (8,),
        "mixers.0.in_proj.weight": (2088, 512),
        "mixers.0.norm.weight": (1024,),
        "mixers.0.out_proj.weight": (512, 1024),
        "mixer_norms.0.weight": (512,),
        "final_norm.weight": (512,),
    },
    ("tiny", "mamba2"): {
        "mixers.0.conv_weight": (288, 4),
        "mixers.0.conv_bias": (288,),
        "mixers.0.dt_bias": (8,),
        "mixers.0.A_log": (8,),
        "mixers.0.D": (8,),
        "mixers.0.in_proj.weight": (552, 128),
        "mixers.0.norm.weight": (256,),
        "mixers.0.out_proj.weight": (128, 256),
        "mixer_norms.0.weight": (128,),
        "final_norm.weight": (128,),
    },
    ("tiny", "mamba"): {
        "mixers.0.conv_weight": (256, 4),
        "mixers.0.conv_bias": (256,),
        "mixers.0.A_log": (256, 16),
        "mixers.0.D": (256,),
        "mixers.0.in_proj.weight": (512, 128),
        "mixers.0.x_proj.weight": (40, 256),
        "mixers.0.dt_proj.weight": (256, 8),
        "mixers.0.dt_proj.bias": (256,),
        "mixers.0.out_proj.weight": (128, 256),
        "mixer_norms.0.weight": (128,),
        "final_norm.weight": (128,),
    },
    ("tiny", "gru"): {
        "mixers.0.gru.weight_ih_l0": (384, 128),
        "mixers.0.gru.weight_hh_l0": (384, 128),
        "mixers.0.gru.bias_ih_l0": (384,),
        "mixers.0.gru.bias_hh_l0": (384,),
        "mixer_norms.0.weight": (128,),
        "final_norm.weight": (128,),
    },
    ("tiny", "transformer"): {
        "mixers.0.qkv.weight": (384, 128),
        "mixers.0.out_proj.weight": (128, 128),
        "mixer_norms.0.weight": (128,),
        "ffns.0.0.weight": (512, 128),
        "ffns.0.0.bias": (512,),
        "ffns.0.2.weight": (128, 512),
        "ffns.0.2.bias": (128,),
        "ffn_norms.0.weight": (128,),
        "final_norm.weight": (128,),
    },
}


@pytest.mark.parametrize(("preset", "kind", "space"), list(PRESET_PARAMETERS))
def test_presets_build_the_parameters_they_built_before_typed_backbone_configs(preset, kind, space):
    config = getattr(WorldModelConfig, "tiny" if preset == "cpu_demo" else preset)()
    config = replace(config, backbone=config.backbone.as_kind(kind))
    spaces = (IMAGE_SPACE, gym.spaces.Discrete(6)) if space == "image" else (VECTOR_SPACE, gym.spaces.Discrete(2))
    model = WorldModel(*spaces, config)
    assert sum(p.numel() for p in model.parameters()) == PRESET_PARAMETERS[preset, kind, space]
    if (preset, kind) in BACKBONE_LAYER_0:
        state = model.backbone.state_dict()
        shapes = {name: tuple(t.shape) for name, t in state.items() if ".0." in name or "final" in name}
        assert shapes == BACKBONE_LAYER_0[preset, kind]
        assert len(state) == config.backbone.n_layers * (len(shapes) - 1) + 1


@pytest.mark.parametrize("kind", ["mamba2", "mamba", "gru", "transformer"])
def test_world_model_config_round_trips_with_its_backbone_kind(kind):
    """A checkpoint stores the config as plain data (to_dict); from_dict gives back the same backbone kind and sizes,
    and a model of another kind refuses the checkpoint."""
    config = _tiny_with(kind)
    data = json.loads(json.dumps(to_dict(config)))
    assert data["backbone"]["kind"] == kind and data["backbone"]["d_model"] == 128
    assert from_dict(WorldModelConfig, data) == config
    model = WorldModel(VECTOR_SPACE, gym.spaces.Discrete(2), config)
    state = model.training_state()
    twin = WorldModel(VECTOR_SPACE, gym.spaces.Discrete(2), from_dict(WorldModelConfig, state["config"]))
    twin.load_training_state(state)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters(), strict=True))
    other = _tiny_with("gru" if kind != "gru" else "mamba")
    with pytest.raises(ValueError, match="different WorldModelConfig"):
        WorldModel(VECTOR_SPACE, gym.spaces.Discrete(2), other).load_training_state(state)


@pytest.mark.parametrize(
    ("obs_space", "act_space", "error", "match"),
    [
        (gym.spaces.Dict({"a": IMAGE_SPACE}), gym.spaces.Discrete(3), TypeError, "Box"),
        (IMAGE_SPACE, gym.spaces.Box(-1, 1, (2,)), TypeError, "Discrete"),
        (gym.spaces.Box(0, 255, (84, 84, 3), np.uint8), gym.spaces.Discrete(3), ValueError, "64x64"),
        (gym.spaces.Box(0, 1, (4, 4), np.float32), gym.spaces.Discrete(3), TypeError, "vector"),
    ],
)
def test_unsupported_spaces_raise_clear_errors(obs_space, act_space, error, match):
    with pytest.raises(error, match=match):
        WorldModel(obs_space, act_space, WorldModelConfig.tiny())


def _random_sequence(model: WorldModel, batch: int, length: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = model.observation_space.shape
    if model.is_image:
        obs = torch.randint(0, 256, (batch, length, *shape), generator=g, dtype=torch.uint8)
    else:
        obs = torch.randn(batch, length, *shape, generator=g)
    action = torch.randint(0, model.n_actions, (batch, length), generator=g)
    first = torch.zeros(batch, length, dtype=torch.bool)
    first[:, 0] = True
    first[0, 5] = True  # an episode start inside the first sequence
    return obs, action, first


@pytest.mark.parametrize("backbone", ["mamba2", "gru"])
def test_parallel_observe_equals_recurrent_steps(backbone):
    """observe() over a sequence gives the same features as encode + advance one step at a time (acting path)."""
    model = WorldModel(
        gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(3), _tiny_with(backbone)
    ).double()
    obs, action, first = _random_sequence(model, batch=2, length=11)
    obs = obs.double()
    features, d, state = model.observe(obs, action, first, sample=False)

    step_state = model.initial_state(2)
    for t in range(obs.shape[1]):
        step_state = model.reset_rows(step_state, first[:, t])
        z = model.encode(obs[:, t], sample=False)
        torch.testing.assert_close(model.features(z, step_state), features[:, t])
        step_state = model.advance(step_state, z, action[:, t])
        torch.testing.assert_close(step_state.d, d[:, t])
    torch.testing.assert_close(step_state.d, state.d)


def test_observe_continues_from_a_carried_state():
    model = WorldModel(
        gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.Discrete(3), WorldModelConfig.tiny()
    ).double()
    obs, action, first = _random_sequence(model, batch=2, length=12)
    obs = obs.double()
    full, _, _ = model.observe(obs, action, first, sample=False)
    head, _, state = model.observe(obs[:, :7], action[:, :7], first[:, :7], sample=False)
    tail, _, _ = model.observe(obs[:, 7:], action[:, 7:], first[:, 7:], state=state, sample=False)
    torch.testing.assert_close(torch.cat([head, tail], 1), full)


@pytest.mark.parametrize("backbone", ["mamba2", "gru"])
def test_start_dreams_observes_the_context_then_draws_z0_from_the_prior_of_its_last_step(backbone):
    """start_dreams equals observe, then z_0 ~ prior(d_{L-1}) from the same generator, bit for bit."""
    env = gym.make("CartPole-v1")
    replay = fill_replay(env, 80)
    config = WorldModelConfig.tiny(backbone=WorldModelConfig.tiny().backbone.as_kind(backbone))
    model = WorldModel(env.observation_space, env.action_space, config)
    batch = replay.sample(6, 8, "imagination")
    reference, generator = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    with torch.no_grad():
        features, d, state = model.observe(batch.observation, batch.action, batch.first, generator=reference)
        z0 = model.latent(model.heads(state.d)[0], sample=True, generator=reference)
        carry, context_z = model.start_dreams(batch, generator=generator)
    assert torch.equal(carry.z, z0) and carry.z.shape == (6, model.config.latent_dim)
    assert torch.equal(carry.state.d, d[:, -1])  # the carry holds d_{L-1}
    for a, b in zip(carry.state.backbone, state.backbone, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(context_z, features[..., : model.config.latent_dim])
    assert torch.equal(generator.get_state(), reference.get_state())  # the same draws, in the same order


def test_imagine_step_shapes_and_ranges():
    model = WorldModel(IMAGE_SPACE, gym.spaces.Discrete(4), WorldModelConfig.tiny())
    obs, action, first = _random_sequence(model, batch=3, length=6)
    _, _, state = model.observe(obs, action, first)
    z = model.latent(model.heads(state.d)[0])
    state, z_next, reward, p_term = model.imagine_step(state, z, torch.tensor([0, 1, 3]))
    cfg = model.config
    assert z_next.shape == (3, cfg.latent_dim) and reward.shape == (3,) and p_term.shape == (3,)
    # one-hot per categorical variable, kept floating point (never cast to integers)
    assert z_next.dtype == torch.float32
    torch.testing.assert_close(z_next.view(3, cfg.n_latents, cfg.n_classes).sum(-1), torch.ones(3, cfg.n_latents))
    assert bool(((p_term >= 0) & (p_term <= 1)).all())
    frames = model.decode(z_next)
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == torch.uint8


def test_gumbel_max_sample_with_given_noise():
    """With the noise given, the draw is argmax(log p - log(-log u)): same noise, same sample; a wrong shape is an
    error, not a broadcast."""
    from drama_wm.distributions import sample_one_hot

    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], requires_grad=True)
    uniform = torch.tensor([[0.5, 0.999, 0.5], [0.3, 0.3, 0.3]])
    expected = (probs.detach().log() - (-uniform.log()).log()).argmax(-1)  # [1, 2]: the noise beats p in row 0
    sample = sample_one_hot(probs, uniform=uniform)
    assert expected.tolist() == [1, 2] and sample.argmax(-1).tolist() == [1, 2]
    sample.sum().backward()  # straight-through: the gradient reaches probs
    assert probs.grad is not None
    with pytest.raises(ValueError, match="shape of probs"):
        sample_one_hot(probs, uniform=torch.rand(3))


def _loss_with_captured_logits(model: WorldModel, batch, seed: int = 3):
    """model.loss(batch) with the posterior and prior logits it computed captured on the side."""
    captured = {}
    posterior, heads = model.posterior_logits, model.heads

    def posterior_logits(obs):
        captured["post"] = posterior(obs)
        return captured["post"]

    def capture_heads(d):
        out = heads(d)
        captured["prior"] = out[0]
        return out

    model.posterior_logits, model.heads = posterior_logits, capture_heads
    try:
        torch.manual_seed(seed)
        total, metrics = model.loss(batch)
    finally:
        del model.posterior_logits, model.heads
    return total, metrics, captured


def _numpy_kl_terms(post_logits, prior_logits, first, unimix=0.01, free_bits=1.0):
    """Eq. 7 written out in float64 numpy, independently of drama_wm.distributions: the mean over pairs (t, t+1)
    inside an episode of max(free_bits, sum over variables of KL[post(o_{t+1}) || prior(d_t)])."""

    def probs(logits):
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return (1 - unimix) * e / e.sum(-1, keepdims=True) + unimix / logits.shape[-1]

    post = probs(post_logits.detach().double().numpy())[:, 1:]
    prior = probs(prior_logits.detach().double().numpy())[:, :-1]
    kl = (post * (np.log(post) - np.log(prior))).sum(-1).sum(-1)  # [B, L-1]
    valid = ~first.numpy()[:, 1:]
    return kl, np.maximum(free_bits, kl)[valid].mean()


def test_loss_matches_equations_6_and_7_computed_independently(catch_env):
    """Each KL term is the free-bits-clamped KL of Eq. 7 over pairs inside an episode; total = recon + 1.0 dyn +
    0.1 rep + reward + termination. At initialisation the KLs straddle the 1-nat floor (checked below)."""
    config = WorldModelConfig.tiny(image_size=16)
    model = WorldModel(catch_env.observation_space, catch_env.action_space, config)
    batch = fill_replay(catch_env, 200, seed=1).sample(4, 16, "world_model")
    assert batch.first[:, 1:].any()  # some pairs cross an episode start and must be skipped
    total, m, captured = _loss_with_captured_logits(model, batch)
    kl, clamped = _numpy_kl_terms(captured["post"], captured["prior"], batch.first)
    valid = ~batch.first.numpy()[:, 1:]
    assert (kl[valid] < 1).any() and (kl[valid] > 1).any()  # the free-bits floor is exercised both ways
    np.testing.assert_allclose(float(m["wm/dynamics_kl"]), kl[valid].mean(), rtol=1e-5)
    expected = float(m["wm/reconstruction"] + m["wm/reward_nll"] + m["wm/termination_nll"]) + 1.1 * clamped
    np.testing.assert_allclose(float(total), expected, rtol=1e-5)


def test_loss_gradients_route_dyn_to_the_prior_and_rep_away_from_it(catch_env):
    """Eq. 7: L_dyn = KL[sg(post) || prior] trains the prior head; L_rep = KL[post || sg(prior)] gives it exactly
    zero gradient. With the default weights the prior head's gradient is 1.0 x that of L_dyn alone."""
    batch = fill_replay(catch_env, 200, seed=1).sample(4, 16, "world_model")

    def prior_head_grad(**scales):
        torch.manual_seed(0)
        config = WorldModelConfig.tiny(image_size=16, **scales)
        model = WorldModel(catch_env.observation_space, catch_env.action_space, config)
        total, _, _ = _loss_with_captured_logits(model, batch)
        total.backward()
        return model.prior_head.weight.grad.clone(), model.posterior_head.weight.grad.clone()

    dyn_only, post_dyn_only = prior_head_grad(dyn_scale=1.0, rep_scale=0.0)
    rep_only, post_rep_only = prior_head_grad(dyn_scale=0.0, rep_scale=1.0)
    neither, post_neither = prior_head_grad(dyn_scale=0.0, rep_scale=0.0)
    default, _ = prior_head_grad()
    assert dyn_only.abs().sum() > 0
    assert torch.equal(rep_only, torch.zeros_like(rep_only)) and torch.equal(neither, rep_only)
    assert not torch.allclose(post_rep_only, post_neither)  # the representation term moves the posterior
    torch.testing.assert_close(default, dyn_only, rtol=1e-5, atol=1e-8)


def test_update_skips_non_finite_losses():
    model = WorldModel(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2), WorldModelConfig.tiny())
    before = [p.detach().clone() for p in model.parameters()]
    obs, action, first = _random_sequence(model, batch=2, length=8)
    obs[0, 3, 0] = float("nan")

    class B:
        observation, reward = obs, torch.zeros(2, 8)
        terminated = torch.zeros(2, 8, dtype=torch.bool)

    B.action, B.first = action, first
    metrics = model.update(B)
    assert metrics["wm/skipped_update"] == 1.0 and model.updates == 0
    for p, q in zip(before, model.parameters(), strict=True):
        assert torch.equal(p, q)


def _evaluate(model: WorldModel, batch) -> dict[str, float]:
    """Next-latent accuracy of the prior's mode vs the posterior's mode, reward MSE and termination BCE."""
    with torch.no_grad():
        post = model.posterior_logits(batch.observation).argmax(-1)  # [B, L, n_latents]
        _, d, _ = model.observe(batch.observation, batch.action, batch.first, sample=False)
        prior, reward, term_logit = model.heads(d)
        valid = ~batch.first[:, 1:]
        latent_acc = (prior[:, :-1].argmax(-1) == post[:, 1:]).float().mean(-1)[valid].mean()
        copy_acc = (post[:, :-1] == post[:, 1:]).float().mean(-1)[valid].mean()  # baseline: z_{t+1} = z_t
        reward_mse = (reward - batch.reward).pow(2).mean()
        term_bce = torch.nn.functional.binary_cross_entropy_with_logits(term_logit, batch.terminated.float())
    return {
        "latent_acc": float(latent_acc),
        "copy_acc": float(copy_acc),
        "reward_mse": float(reward_mse),
        "term_bce": float(term_bce),
    }


def test_tiny_model_learns_catch_dynamics_reward_and_termination(catch_env):
    """After a short training on real Catch data the model beats its initialisation and trivial baselines:
    next-latent prediction beats copying the current latent, reward MSE beats predicting the mean reward, and
    termination BCE beats predicting the base rate (the entropy of the termination frequency)."""
    torch.manual_seed(0)
    replay = fill_replay(catch_env, 3000, seed=0)
    config = WorldModelConfig.tiny(image_size=16, lr=2e-3)
    model = WorldModel(catch_env.observation_space, catch_env.action_space, config)
    eval_batch = replay.sample(32, 16, "world_model")
    before = _evaluate(model, eval_batch)
    recon = []
    for _ in range(200):
        recon.append(model.update(replay.sample(16, 16, "world_model"))["wm/reconstruction"])
    after = _evaluate(model, eval_batch)

    assert np.mean(recon[-20:]) < 0.5 * np.mean(recon[:5])
    assert after["latent_acc"] > before["latent_acc"] + 0.2
    assert after["latent_acc"] > after["copy_acc"]
    r = eval_batch.reward
    assert after["reward_mse"] < 0.7 * float((r - r.mean()).pow(2).mean())
    rate = float(eval_batch.terminated.float().mean())
    base_bce = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert after["term_bce"] < 0.8 * base_bce
    assert after["term_bce"] < before["term_bce"]


def test_training_state_round_trip():
    model = WorldModel(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2), WorldModelConfig.tiny())
    other = WorldModel(gym.spaces.Box(-1, 1, (3,), np.float32), gym.spaces.Discrete(2), WorldModelConfig.tiny())
    other.load_training_state(model.training_state())
    for p, q in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q)
    bigger = WorldModel(
        gym.spaces.Box(-1, 1, (3,), np.float32),
        gym.spaces.Discrete(2),
        WorldModelConfig.tiny(backbone=replace(WorldModelConfig.tiny().backbone, d_model=64)),
    )
    with pytest.raises(ValueError, match="different WorldModelConfig"):
        bigger.load_training_state(model.training_state())
