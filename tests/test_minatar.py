"""MinAtar (issue 15): all five games with Drama (grid encoder), in DreamEnv, and with the SB3 learner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("minatar")

from drama_wm import Drama, DramaConfig
from drama_wm.envs.minatar import MINATAR_GAMES, make_minatar, make_minatar_vector
from drama_wm.grid import GridMLPEncoder

CHANNELS = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}


@pytest.mark.parametrize("game", MINATAR_GAMES)
def test_every_game_trains_and_dreams_with_the_tiny_preset(game: str) -> None:
    agent = Drama(f"MinAtar/{game}-v1", DramaConfig.tiny(), seed=0, device="cpu")
    assert agent.world_model.observation_space.shape == (10, 10, CHANNELS[game])
    assert isinstance(agent.world_model.encoder, GridMLPEncoder)  # the measured choice (BENCHMARKS.md)
    agent.learn(200, progress_bar=False)
    assert agent.num_timesteps == 200 and agent.world_model.updates == 200 - agent.config.warmup_steps + 1
    # the stored frames are exactly MinAtar's grid, cells 0 / 255
    frames = agent.replay.sample(2, 4, "world_model").observation
    assert set(torch.unique(frames).tolist()) <= {0, 255}
    dream = agent.dream
    obs, _ = dream.reset(seed=0)
    obs, reward, terminated, truncated, _ = dream.step(np.zeros(dream.num_envs, dtype=np.int64))
    assert obs.shape == (dream.num_envs, agent.world_model.config.feature_dim) and np.isfinite(reward).all()
    decoded = agent.world_model.decode(agent.world_model.encode(frames[0]))
    assert decoded.shape == frames[0].shape and decoded.dtype == torch.uint8


def test_grid_frames_match_minatar_and_baseline_vectors() -> None:
    drama_env, vector_env = make_minatar("MinAtar/Breakout-v1"), make_minatar_vector("MinAtar/Breakout-v1")
    frame, _ = drama_env.reset(seed=3)
    vector, _ = vector_env.reset(seed=3)
    assert frame.dtype == np.uint8 and vector.dtype == np.float32 and vector.shape == (400,)
    np.testing.assert_array_equal(frame.reshape(-1) // 255, vector)
    assert frame.any()  # the game has lit cells (paddle, bricks, ball)


def test_unknown_minatar_id_names_the_games() -> None:
    with pytest.raises(ValueError, match="MinAtar/Breakout-v1"):
        make_minatar("MinAtar/Pong-v1")


def test_sb3_learner_learns_a_minatar_game_in_the_dream() -> None:
    pytest.importorskip("stable_baselines3")
    from drama_wm.integrations.sb3 import SB3Learner

    learner = SB3Learner.ppo(num_envs=4, batch_size=8, n_epochs=1)
    agent = Drama("MinAtar/Freeway-v1", DramaConfig.tiny(), learner=learner, seed=0, device="cpu")
    agent.learn(100, progress_bar=False)
    assert agent.num_timesteps == 100 and agent.world_model.updates == 100 - agent.config.warmup_steps + 1
    features = agent.env.reset(seed=0)[0]
    action = agent.predict_features(features, deterministic=True)
    assert 0 <= int(action) < 3
