"""DreamEnv and LatentObservation: the Gymnasium 1.x vector-env contract with exact expected sequences."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from helpers import CountingWorldModel, fill_replay

from drama_wm import DreamEnv, LatentObservation, WorldModel, WorldModelConfig
from drama_wm.dream_env import SingleDreamEnv

VECTOR_SPACE = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)


def _counting_dream(num_envs=3, horizon=4, terminate_at=(2, 100, 100), **kwargs):
    env = gym.make("CartPole-v1")
    replay = fill_replay(env, 60)
    model = CountingWorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    model.terminate_at = torch.tensor(terminate_at, dtype=torch.float32)
    return DreamEnv(model, replay, num_envs=num_envs, context_length=4, horizon=horizon, **kwargs), replay


def _count(obs) -> np.ndarray:
    return np.asarray(obs)[:, -1]


def test_spaces_dtypes_and_metadata():
    dream, _ = _counting_dream()
    assert dream.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    dim = WorldModelConfig.tiny().feature_dim
    assert dream.single_observation_space.shape == (dim,) and dream.observation_space.shape == (3, dim)
    assert dream.action_space.shape == (3,)
    obs, info = dream.reset(seed=0)
    assert obs.shape == (3, dim) and obs.dtype == np.float32 and info == {}
    obs, reward, terminated, truncated, infos = dream.step(np.array([0, 1, 1]))
    assert reward.dtype == np.float32 and reward.shape == (3,)
    assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    assert dream.observation_space.contains(obs)


def test_next_step_autoreset_exact_sequence():
    """Env 0 terminates at its 2nd step, the others are truncated at the horizon of 4."""
    dream, _ = _counting_dream()
    obs, _ = dream.reset(seed=0)
    np.testing.assert_array_equal(_count(obs), [0, 0, 0])
    expected = [  # (counts, rewards, terminated, truncated) after each step with action 1
        ([1, 1, 1], [1.1, 1.1, 1.1], [0, 0, 0], [0, 0, 0]),
        ([2, 2, 2], [2.1, 2.1, 2.1], [1, 0, 0], [0, 0, 0]),
        ([0, 3, 3], [0.0, 3.1, 3.1], [0, 0, 0], [0, 0, 0]),  # env 0 autoresets: reward 0, action ignored
        ([1, 4, 4], [1.1, 4.1, 4.1], [0, 0, 0], [0, 1, 1]),  # envs 1, 2 truncated exactly at the horizon
        ([2, 0, 0], [2.1, 0.0, 0.0], [1, 0, 0], [0, 0, 0]),
    ]
    for counts, rewards, term, trunc in expected:
        obs, reward, terminated, truncated, infos = dream.step(np.ones(3, dtype=np.int64))
        np.testing.assert_array_equal(_count(obs), counts)
        np.testing.assert_allclose(reward, rewards, rtol=1e-6)
        np.testing.assert_array_equal(terminated, np.array(term, bool))
        np.testing.assert_array_equal(truncated, np.array(trunc, bool))
        assert infos == {}


def test_same_step_autoreset_reports_final_observation():
    dream, _ = _counting_dream(autoreset_mode=AutoresetMode.SAME_STEP)
    dream.reset(seed=0)
    dream.step(np.ones(3, dtype=np.int64))
    obs, reward, terminated, _, infos = dream.step(np.ones(3, dtype=np.int64))
    np.testing.assert_array_equal(terminated, [True, False, False])
    np.testing.assert_array_equal(infos["_final_obs"], [True, False, False])
    assert infos["final_obs"][0, -1] == 2  # the terminal observation
    np.testing.assert_array_equal(_count(obs), [0, 2, 2])  # env 0 already restarted


def test_same_step_without_autoreset_restarts_nothing_until_reset():
    dream, replay = _counting_dream(autoreset_mode=AutoresetMode.SAME_STEP)
    dream.reset(seed=0)
    dream.step(np.ones(3, dtype=np.int64))
    drawn = replay.imagine_counts.sum()
    obs, _, terminated, _, infos = dream.step(np.ones(3, dtype=np.int64), autoreset=False)
    np.testing.assert_array_equal(terminated, [True, False, False])
    np.testing.assert_array_equal(_count(obs), [2, 2, 2])  # env 0 keeps its final observation
    np.testing.assert_array_equal(infos["final_obs"], obs)
    assert replay.imagine_counts.sum() == drawn  # no start drawn for the finished dream
    with pytest.raises(RuntimeError, match="call reset"):
        dream.step(np.ones(3, dtype=np.int64))
    dream.reset()
    assert replay.imagine_counts.sum() == drawn + 3
    np.testing.assert_array_equal(_count(dream.step(np.ones(3, dtype=np.int64))[0]), [1, 1, 1])
    other, _ = _counting_dream(autoreset_mode=AutoresetMode.NEXT_STEP)
    other.reset(seed=0)
    with pytest.raises(ValueError, match="SAME_STEP"):
        other.step(np.ones(3, dtype=np.int64), autoreset=False)


def test_dreams_never_start_from_a_terminal_context():
    """A CartPole buffer of random play ends an episode every ~20 steps; no dream may start from such a context."""
    env = gym.make("CartPole-v1")
    replay = fill_replay(env, 400)
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    dream = DreamEnv(model, replay, num_envs=64, context_length=8, horizon=2, seed=0)
    terminal_ends = (np.flatnonzero(replay.field("terminated")) - 7) % replay.capacity
    assert len(terminal_ends) > 10
    for seed in range(20):
        dream.reset(seed=seed)
    assert replay.imagine_counts.sum() == 20 * 64
    assert replay.imagine_counts[terminal_ends].sum() == 0


def test_disabled_autoreset_keeps_dreaming_and_partial_reset():
    dream, replay = _counting_dream(autoreset_mode=AutoresetMode.DISABLED)
    dream.reset(seed=0)
    for _ in range(3):
        obs, _, terminated, _, _ = dream.step(np.zeros(3, dtype=np.int64))
    np.testing.assert_array_equal(_count(obs), [3, 3, 3])  # env 0 terminated at 2 but is not reset
    before = replay.imagine_counts.sum()
    obs, _ = dream.reset(options={"reset_mask": np.array([False, True, False])})
    np.testing.assert_array_equal(_count(obs), [3, 0, 3])
    assert replay.imagine_counts.sum() == before + 1  # only the reset sub-env drew a new DFS start


def test_reset_draws_dfs_starts_and_counters_advance():
    dream, replay = _counting_dream(num_envs=5)
    assert replay.imagine_counts.sum() == 0
    dream.reset(seed=0)
    assert replay.imagine_counts.sum() == 5 and replay.train_counts.sum() == 0


def _real_dream(seed: int, replay_state=None, **kwargs):
    env = gym.make("CartPole-v1")
    replay = fill_replay(env, 80)
    if replay_state is not None:
        replay.load_state_dict(replay_state)
    torch.manual_seed(0)
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    return DreamEnv(model, replay, num_envs=4, context_length=4, horizon=5, **kwargs), replay


def _rollout(dream, seed, steps=7):
    obs, _ = dream.reset(seed=seed)
    out = [obs]
    for t in range(steps):
        obs, reward, terminated, truncated, _ = dream.step(np.array([t % 2, 1, 0, 1]))
        out += [obs, reward, terminated, truncated]
    return out


def test_seeding_reproduces_the_dream():
    dream_a, replay_a = _real_dream(0)
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in replay_a.state_dict().items()}
    a = _rollout(dream_a, seed=7)
    dream_b, _ = _real_dream(0, replay_state=state)
    b = _rollout(dream_b, seed=7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = _rollout(dream_b, seed=8)
    assert not np.array_equal(a[0], c[0])


def test_step_draws_its_noise_first_then_applies_the_transition():
    """The contract the CUDA-graph path relies on: a step draws U(0, 1) noise of shape [B, n_latents, n_classes]
    from the dream's generator and only then runs the (host-free) world-model transition on it."""
    dream, _ = _real_dream(0, array_type="torch", cuda_graph=True)
    assert not dream.cuda_graph  # ignored off CUDA
    dream.reset(seed=3)
    wm, c = dream.world_model, dream.world_model.config
    generator = torch.Generator().manual_seed(0)
    generator.set_state(dream._generator.get_state())
    uniform = torch.rand((4, c.n_latents, c.n_classes), generator=generator)
    action = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        state, z_next, reward, p_term = wm.imagine_step(dream.carry.state, dream.carry.z, action, uniform=uniform)
    obs, dreamed_reward, terminated, _, _ = dream.step(action)
    torch.testing.assert_close(obs, wm.features(z_next, state), rtol=0, atol=0)
    torch.testing.assert_close(dreamed_reward, reward, rtol=0, atol=0)
    assert torch.equal(terminated, p_term > 0.5)
    assert torch.equal(dream._generator.get_state(), generator.get_state())  # nothing else was drawn


