"""The Drama driver: bookkeeping of Algorithm 1, every phase on tiny runs, evaluation, checkpoints and resume."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import assert_drama_learns_cartpole

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
    assert agent.replay.imagine_counts.sum() == 13 * config.learner.num_envs
    rows = (tmp_path / "scalars.csv").read_text().splitlines()
    assert rows[0] == "step,wall_time,name,value"
    names = {r.split(",")[2] for r in rows[1:]}
    assert {"wm/loss", "behaviour/actor_loss", "episode/return", "time/env_seconds"} <= names
    # Each row of episode/return is the mean return of the real episodes that ended within its log window.
    logged = {int(r.split(",")[0]): float(r.split(",")[3]) for r in rows[1:] if r.split(",")[2] == "episode/return"}
    for step, value in logged.items():
        window = [e["return"] for e in agent.episodes if step - config.log_every < e["step"] <= step]
        assert value == pytest.approx(np.mean(window))
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
    assert (tmp_path / "checkpoint.pt").is_file()


class _AlternatingEndsEnv(gym.Env):
    """Episodes alternate: 20 steps ending in a termination, then 10 ending in a truncation (a time limit)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.episode, self.t = -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        terminating = self.episode % 2 == 0
        end = self.t == (20 if terminating else 10)
        return np.full(4, self.t / 20, np.float32), 1.0, end and terminating, end and not terminating, {}


def test_termination_rate_and_episode_length_per_log_window(tmp_path):
    """Terminations at steps 20, 50, 80 and truncations at 30, 60, 90, windows of 20 steps: the rate counts
    terminations only, in the window of the step that received them; lengths are the episodes' own."""
    config = DramaConfig.tiny(warmup_steps=100, log_every=20)  # no updates: only the bookkeeping runs
    agent = Drama(_AlternatingEndsEnv(), config, seed=0, logdir=tmp_path)
    agent.learn(100, progress_bar=False)
    rows = [r.split(",") for r in (tmp_path / "scalars.csv").read_text().splitlines()[1:]]
    logged = {(int(step), name): float(value) for step, _, name, value in rows}
    rates = [logged[(step, "env/termination_rate")] for step in (20, 40, 60, 80, 100)]
    assert rates == pytest.approx([1 / 20, 0, 1 / 20, 1 / 20, 0])
    lengths = [logged.get((step, "episode/length")) for step in (20, 40, 60, 80, 100)]
    assert lengths == [20, 10, 15, 20, 10]  # (50: 20, 60: 10) share the third window
    assert [e["length"] for e in agent.episodes] == [20, 10, 20, 10, 20, 10]


def test_drama_learns_on_the_cpu():
    assert_drama_learns_cartpole("cpu")


def test_progress_bar_times_training_steps_apart_from_the_warm_up(capsys):
    agent = Drama("CartPole-v1", DramaConfig.tiny(warmup_steps=64), seed=0)
    agent.learn(70, progress_bar=True)
    agent.learn(5, progress_bar=True)
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any(line.startswith("warm-up: 100%") and "64/64" in line for line in lines)
    # the training phase counts (and rates) only its own steps, and a later learn() is all training
    assert any(line.startswith("train: 100%") and " 6/6 " in line for line in lines)
    assert any(line.startswith("train: 100%") and " 5/5 " in line for line in lines)


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


def _run_until_life_loss(life_loss_resets: bool) -> tuple[Drama, int]:
    """Random warm-up steps of tiny-model Breakout (seed 0) until the first life loss; its replay row."""
    config = DramaConfig.tiny(warmup_steps=1000, life_loss_resets=life_loss_resets)
    agent = Drama("Breakout", config, seed=0)
    seen: list[int] = []

    def until_life_loss(a: Drama) -> bool:
        if a.replay.field("terminated")[a.num_timesteps - 1]:
            seen.append(a.num_timesteps - 1)
        return len(seen) == 0 or a.num_timesteps < seen[0] + 3

    agent.learn(300, callback=until_life_loss, progress_bar=False)
    assert seen, "no life loss within 300 random Breakout steps"
    return agent, seen[0]


