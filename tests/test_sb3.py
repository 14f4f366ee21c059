"""stable-baselines3 integration: DreamVecEnv against SB3's VecEnv contract, SB3Learner, and the optional import."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from helpers import CountingWorldModel, fill_replay

from drama_wm import Drama, DramaConfig, DreamEnv, LatentObservation, WorldModel, WorldModelConfig
from drama_wm.envs import Catch

pytest.importorskip("stable_baselines3")

from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from drama_wm.integrations.sb3 import DreamVecEnv, SB3Learner

HORIZON = 4


@pytest.fixture(scope="module")
def cartpole_world() -> tuple[WorldModel, object]:
    """An (untrained) tiny world model and a buffer of 300 random CartPole steps."""
    torch.manual_seed(0)
    env = gym.make("CartPole-v1")
    world_model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    return world_model, fill_replay(env, 300)


def _counting_vec_env(terminate_at=(2, 100, 100), **kwargs) -> DreamVecEnv:
    env = gym.make("CartPole-v1")
    model = CountingWorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    model.terminate_at = torch.tensor(terminate_at, dtype=torch.float32)
    dream = DreamEnv(
        model,
        fill_replay(env, 60),
        num_envs=len(terminate_at),
        context_length=4,
        horizon=HORIZON,
        autoreset_mode=AutoresetMode.SAME_STEP,
        **kwargs,
    )
    return DreamVecEnv(dream)


def _dream(world, learner: SB3Learner | None = None, **kwargs) -> DreamEnv:
    world_model, replay = world
    options = learner.dream_options if learner is not None else {"autoreset_mode": AutoresetMode.SAME_STEP}
    return DreamEnv(world_model, replay, context_length=4, horizon=HORIZON, seed=0, **{**options, **kwargs})


# ---------------------------------------------------------------------------------------------------- DreamVecEnv
def test_step_contract_with_an_exactly_known_dream():
    # Sub-env 0 terminates at count 2, sub-env 1 terminates on the horizon step (a termination, not a time limit),
    # sub-env 2 runs into the horizon (a time limit).
    venv = _counting_vec_env(terminate_at=(2, HORIZON, 100))
    dim = WorldModelConfig.tiny().feature_dim
    obs = venv.reset()
    assert obs.shape == (3, dim) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, -1], [0, 0, 0])
    actions = np.array([0, 1, 1])
    expected_dones = [[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]]
    expected_counts = [[1, 1, 1], [0, 2, 2], [1, 3, 3], [0, 0, 0]]  # the new dream's first obs after a done
    expected_terminal = {(1, 0): 2, (3, 0): 2, (3, 1): 4, (3, 2): 4}  # (step, env) -> count of the last obs
    expected_rewards = [[1, 1.1, 1.1], [2, 2.1, 2.1], [1, 3.1, 3.1], [2, 4.1, 4.1]]
    for t in range(4):
        obs, rewards, dones, infos = venv.step(actions)
        assert rewards.dtype == np.float32 and rewards.shape == (3,)
        assert dones.dtype == np.bool_ and dones.shape == (3,)
        assert isinstance(infos, list) and len(infos) == 3
        np.testing.assert_allclose(rewards, expected_rewards[t], rtol=1e-6)
        np.testing.assert_array_equal(dones, np.array(expected_dones[t], dtype=bool))
        np.testing.assert_array_equal(obs[:, -1], expected_counts[t])
        for i, info in enumerate(infos):
            assert ("terminal_observation" in info) == bool(dones[i])
            if dones[i]:
                terminal = info["terminal_observation"]
                assert terminal.shape == (dim,) and terminal.dtype == np.float32
                assert terminal[-1] == expected_terminal[(t, i)]
            # Only sub-env 2 on the horizon step was ended by the time limit.
            assert info["TimeLimit.truncated"] == (t == 3 and i == 2)


def test_time_limit_flags_match_episode_lengths_in_a_random_dream(cartpole_world):
    # Terminations drawn from the (untrained) termination head: every done is either a time limit after exactly
    # HORIZON steps, or a predicted termination after at most HORIZON steps.
    venv = DreamVecEnv(_dream(cartpole_world, num_envs=8, termination="sample"))
    venv.seed(1)
    venv.reset()
    elapsed = np.zeros(8, dtype=int)
    counts = {"limit": 0, "termination": 0}
    rng = np.random.default_rng(0)
    for _ in range(24):
        _, _, dones, infos = venv.step(rng.integers(2, size=8))
        elapsed += 1
        for i in range(8):
            limit = infos[i]["TimeLimit.truncated"]
            assert not limit or dones[i]
            if elapsed[i] == HORIZON:
                assert dones[i]
            if dones[i]:
                assert ("terminal_observation" in infos[i]) and elapsed[i] <= HORIZON
                if limit:  # a time limit fires exactly at the horizon
                    assert elapsed[i] == HORIZON
                counts["limit" if limit else "termination"] += 1
                elapsed[i] = 0
    assert counts["limit"] > 0 and counts["termination"] > 0


def test_adapter_forwards_the_same_step_dream_exactly(cartpole_world):
    world_model, replay = cartpole_world
    options = dict(num_envs=6, context_length=4, horizon=HORIZON, termination="sample")
    venv = DreamVecEnv(DreamEnv(world_model, copy.deepcopy(replay), autoreset_mode=AutoresetMode.SAME_STEP, **options))
    reference = DreamEnv(world_model, copy.deepcopy(replay), autoreset_mode=AutoresetMode.SAME_STEP, **options)
    venv.seed(3)
    np.testing.assert_array_equal(venv.reset(), reference.reset(seed=3)[0])
    rng = np.random.default_rng(0)
    for _ in range(10):
        actions = rng.integers(2, size=6)
        obs, rewards, dones, infos = venv.step(actions)
        ref_obs, ref_rewards, terminated, truncated, ref_info = reference.step(actions)
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rewards)
        np.testing.assert_array_equal(dones, terminated | truncated)
        for i in np.flatnonzero(dones):
            np.testing.assert_array_equal(infos[i]["terminal_observation"], ref_info["final_obs"][i])
            assert infos[i]["TimeLimit.truncated"] == bool(truncated[i])


def test_seeding_gives_identical_trajectories(cartpole_world):
    world_model, replay = cartpole_world

    def trajectory(seed: int) -> list[np.ndarray]:
        # DFS counters move with every draw, so each run starts from the same copy of the buffer.
        dream = DreamEnv(
            world_model,
            copy.deepcopy(replay),
            num_envs=4,
            context_length=4,
            horizon=HORIZON,
            autoreset_mode=AutoresetMode.SAME_STEP,
            termination="sample",
        )
        venv = DreamVecEnv(dream)
        assert venv.seed(seed) == [seed] * 4
        out = [venv.reset()]
        for t in range(6):
            obs, rewards, dones, _ = venv.step(np.array([t % 2, 1, 0, 1]))
            out += [obs, rewards, dones]
        return out

    first, again, other = trajectory(5), trajectory(5), trajectory(6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_vec_env_methods_and_errors(cartpole_world):
    dream = _dream(cartpole_world, num_envs=3)
    venv = DreamVecEnv(dream)
    assert venv.num_envs == 3 and venv.observation_space == dream.single_observation_space
    assert venv.action_space == dream.single_action_space
    assert venv.get_attr("horizon") == [HORIZON] * 3 and venv.get_attr("horizon", indices=[1]) == [HORIZON]
    assert venv.has_attr("world_model") and not venv.has_attr("no_such_attribute")
    venv.set_attr("termination", "sample")
    assert dream.termination == "sample"
    with pytest.raises(ValueError, match="indices=None"):
        venv.set_attr("termination", "threshold", indices=[0])
    with pytest.raises(ValueError, match="indices=None"):
        venv.env_method("reset", indices=1)
    venv.reset()
    state = venv.env_method("state_dict")
    assert len(state) == 3 and state[0] is state[2] and "rng" in state[0]
    assert venv.env_is_wrapped(Monitor) == [False] * 3
    assert venv.get_images() == [None] * 3  # a vector world model decodes no frames
    with pytest.raises(RuntimeError, match="step_async"):
        venv.step_wait()
    with pytest.raises(ValueError, match="options"):
        venv.set_options({"reset_mask": np.ones(3, dtype=bool)})
    venv.set_options(None)
    venv.close()

    world_model, replay = cartpole_world
    with pytest.raises(ValueError, match="SAME_STEP"):
        DreamVecEnv(DreamEnv(world_model, replay, num_envs=2, context_length=4))  # NEXT_STEP by default
    with pytest.raises(ValueError, match="numpy"):
        DreamVecEnv(
            DreamEnv(
                world_model,
                replay,
                num_envs=2,
                context_length=4,
                array_type="torch",
                autoreset_mode=AutoresetMode.SAME_STEP,
            )
        )
    with pytest.raises(TypeError, match="DreamEnv"):
        DreamVecEnv(gym.make("CartPole-v1"))


def test_render_tiles_decoded_dream_frames():
    torch.manual_seed(0)
    env = Catch(size=64, grid=8, max_steps=30)
    world_model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    dream = DreamEnv(
        world_model,
        fill_replay(env, 40),
        num_envs=4,
        context_length=4,
        horizon=HORIZON,
        autoreset_mode=AutoresetMode.SAME_STEP,
        observation="image",
    )
    venv = DreamVecEnv(dream)
    with pytest.raises(RuntimeError, match="reset"):
        venv.get_images()
    obs = venv.reset()
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    frames = venv.get_images()
    assert len(frames) == 4 and all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(np.stack(frames), dream.render())
    assert venv.render().shape == (128, 128, 3)  # four frames tiled 2 x 2


# ---------------------------------------------------------------------------------------------------- SB3Learner
@pytest.mark.parametrize(
    "make_learner",
    [
        lambda: SB3Learner.ppo(num_envs=4, batch_size=8, n_epochs=2, verbose=1),
        lambda: SB3Learner(lambda venv: A2C("MlpPolicy", venv, n_steps=HORIZON, gamma=0.985), num_envs=4),
    ],
    ids=["ppo", "a2c"],
)
def test_learner_learns_acts_and_rebinds(cartpole_world, make_learner, capsys):
    learner = make_learner()
    assert learner.dream_options == {
        "num_envs": 4,
        "array_type": "numpy",
        "observation": "latent",
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }
    learner.bind(_dream(cartpole_world, learner))
    model = learner.model
    assert model.n_steps == HORIZON  # ppo(): n_steps defaults to the dream's horizon
    capsys.readouterr()  # SB3 may announce its device when the model is built (verbose=1)
    metrics = learner.learn()
    assert model.num_timesteps == HORIZON * 4
    assert "behaviour/train/value_loss" in metrics and "behaviour/rollout/ep_rew_mean" in metrics
    assert all(key.startswith("behaviour/") and np.isfinite(v) for key, v in metrics.items())
    learner.learn()
    assert model.num_timesteps == 2 * HORIZON * 4
    assert capsys.readouterr().out == ""  # SB3's console tables are silenced, even with verbose=1

    features = np.random.default_rng(0).normal(size=(5, WorldModelConfig.tiny().feature_dim)).astype(np.float32)
    actions = learner.act(features, deterministic=True)
    assert actions.dtype == np.int64 and actions.shape == (5,) and set(actions.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="shape"):
        learner.act(features[0])

    # A new dream re-attaches the same model without touching its weights.
    weights = copy.deepcopy(model.policy.state_dict())
    new_dream = _dream(cartpole_world, learner)
    learner.bind(new_dream)
    assert learner.model is model and learner.dream is new_dream
    assert model.get_env().unwrapped.dream is new_dream
    for key, value in model.policy.state_dict().items():
        torch.testing.assert_close(value, weights[key])
    np.testing.assert_array_equal(learner.act(features, deterministic=True), actions)


@pytest.mark.parametrize(
    ("rollouts_per_learn", "n_steps", "dreams_per_env"), [(1, HORIZON, 1), (2, HORIZON, 2), (1, 2 * HORIZON, 2)]
)
def test_each_update_draws_exactly_the_starts_it_dreams_from(rollouts_per_learn, n_steps, dreams_per_env):
    """No predicted terminations: every dream runs its whole horizon, so one learn() dreams from exactly
    num_envs x (rollouts_per_learn x n_steps / horizon) starts, and the imagination counts b_i move by that much."""
    env = gym.make("CartPole-v1")
    world_model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    with torch.no_grad():
        world_model.termination_head[-1].bias.fill_(-30.0)  # p(terminated) ~ 1e-13: dreams only truncate
    replay = fill_replay(env, 300)
    learner = SB3Learner.ppo(rollouts_per_learn, num_envs=4, n_steps=n_steps, batch_size=8, n_epochs=1)
    learner.bind(_dream((world_model, replay), learner))
    before = replay.imagine_counts.sum()
    for _ in range(3):
        learner.learn()
        assert replay.imagine_counts.sum() - before == 4 * dreams_per_env
        before = replay.imagine_counts.sum()
    # The adapter refuses to step past the rollout it was promised a reset after.
    vec_env = learner.model.get_env()
    with pytest.raises(RuntimeError, match=r"past rollout_length=\d+ without reset"):
        vec_env.step(np.zeros(4, dtype=np.int64))


def test_state_dict_round_trip(cartpole_world):
    learner = SB3Learner.ppo(num_envs=4, batch_size=8, n_epochs=1)
    with pytest.raises(RuntimeError, match="bind"):
        learner.state_dict()
    learner.bind(_dream(cartpole_world, learner))
    learner.learn()
    state = learner.state_dict()
    assert state["algorithm"] == "stable_baselines3.ppo.ppo.PPO"
    assert all(isinstance(v, torch.Tensor) for v in state["policy"].values())  # weights_only-loadable

    restored = SB3Learner.ppo(num_envs=4, batch_size=8, n_epochs=1)
    with pytest.raises(RuntimeError, match="bind"):
        restored.load_state_dict(state)
    restored.bind(_dream(cartpole_world, restored))
    restored.load_state_dict(state)
    features = np.random.default_rng(1).normal(size=(32, WorldModelConfig.tiny().feature_dim)).astype(np.float32)
    np.testing.assert_array_equal(restored.act(features, True), learner.act(features, True))
    assert restored.model.num_timesteps == learner.model.num_timesteps
    restored.learn()  # the restored model trains on in its dream, still silently

    a2c = SB3Learner(lambda venv: A2C("MlpPolicy", venv, n_steps=HORIZON), num_envs=4)
    a2c.bind(_dream(cartpole_world, a2c))
    with pytest.raises(ValueError, match="PPO"):
        a2c.load_state_dict(state)


def test_standalone_sb3_on_the_dream_and_evaluate_policy_in_the_real_env(cartpole_world):
    world_model, _ = cartpole_world
    venv = DreamVecEnv(_dream(cartpole_world, num_envs=4))
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0).learn(64)
    assert model.num_timesteps == 64
    real = Monitor(LatentObservation(gym.make("CartPole-v1"), world_model))
    mean, std = evaluate_policy(model, real, n_eval_episodes=2)
    assert np.isfinite(mean) and mean >= 1 and std >= 0


def test_prebuilt_models_are_checked(cartpole_world):
    world_model, replay = cartpole_world
    model = PPO("MlpPolicy", DreamVecEnv(_dream(cartpole_world, num_envs=4)), n_steps=HORIZON, batch_size=8)
    learner = SB3Learner(model)
    assert learner.dream_options["num_envs"] == 4
    learner.bind(_dream(cartpole_world, learner))
    assert learner.model is model
    with pytest.raises(ValueError, match="n_envs"):
        SB3Learner(model, num_envs=8)

    # Features of another world model (d_model 64) do not fit this policy's input.
    wider = WorldModelConfig.tiny(backbone=replace(WorldModelConfig.tiny().backbone, d_model=64))
    other = WorldModel(world_model.observation_space, world_model.action_space, wider)
    dream = DreamEnv(other, replay, context_length=4, horizon=HORIZON, **learner.dream_options)
    with pytest.raises(ValueError, match="spaces"):
        SB3Learner(model).bind(dream)
    with pytest.raises(ValueError, match="dream_options"):
        learner.bind(_dream(cartpole_world, num_envs=4, autoreset_mode=AutoresetMode.NEXT_STEP))

    with pytest.raises(TypeError, match="on-policy"):
        SB3Learner(DQN("MlpPolicy", "CartPole-v1", buffer_size=100))
    with pytest.raises(TypeError, match="model_or_factory"):
        SB3Learner("PPO")
    with pytest.raises(ValueError, match="rollouts_per_learn"):
        SB3Learner.ppo(rollouts_per_learn=0)
    with pytest.raises(ValueError, match="observation"):
        SB3Learner.ppo(observation="pixels")


def test_image_observations_learn_with_a_cnn_and_act_on_features():
    torch.manual_seed(0)
    env = Catch(size=64, grid=8, max_steps=30)
    world_model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    learner = SB3Learner.ppo(num_envs=2, observation="image", batch_size=4, n_epochs=1)
    dream = DreamEnv(world_model, fill_replay(env, 40), context_length=4, horizon=HORIZON, **learner.dream_options)
    learner.bind(dream)
    assert learner.learn()["behaviour/train/n_updates"] > 0
    features, _ = LatentObservation(env, world_model).reset(seed=0)
    actions = learner.act(features[None], deterministic=True)
    assert actions.shape == (1,) and 0 <= actions[0] < 3


# ---------------------------------------------------------------------------------------------------- driver
def test_drama_round_trip_with_ppo(tmp_path):
    def make_learner() -> SB3Learner:
        return SB3Learner.ppo(num_envs=4, batch_size=8, n_epochs=1, policy_kwargs={"net_arch": [32, 32]})

    config = DramaConfig.tiny(world_model_every=4, behaviour_every=4)
    agent = Drama("CartPole-v1", config, learner=make_learner(), seed=0)
    agent.learn(300, progress_bar=False)
    assert agent.learner.model.num_timesteps > 0
    path = agent.save(tmp_path / "agent.pt")
    loaded = Drama.load(path, learner=make_learner())
    assert loaded.learner.model.num_timesteps == agent.learner.model.num_timesteps
    features = np.random.default_rng(0).normal(size=(16, WorldModelConfig.tiny().feature_dim)).astype(np.float32)
    np.testing.assert_array_equal(
        loaded.predict_features(features, deterministic=True), agent.predict_features(features, deterministic=True)
    )
    result = loaded.evaluate(n_episodes=1, deterministic=True)
    assert result["returns"][0] >= 1


# ---------------------------------------------------------------------------------------------------- optional
def test_core_works_without_stable_baselines3():
    script = textwrap.dedent(
        """
        import sys

        class BlockSB3:
            def find_spec(self, name, path=None, target=None):
                if name == "stable_baselines3" or name.startswith("stable_baselines3."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, BlockSB3())
        import drama_wm

        agent = drama_wm.Drama("CartPole-v1", drama_wm.DramaConfig.tiny(), seed=0)
        agent.learn(20, progress_bar=False)
        assert "stable_baselines3" not in sys.modules
        try:
            import drama_wm.integrations.sb3
        except ImportError as error:
            print("ImportError:", error)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ImportError:" in done.stdout and 'pip install "drama-wm[sb3]"' in done.stdout