def test_sampled_termination_is_a_bernoulli_draw_of_the_predicted_probability():
    """termination="sample": after the latent noise, a step draws U(0, 1) [B] and a dream ends where it is below
    p(term); over several steps this differs from the 0.5 threshold, so the test tells the two modes apart."""
    dream, _ = _real_dream(0, array_type="torch", termination="sample", autoreset_mode=AutoresetMode.DISABLED)
    dream.reset(seed=5)
    wm, c = dream.world_model, dream.world_model.config
    generator = torch.Generator().manual_seed(0)
    differs = False
    for step in range(4):
        generator.set_state(dream._generator.get_state())
        uniform = torch.rand((4, c.n_latents, c.n_classes), generator=generator)
        u_term = torch.rand(4, generator=generator)
        action = torch.tensor([0, 1, 1, 0])
        with torch.no_grad():
            _, _, _, p_term = wm.imagine_step(dream.carry.state, dream.carry.z, action, uniform=uniform)
        _, _, terminated, _, _ = dream.step(action)
        assert torch.equal(terminated, u_term < p_term), step
        assert torch.equal(dream._generator.get_state(), generator.get_state())
        differs |= not torch.equal(terminated, p_term > 0.5)
    assert differs
    with pytest.raises(ValueError, match="termination must be one of threshold, sample, got 'always'"):
        _real_dream(0, termination="always")