def test_a_life_loss_is_a_termination_flag_and_the_game_and_state_go_on():
    """The authors' behaviour (default): the row of the life loss is terminated, the next row continues the same
    episode (first=False), the recurrent state is kept (features after the continuing reset hold d != 0) and no
    game has ended."""
    agent, row = _run_until_life_loss(life_loss_resets=False)
    terminated, first = agent.replay.field("terminated"), agent.replay.field("first")
    assert terminated[row] and not first[row + 1]
    np.testing.assert_array_equal(np.flatnonzero(first), [0])  # one episode: the game
    assert agent.episodes == []
    d_after = agent.env.carry.state.d
    assert not agent.env.episode_start and float(d_after.abs().sum()) > 0

    resets, row = _run_until_life_loss(life_loss_resets=True)
    assert resets.replay.field("terminated")[row] and resets.replay.field("first")[row + 1]
    assert resets.episodes == []


def test_latent_observation_keeps_its_state_through_a_life_loss_reset():
    """Stepping through a life-loss reset gives exactly the features of a twin that never called reset()."""
    from drama_wm import LatentObservation, WorldModel
    from drama_wm.envs import make_atari

    env, twin_env = make_atari("Breakout", seed=0), make_atari("Breakout", seed=0)
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    wrapped, twin = LatentObservation(env, model), LatentObservation(twin_env, model)
    a, _ = wrapped.reset(seed=0)
    b, _ = twin.reset(seed=0)
    rng, lost = np.random.default_rng(0), 0
    for _ in range(300):
        action = int(rng.integers(env.action_space.n))
        a, _, terminated, _, info = wrapped.step(action)
        b, *_ = twin.step(action)
        np.testing.assert_array_equal(a, b)
        if info["life_loss"]:
            assert terminated
            continued, reset_info = wrapped.reset()
            assert reset_info["life_loss_reset"] and not wrapped.episode_start
            np.testing.assert_array_equal(continued, a)
            lost += 1
            if lost == 2:
                break
    assert lost == 2
    fresh = LatentObservation(make_atari("Breakout", seed=0), model, continue_on_life_loss=False)
    fresh.reset(seed=0)
    while not fresh.step(int(rng.integers(4)))[4]["life_loss"]:
        pass
    features, _ = fresh.reset()
    assert fresh.episode_start and not features[model.config.latent_dim :].any()  # d_{-1} = 0: a new episode


def test_resume_without_the_replay_collects_with_the_policy_then_trains(tmp_path):
    config = DramaConfig.tiny(warmup_steps=30, sequence_length=16, checkpoint_replay=False)
    agent = Drama("CartPole-v1", config, seed=2)
    agent.learn(40, progress_bar=False)
    agent.save(tmp_path / "ckpt.pt")
    resumed = Drama.load(tmp_path / "ckpt.pt")
    assert len(resumed.replay) == 0 and resumed.world_model.updates == agent.world_model.updates
    steps_to_ready = []

    def watch(a: Drama) -> None:
        if not steps_to_ready and a.world_model.updates > agent.world_model.updates:
            steps_to_ready.append(len(a.replay))

    resumed.learn(60, callback=watch, progress_bar=False)
    # The first update comes as soon as 4 distinct 16-step windows (and 16 imagination contexts) exist.
    assert steps_to_ready and 19 <= steps_to_ready[0] <= 40
    assert resumed.world_model.updates == agent.world_model.updates + 60 - steps_to_ready[0] + 1
    assert resumed.learner.updates == agent.learner.updates + 60 - steps_to_ready[0] + 1


