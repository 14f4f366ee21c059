"""Drama follows stable-baselines3's conventions: callbacks, predict on raw observations with a recurrent state,
evaluate_policy, tensorboard_log run folders, load/evaluate without env=, SingleDreamEnv for check_env."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm import Drama, DramaConfig, LatentObservation, SingleDreamEnv

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.callbacks import (  # noqa: E402
    BaseCallback,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402


def tiny(**overrides: object) -> DramaConfig:
    return DramaConfig.tiny(**{"warmup_steps": 16, "sequence_length": 8, **overrides})


def scalar_names(path: Path) -> set[str]:
    with path.open() as f:
        return {row["name"] for row in csv.DictReader(f)}


def scalar_steps(path: Path) -> list[int]:
    with path.open() as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------------- predict
def test_predict_on_raw_observations_carries_the_recurrent_state_like_latent_observation():
    """predict(obs, state) gives the state and latent LatentObservation carries, step by step and across resets."""
    agent = Drama("CartPole-v1", tiny(), seed=0)
    wrapped = LatentObservation(gym.make("CartPole-v1"), agent.world_model)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    wrapped.reset(seed=3)
    agent._predict_generator.manual_seed(3)  # the same latent samples as LatentObservation's generator
    state, start, resets = None, np.array([True]), 0
    for _ in range(60):
        action, state = agent.predict(obs, state=state, episode_start=start, deterministic=True)
        assert np.ndim(action) == 0
        torch.testing.assert_close(state.recurrent.d, wrapped._state.d)
        torch.testing.assert_close(state.z, wrapped._z)
        obs, _, terminated, truncated, _ = env.step(int(action))
        wrapped.step(int(action))
        start = np.array([terminated or truncated])
        if start[0]:
            resets += 1
            obs, _ = env.reset(seed=resets)  # LatentObservation.reset(seed=) seeds its env too
            agent._predict_generator.manual_seed(resets)
            wrapped.reset(seed=resets)
    assert resets >= 1  # the episode_start path was exercised


def test_predict_episode_start_restarts_only_its_rows():
    agent = Drama("CartPole-v1", tiny(), seed=0)
    obs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    actions, state = agent.predict(obs)
    assert actions.shape == (3,)
    for _ in range(3):
        _, state = agent.predict(obs, state=state, episode_start=np.zeros(3, bool))
    assert bool((state.recurrent.d != 0).any(dim=1).all())  # every row carries history
    _, state = agent.predict(obs, state=state, episode_start=np.array([False, True, False]))
    d = state.recurrent.d
    assert bool((d[1] == 0).all()) and bool((d[0] != 0).any()) and bool((d[2] != 0).any())
    with pytest.raises(ValueError, match="PredictState"):
        agent.predict(obs[:2], state=state)


def test_evaluate_policy_on_a_raw_vec_env():
    """SB3's evaluate_policy drives Drama.predict with a VecEnv's raw observations, states and episode starts."""
    agent = Drama("CartPole-v1", tiny(), seed=0)
    venv = DummyVecEnv([lambda: Monitor(gym.make("CartPole-v1"))] * 2)
    returns, lengths = evaluate_policy(agent, venv, n_eval_episodes=4, deterministic=True, return_episode_rewards=True)
    assert len(returns) == 4 and returns == [float(n) for n in lengths] and min(lengths) >= 8
    mean, _ = evaluate_policy(agent, Monitor(gym.make("CartPole-v1")), n_eval_episodes=2)
    assert mean >= 8


# ------------------------------------------------------------------------------------------------- callbacks
def test_checkpoint_callback_saves_loadable_agents(tmp_path: Path):
    agent = Drama("CartPole-v1", tiny(), seed=0)
    agent.learn(50, callback=CheckpointCallback(save_freq=20, save_path=str(tmp_path), name_prefix="drama"))
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["drama_20_steps.zip", "drama_40_steps.zip"]
    assert Drama.load(tmp_path / "drama_40_steps.zip").num_timesteps == 40


def test_eval_callback_stops_training_on_a_reward_threshold(tmp_path: Path):
    """Every CartPole episode returns >= 8, so the first evaluation reaches the threshold and training stops."""
    stop = StopTrainingOnRewardThreshold(reward_threshold=5, verbose=0)
    eval_env = Monitor(gym.make("CartPole-v1"))
    callback = EvalCallback(
        eval_env, callback_on_new_best=stop, eval_freq=25, n_eval_episodes=2, best_model_save_path=str(tmp_path / "b")
    )
    agent = Drama("CartPole-v1", tiny(), seed=0, logdir=tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Training and eval env are not of the same type" warning
        agent.learn(500, callback=callback)
    assert agent.num_timesteps == 25
    assert callback.best_mean_reward >= 8
    assert (tmp_path / "b" / "best_model.pt").is_file()  # save() adds .pt to a path without suffix, load() too
    assert Drama.load(tmp_path / "b" / "best_model").num_timesteps == 25
    assert "eval/mean_reward" in scalar_names(tmp_path / "run" / "scalars.csv")  # logged through agent.logger


class _Recorder(BaseCallback):
    """Records what SB3 callbacks read: num_timesteps, locals; stops after ``stop_at`` steps."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at, self.seen, self.events = stop_at, [], []

    def _on_training_start(self) -> None:
        self.events.append(("start", self.locals["total_timesteps"]))

    def _on_step(self) -> bool:
        self.seen.append((self.num_timesteps, self.locals["dones"].shape, len(self.locals["infos"])))
        return self.n_calls < self.stop_at

    def _on_training_end(self) -> None:
        self.events.append(("end", self.num_timesteps))


