"""Image observations the world model does not take as they are are adapted in one place (drama_wm.observations):
raw ALE frames, AtariPreprocessing's grey frames, FrameStackObservation stacks and 84x84 RGB each train and dream."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm import Drama, DramaConfig
from drama_wm.dreams import dream_frames
from drama_wm.observations import AdaptObservation, observation_adapter

ale_py = pytest.importorskip("ale_py")
gym.register_envs(ale_py)


def raw_pong() -> gym.Env:
    return gym.make("ALE/Pong-v5")  # 210x160x3, frame skip 4 inside ALE


def preprocessed() -> gym.Env:
    return gym.wrappers.AtariPreprocessing(gym.make("ALE/Pong-v5", frameskip=1), frame_skip=4)  # 84x84 grey


def stacked() -> gym.Env:
    return gym.wrappers.FrameStackObservation(preprocessed(), 4)  # 4x84x84


def rgb84() -> gym.Env:
    return gym.wrappers.ResizeObservation(gym.make("ALE/Pong-v5"), (84, 84))  # 84x84x3


def test_adapter_layouts_and_values():
    rng = np.random.default_rng(0)
    raw = observation_adapter(gym.spaces.Box(0, 255, (210, 160, 3), np.uint8), 64)
    assert raw is not None and raw.target_shape == (64, 64, 3)
    const = np.full((210, 160, 3), 7, np.uint8)
    np.testing.assert_array_equal(raw(const), np.full((64, 64, 3), 7, np.uint8))
    grey = observation_adapter(gym.spaces.Box(0, 255, (84, 84), np.uint8), 64)
    assert grey is not None and grey(rng.integers(0, 255, (84, 84), dtype=np.uint8)).shape == (64, 64, 1)
    stack = observation_adapter(gym.spaces.Box(0, 255, (4, 64, 64), np.uint8), 64)
    frames = rng.integers(0, 255, (4, 64, 64), dtype=np.uint8)
    out = stack(frames)
    assert out.shape == (64, 64, 4)
    for k in range(4):  # frame k of the stack is channel k, unchanged at the same size
        np.testing.assert_array_equal(out[..., k], frames[k])
    rgb_stack = observation_adapter(gym.spaces.Box(0, 255, (2, 64, 64, 3), np.uint8), 64)
    rgb_frames = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb_stack(rgb_frames)[..., 3:6], rgb_frames[1])
    assert observation_adapter(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), 64) is None  # already fits
    assert observation_adapter(gym.spaces.Box(-1, 1, (4,), np.float32), 64) is None  # vectors
    assert "resized 84x84 -> 64x64" in observation_adapter(stacked().observation_space, 64).describe()
    with pytest.raises(ValueError, match="expected an observation of shape"):
        raw(np.zeros((84, 84, 3), np.uint8))


@pytest.mark.parametrize(
    ("make", "channels"),
    [(raw_pong, 3), (preprocessed, 1), (stacked, 4), (rgb84, 3)],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_atari_pipelines_train_dream_and_reload(make, channels, tmp_path: Path):
    config = DramaConfig.tiny(warmup_steps=32, world_model_every=4, behaviour_every=8)
    agent = Drama(make(), config, seed=0)
    assert agent.observation_adapter is not None and agent.world_model.observation_space.shape == (64, 64, channels)
    assert isinstance(agent.env.env, AdaptObservation)
    before = agent.world_model.state_dict()["prior_head.weight"].clone()
    agent.learn(72)
    assert not torch.equal(before, agent.world_model.state_dict()["prior_head.weight"])  # it trained
    frames = dream_frames(agent, 1, 4, 4, seed=0)
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8
    raw_obs, _ = make().reset(seed=0)
    action, state = agent.predict(raw_obs, deterministic=True)  # raw observations are adapted the same way
    assert 0 <= int(action) < agent.world_model.n_actions and state.batch_size == 1
    path = agent.save(tmp_path / "agent.pt")
    loaded = Drama.load(path)  # the env is rebuilt from its Gymnasium spec and adapted as in training
    assert loaded.observation_adapter == agent.observation_adapter
    with pytest.raises(ValueError, match="differ from those the agent was built with"):
        loaded.evaluate(1, env=lambda: gym.make("CartPole-v1"))