def test_torch_mode_keeps_tensors():
    dream, _ = _real_dream(0, array_type="torch")
    obs, _ = dream.reset(seed=0)
    assert torch.is_tensor(obs) and obs.dtype == torch.float32
    obs, reward, terminated, truncated, _ = dream.step(torch.tensor([0, 1, 0, 1]))
    assert all(torch.is_tensor(x) for x in (obs, reward, terminated, truncated))
    assert terminated.dtype == torch.bool


def test_image_observations_are_decoded_frames(catch_env):
    replay = fill_replay(catch_env, 50)
    model = WorldModel(catch_env.observation_space, catch_env.action_space, WorldModelConfig.tiny(image_size=16))
    dream = DreamEnv(model, replay, num_envs=2, context_length=4, horizon=3, observation="image")
    obs, _ = dream.reset(seed=0)
    assert obs.shape == (2, 16, 16, 3) and obs.dtype == np.uint8
    assert dream.render().shape == (2, 16, 16, 3)


def test_clear_errors():
    env = gym.make("CartPole-v1")
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    other = fill_replay(gym.make("MountainCar-v0"), 20)
    with pytest.raises(ValueError, match="disagree on spaces"):
        DreamEnv(model, other, num_envs=2)
    small = fill_replay(env, 3)
    with pytest.raises(ValueError, match="fewer than context_length"):
        DreamEnv(model, small, num_envs=2, context_length=8).reset()
    with pytest.raises(ValueError, match="'image' needs"):
        DreamEnv(model, small, observation="image")
    dream, _ = _real_dream(0)
    dream.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        dream.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        dream.step(np.array([0, 1, 2, 0]))
    with pytest.raises(TypeError, match="integers"):
        dream.step(np.zeros(4, dtype=np.float32))


def test_gymnasium_and_sb3_check_env_on_a_single_dream():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("CartPole-v1")
    replay = fill_replay(env, 60)
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    single = SingleDreamEnv(model, replay, context_length=4, horizon=5)
    check_env(single, skip_render_check=True)
    sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_env_checker.check_env(single, warn=True)


def test_latent_observation_matches_the_parallel_path():
    """Features from one O(1) update per real step equal WorldModel.observe over the stored episode."""
    env = gym.make("CartPole-v1")
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    wrapped = LatentObservation(env, model, sample=False)
    feats, raws, actions = [], [], []
    obs, _ = wrapped.reset(seed=3)
    for t in range(12):
        feats.append(obs)
        raws.append(wrapped.raw_observation)
        actions.append(t % 2)
        obs, _, terminated, truncated, _ = wrapped.step(t % 2)
        assert not (terminated or truncated)
    first = torch.zeros(1, 12, dtype=torch.bool)
    first[0, 0] = True
    with torch.no_grad():
        parallel, _, _ = model.observe(
            torch.tensor(np.array(raws))[None], torch.tensor(actions)[None], first, sample=False
        )
    np.testing.assert_allclose(np.array(feats), parallel[0].numpy(), atol=1e-5)
    assert wrapped.observation_space.shape == (model.config.feature_dim,)
    # a reset starts a fresh recurrent state: d_{-1} = 0
    obs, _ = wrapped.reset()
    np.testing.assert_array_equal(obs[model.config.latent_dim :], 0.0)
