"""The Drama driver: bookkeeping of Algorithm 1, every phase on tiny runs, evaluation, checkpoints and resume."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm import Drama, DramaConfig, WorldModelConfig, checkpoint


def test_train_ratio_bookkeeping(tmp_path):
    config = DramaConfig.tiny(warmup_steps=40, world_model_every=2, behaviour_every=5, log_every=20)
    agent = Drama("CartPole-v1", config, seed=0, logdir=tmp_path)
    agent.learn(100, progress_bar=False)
    assert agent.num_timesteps == 100 and len(agent.replay) == 100
    # updates at steps 40, 42, ..., 100 (world model) and 40, 45, ..., 100 (behaviour)
    assert agent.world_model.updates == 31
    assert agent.learner.updates == 13
    assert agent.replay.train_counts.sum() == 31 * config.batch_size
    assert agent.replay.imagine_counts.sum() == 13 * config.actor_critic.num_envs
    rows = (tmp_path / "scalars.csv").read_text().splitlines()
    assert rows[0] == "step,wall_time,name,value"
    names = {r.split(",")[2] for r in rows[1:]}
    assert {"wm/loss", "behaviour/actor_loss", "episode/return", "time/env_seconds"} <= names
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
    assert (tmp_path / "checkpoint.pt").is_file()


def test_replay_holds_the_real_episodes():
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=1)
    agent.learn(70, progress_bar=False)
    batch = agent.replay.sample(1, 70, "world_model")
    first, terminated = batch.first[0].numpy(), batch.terminated[0].numpy()
    assert first[0]
    # every termination is followed by an episode start (CartPole has no life losses)
    assert all(first[i + 1] for i in np.flatnonzero(terminated[:-1]))
    assert len(agent.episodes) == int(terminated.sum())


def test_tiny_atari_run_exercises_every_phase():
    config = DramaConfig.tiny(
        world_model=WorldModelConfig.tiny(), warmup_steps=32, sequence_length=16, batch_size=2, horizon=4
    )
    agent = Drama("Pong", config, seed=0)
    agent.learn(40, progress_bar=False)
    assert agent.world_model.updates == 9 and agent.learner.updates == 9
    assert agent.replay.sample(1, 8, "world_model").observation.shape == (1, 8, 64, 64, 3)
    assert agent.env.observation_space.shape == (config.world_model.feature_dim,)


def _params(agent: Drama) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.world_model.parameters()] + [
        p.detach().clone() for p in agent.learner.actor.parameters()
    ]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    config = DramaConfig.tiny(warmup_steps=30, sequence_length=16)
    straight = Drama("CartPole-v1", config, seed=3)
    straight.learn(90, progress_bar=False)

    first_half = Drama("CartPole-v1", config, seed=3)
    first_half.learn(55, progress_bar=False)
    first_half.save(tmp_path / "ckpt.pt")
    resumed = Drama.load(tmp_path / "ckpt.pt")
    assert resumed.num_timesteps == 55
    resumed.learn(35, progress_bar=False)

    for a, b in zip(_params(straight), _params(resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(straight.replay.train_counts, resumed.replay.train_counts)
    assert [e["return"] for e in straight.episodes] == [e["return"] for e in resumed.episodes]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    checkpoint.atomic_save({"format": "drama_wm", "value": 1}, path)

    def crash(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_save({"format": "drama_wm", "value": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["value"] == 1
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]
    (tmp_path / "other.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a drama_wm checkpoint"):
        checkpoint.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.pt")


class ScriptedGame(gym.Env):
    """Games of two 'lives' of 3 steps each, reward 2 per step: every game returns 12 whatever the policy does."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if getattr(self, "_lives", 0) == 0:
            self._lives, self._total = 2, 0.0
        self._t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self._t += 1
        self._total += 2.0
        terminated = self._t == 3
        info = {"episode_game_over": False}
        if terminated:
            self._lives -= 1
            if self._lives == 0:
                info = {"episode_game_over": True, "game_return": self._total}
        return np.full(3, self._t / 3, np.float32), 2.0, terminated, False, info


def test_evaluate_reports_whole_games():
    agent = Drama(ScriptedGame(), DramaConfig.tiny(), seed=0)
    with pytest.raises(ValueError, match="pass env="):
        agent.evaluate(2)
    result = agent.evaluate(3, env=ScriptedGame)
    assert result["returns"] == [12.0, 12.0, 12.0] and result["mean"] == 12.0 and result["std"] == 0.0


def test_predict_validates_features():
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0)
    features = np.zeros((5, agent.world_model.config.feature_dim), np.float32)
    actions, state = agent.predict(features, deterministic=True)
    assert actions.shape == (5,) and state is None
    single, _ = agent.predict(features[0])
    assert np.ndim(single) == 0
    with pytest.raises(ValueError, match="LatentObservation"):
        agent.predict(np.zeros(4, np.float32))


def test_bad_arguments():
    with pytest.raises(ValueError, match="warmup_steps"):
        DramaConfig.tiny(warmup_steps=4)
    with pytest.raises(ValueError, match="unknown learner"):
        Drama("CartPole-v1", DramaConfig.tiny(), learner="dqn")
    with pytest.raises(TypeError, match="BehaviourLearner"):
        Drama("CartPole-v1", DramaConfig.tiny(), learner=object())
    with pytest.raises(ValueError, match=r"(?i)did you mean|unknown"):
        Drama("Pongg", DramaConfig.tiny())
    with pytest.raises(TypeError, match="Discrete"):
        Drama("MountainCarContinuous-v0", DramaConfig.tiny())


def test_load_rejects_foreign_files(tmp_path: Path):
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a drama_wm checkpoint"):
        Drama.load(tmp_path / "x.pt")