def test_callback_list_and_plain_callbacks(tmp_path: Path):
    recorder = _Recorder(stop_at=30)
    agent = Drama("CartPole-v1", tiny(), seed=0)
    agent.learn(100, callback=[CheckpointCallback(save_freq=25, save_path=str(tmp_path)), recorder])
    assert agent.num_timesteps == 30
    assert [s[0] for s in recorder.seen] == list(range(1, 31)) and recorder.seen[0][1:] == ((1,), 1)
    assert recorder.events == [("start", 100), ("end", 30)]
    assert (tmp_path / "rl_model_25_steps.zip").is_file()
    calls = []
    agent.learn(10, callback=lambda a: calls.append(a.num_timesteps) or len(calls) < 4)
    assert calls == [31, 32, 33, 34] and agent.num_timesteps == 34
    with pytest.raises(TypeError, match="BaseCallback"):
        agent.learn(1, callback=42)


def test_learn_shows_no_progress_bar_unless_asked(capsys: pytest.CaptureFixture[str]):
    agent = Drama("CartPole-v1", tiny(), seed=0)
    agent.learn(5)
    assert "step" not in capsys.readouterr().err
    agent.learn(5, progress_bar=True)
    assert "warm-up" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- logging
def test_tensorboard_log_gets_a_new_numbered_run_per_learn(tmp_path: Path):
    agent = Drama("CartPole-v1", tiny(log_every=10), seed=0, logdir=tmp_path / "run", tensorboard_log=tmp_path / "tb")
    agent.learn(20, tb_log_name="cart")
    agent.learn(20, tb_log_name="cart")
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["cart_1", "cart_2"]
    assert agent.run_dir == tmp_path / "tb" / "cart_2"
    assert set(scalar_steps(tmp_path / "tb" / "cart_1" / "scalars.csv")) == {10, 20}
    assert set(scalar_steps(tmp_path / "tb" / "cart_2" / "scalars.csv")) == {30, 40}  # never appended to run 1
    assert set(scalar_steps(tmp_path / "run" / "scalars.csv")) == {10, 20, 30, 40}  # the logdir holds the whole run
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb" / "cart_2").iterdir())
    assert not (tmp_path / "tb" / "cart_1" / "checkpoint.pt").exists() and (tmp_path / "run" / "checkpoint.pt").exists()


# ------------------------------------------------------------------------------------------------- env rebuilding
def test_load_and_evaluate_rebuild_an_env_made_with_gym_make(tmp_path: Path):
    agent = Drama(gym.make("CartPole-v1", max_episode_steps=30), tiny(), seed=0)
    assert agent.evaluate(2)["returns"] == pytest.approx([30.0, 30.0], abs=22)  # no env= needed
    path = agent.save(tmp_path / "a.pt")
    state = torch.load(path, weights_only=False)
    state["env_state"] = None  # as for envs whose state cannot be captured
    torch.save(state, path)
    loaded = Drama.load(path)
    assert loaded.env.env.spec.max_episode_steps == 30 and loaded.env_name == "CartPole-v1"
    assert max(loaded.evaluate(2)["returns"]) <= 30


