"""drama_wm.env_state: real envs' state as plain data, so a resumed run continues the interrupted episode exactly."""

from __future__ import annotations

import io
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm import env_state
from drama_wm.driver import Drama, DramaConfig
from drama_wm.envs import make_atari


def play(env: gym.Env, actions: np.ndarray) -> list[tuple[Any, ...]]:
    """Every step's (observation, reward, terminated, truncated, info), resetting after an episode ends."""
    out = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action))
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            out.append(env.reset())
    return out


def assert_same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(x[0], y[0], err_msg=f"observation {t}")
        assert x[1:] == y[1:], t


def plain_roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """The state through torch.save and torch.load(weights_only=True), which builds no objects but tensors and the
    numpy arrays and dtypes allowed here."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    core = getattr(np, "_core", None) or np.core
    dtypes = [t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    with torch.serialization.safe_globals([core.multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]):
        return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(
    ("make", "before", "after"),
    [
        (lambda: gym.make("CartPole-v1"), 230, 300),  # several episodes: TimeLimit and the reset RNG matter
        (lambda: gym.make("Acrobot-v1"), 30, 60),
        (lambda: make_atari("Breakout"), 150, 150),  # life losses: LifeLossTermination's continued games
        (lambda: make_atari("Pong"), 60, 100),
    ],
    ids=["cartpole", "acrobot", "breakout", "pong"],
)
def test_a_restored_env_sees_the_same_frames_as_the_one_that_never_stopped(make, before, after):
    original = make()
    actions = np.random.default_rng(0).integers(original.action_space.n, size=before + after)
    original.reset(seed=5)
    play(original, actions[:before])
    state = env_state.capture(original)
    assert state is not None
    restored = make()  # built from scratch, as Drama.load rebuilds it from the checkpoint's recipe
    env_state.restore(restored, plain_roundtrip(state))
    assert_same(play(original, actions[before:]), play(restored, actions[before:]))


def test_right_after_a_seeded_reset_the_state_is_captured_too():
    """ALE's reset info holds numpy seeds (in LifeLossTermination's and PassiveEnvChecker's copies): kept as ints."""
    original = make_atari("Pong")
    original.reset(seed=3)
    state = env_state.capture(original)
    assert state is not None
    restored = make_atari("Pong")
    env_state.restore(restored, plain_roundtrip(state))
    actions = np.random.default_rng(0).integers(6, size=30)
    assert_same(play(original, actions), play(restored, actions))


def test_sticky_action_games_are_not_captured():
    """ALE's state lacks the last applied action that sticky actions repeat: no exact snapshot, so None."""
    env = make_atari("Pong", repeat_action_probability=0.25)
    env.reset(seed=5)
    env.step(3)
    assert env_state.capture(env) is None


def test_envs_it_cannot_capture_exactly_give_none_and_bad_restores_are_clear():
    class Custom(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

    assert env_state.capture(Custom()) is None
    assert env_state.capture(gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))) is None  # unknown wrapper
    state = env_state.capture(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"captured from the wrapper stack .*CartPoleEnv.* but this env is"):
        env_state.restore(gym.make("Acrobot-v1"), state)
    with pytest.raises(ValueError, match="expected an env state of version 1"):
        env_state.restore(gym.make("CartPole-v1"), {"layers": []})


def test_register_handles_another_env_type():
    class Counter(gym.Env):
        observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def __init__(self) -> None:
            self.count = 0

        def step(self, action: int):
            self.count += 1
            return np.array([self.count], np.float32), 0.0, False, False, {}

    env_state.register(Counter, lambda env: {"count": env.count}, lambda env, s: setattr(env, "count", s["count"]))
    a = Counter()
    a.step(0)
    b = Counter()
    env_state.restore(b, env_state.capture(a))
    assert b.count == 1
    with pytest.raises(TypeError, match="register needs a class"):
        env_state.register("Counter", lambda env: {}, lambda env, s: None)  # type: ignore[arg-type]


def test_a_loaded_atari_agent_continues_the_same_game(tmp_path):
    """Drama.save/load: the env rebuilt from make_atari's arguments continues the interrupted game, frame for
    frame, and the agent's carried observation and episode return go on with it."""
    config = DramaConfig.tiny(warmup_steps=200)
    agent = Drama(make_atari("Breakout", seed=3), config, seed=3, device="cpu")
    agent.learn(40)  # random warm-up actions, inside the first game
    agent.save(tmp_path / "a.pt")
    loaded = Drama.load(tmp_path / "a.pt", device="cpu")
    np.testing.assert_array_equal(loaded.env.raw_observation, agent.env.raw_observation)
    assert loaded.progress.games.current_return == agent.progress.games.current_return and loaded._features is not None
    np.testing.assert_array_equal(loaded._features, agent._features)
    actions = np.random.default_rng(2).integers(4, size=120)
    assert_same(play(agent._real_env, actions), play(loaded._real_env, actions))