def test_a_new_env_on_load_starts_its_episode_return_at_zero(tmp_path):
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0)
    agent.learn(5, progress_bar=False)  # mid-episode: CartPole's first episode lasts longer than 5 random steps
    assert agent.progress.games.current_return == 5.0
    agent.save(tmp_path / "ckpt.pt")
    continued = Drama.load(tmp_path / "ckpt.pt")  # the rebuilt env's state is restored: the episode continues
    assert continued.progress.games.current_return == 5.0 and continued._features is not None
    fresh = Drama.load(tmp_path / "ckpt.pt", env=gym.make("CartPole-v1"))
    assert fresh.progress.games.current_return == 0.0 and fresh._features is None


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
    checkpoint.save({"value": 1}, path)

    def crash(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"value": 2}, path)
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


def test_predict_features_validates_shapes():
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0)
    features = np.zeros((5, agent.world_model.config.feature_dim), np.float32)
    actions = agent.predict_features(features, deterministic=True)
    assert actions.shape == (5,)
    assert np.ndim(agent.predict_features(features[0])) == 0
    with pytest.raises(ValueError, match="call predict"):
        agent.predict_features(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="predict_features"):
        agent.predict(features)


def test_bad_arguments():
    with pytest.raises(ValueError, match="warmup_steps"):
        DramaConfig.tiny(warmup_steps=4)
    with pytest.raises(TypeError, match=r"chosen by DramaConfig\.learner"):
        Drama("CartPole-v1", DramaConfig.tiny(), learner="dqn")
    with pytest.raises(TypeError, match="BehaviourLearner"):
        Drama("CartPole-v1", DramaConfig.tiny(), learner=object())
    with pytest.raises(ValueError, match=r"(?i)did you mean|unknown"):
        Drama("Pongg", DramaConfig.tiny())
    with pytest.raises(TypeError, match="Discrete"):
        Drama("MountainCarContinuous-v0", DramaConfig.tiny())


def test_dream_termination_reaches_the_dream_and_bad_values_are_named() -> None:
    assert Drama("CartPole-v1", DramaConfig.tiny(), seed=0).dream.termination == "threshold"  # the authors' choice
    agent = Drama("CartPole-v1", DramaConfig.tiny(dream_termination="sample"), seed=0)
    assert agent.dream.termination == "sample"
    with pytest.raises(ValueError, match=r"dream_termination must be one of threshold, sample, got 'soft'"):
        DramaConfig.tiny(dream_termination="soft")
    # a learner whose dream_options ask for the other mode is an error, not silently overridden either way
    learner = DramaConfig.tiny().learner.make()
    learner.dream_options = {**learner.dream_options, "termination": "sample"}
    with pytest.raises(ValueError, match=r"ask for termination='sample' but DramaConfig.dream_termination is "):
        Drama("CartPole-v1", DramaConfig.tiny(), learner=learner)


def test_a_checkpoint_from_before_dream_termination_keeps_its_learners_choice(tmp_path: Path) -> None:
    """Before the config field existed, a learner's dream_options alone chose the termination: such a checkpoint
    (its config without the field) loads with that learner and keeps drawing."""
    def sampling_learner():
        learner = DramaConfig.tiny().learner.make()
        learner.dream_options = {**learner.dream_options, "termination": "sample"}
        return learner

    agent = Drama("CartPole-v1", DramaConfig.tiny(dream_termination="sample"), learner=sampling_learner(), seed=0)
    path = agent.save(tmp_path / "agent.pt")
    payload = checkpoint.load(path)
    del payload["meta"]["config"]["dream_termination"]  # as written by drama_wm before the field
    checkpoint.save(payload, path)
    loaded = Drama.load(path, device="cpu", learner=sampling_learner())
    assert loaded.config.dream_termination == loaded.dream.termination == "sample"
    assert Drama.load(path, device="cpu").dream.termination == "threshold"  # the built-in learner: the default


def test_load_rejects_foreign_files(tmp_path: Path):
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a drama_wm checkpoint"):
        Drama.load(tmp_path / "x.pt")