def test_load_without_env_rebuilds_make_atari_envs(tmp_path: Path):
    from drama_wm.envs import make_atari

    agent = Drama(make_atari("Pong", seed=0, max_episode_frames=200), tiny(), seed=0)
    assert agent.env_name == "Pong" and agent.env_recipe == {"make_atari": {"game": "Pong", "max_episode_frames": 200}}
    path = agent.save(tmp_path / "a.pt")
    loaded = Drama.load(path)  # the ALE emulator cannot be pickled: rebuilt from make_atari's arguments
    assert loaded.evaluate(1)["returns"] == [pytest.approx(loaded.evaluate(1)["returns"][0])]


def test_evaluate_asks_for_env_only_when_it_cannot_be_rebuilt():
    class NoSpec(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            return np.zeros(2, np.float32), {}

        def step(self, action):
            return np.zeros(2, np.float32), 1.0, True, False, {}

    agent = Drama(NoSpec(), tiny(), seed=0)
    with pytest.raises(ValueError, match="pass env="):
        agent.evaluate(1)
    assert agent.evaluate(2, env=NoSpec)["returns"] == [1.0, 1.0]


# ------------------------------------------------------------------------------------------------- SingleDreamEnv
def test_single_dream_env_passes_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    agent = Drama("drama_wm/Catch-v0", tiny(), seed=0)
    agent.learn(40)
    single = SingleDreamEnv(agent.world_model, agent.replay, context_length=4, horizon=5)
    assert single.metadata["render_fps"] == SingleDreamEnv.RENDER_FPS and single.render_mode == "rgb_array"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(single)
    messages = [str(w.message) for w in caught]
    # The only warnings left are about the unbounded latent features, which have no bounds to declare.
    assert all("infinity" in m for m in messages), messages
    made = gym.make(single.spec, render_mode=None)
    assert made.unwrapped.render_mode is None and made.reset(seed=0)[0].shape == single.observation_space.shape


# ------------------------------------------------------------------------------------------------- SB3 names
def test_reset_num_timesteps_keeps_training_after_warmup():
    """After a counter reset, each step still updates the world model (no second random warm-up)."""
    agent = Drama("CartPole-v1", tiny(warmup_steps=16), seed=0)
    agent.learn(20)
    before = agent.world_model.state_dict()["prior_head.weight"].clone()
    agent.learn(3, reset_num_timesteps=True)
    assert agent.num_timesteps == 3 and agent._schedule_step == 23
    assert not torch.equal(before, agent.world_model.state_dict()["prior_head.weight"])


def test_set_env_get_env_and_parameters(tmp_path: Path):
    agent = Drama("CartPole-v1", tiny(), seed=0)
    agent.learn(20)
    other = Drama("CartPole-v1", tiny(), seed=1)
    other.set_parameters(agent.get_parameters())
    for name, value in agent.world_model.state_dict().items():
        torch.testing.assert_close(other.world_model.state_dict()[name], value)
    other.set_parameters(agent.save(tmp_path / "a"))  # a checkpoint file works too (".pt" added)
    with pytest.raises(ValueError, match="get_parameters"):
        other.set_parameters({"world_model": {}})
    agent.set_env(gym.make("CartPole-v1", max_episode_steps=7))
    assert agent.get_env().env.spec.max_episode_steps == 7
    agent.learn(20)
    assert max(e["return"] for e in agent.episodes[-2:]) <= 7  # the new env was trained on
    with pytest.raises(ValueError, match="differ from the world model"):
        agent.set_env(gym.make("Acrobot-v1"))
    assert agent.get_env().env.spec.max_episode_steps == 7  # unchanged after the refused env


def test_verbose_prints_log_rows(capsys: pytest.CaptureFixture[str]):
    Drama("CartPole-v1", tiny(log_every=10), seed=0).learn(10)
    assert capsys.readouterr().out == ""
    Drama("CartPole-v1", tiny(log_every=10), seed=0, verbose=1).learn(10)
    assert "step 10:" in capsys.readouterr().out
