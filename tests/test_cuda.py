"""CUDA correctness: the same model gives the same numbers on the GPU, and every phase runs there.

Skipped (with the reason) on machines without a CUDA GPU, such as CI.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import fill_replay

from drama_wm import Drama, DramaConfig, DreamEnv, WorldModel, WorldModelConfig
from drama_wm.sequence import make

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
IMAGE_SPACE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)


@pytest.mark.parametrize("kind", ["mamba2", "mamba", "gru", "transformer"])
def test_backbone_matches_cpu(kind):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = make(kind, d_model=64, n_layers=2, d_state=16)
    x = torch.randn(3, 300, 64)
    first = torch.zeros(3, 300, dtype=torch.bool)
    first[1, 150] = True
    y_cpu, _ = model(x, first=first)
    y_gpu, _ = model.cuda()(x.cuda(), first=first.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=2e-4, rtol=2e-4)


def test_world_model_features_match_cpu_and_update_runs_in_bf16():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = WorldModel(IMAGE_SPACE, gym.spaces.Discrete(6), WorldModelConfig.xs())
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (2, 20, 64, 64, 3), generator=g, dtype=torch.uint8)
    action = torch.randint(0, 6, (2, 20), generator=g)
    first = torch.zeros(2, 20, dtype=torch.bool)
    first[:, 0] = True
    with torch.no_grad():
        cpu, _, _ = model.observe(obs, action, first, sample=False)
        model.cuda()
        gpu, _, _ = model.observe(obs.cuda(), action.cuda(), first.cuda(), sample=False)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)

    class Batch:
        pass

    batch = Batch()
    batch.observation, batch.action, batch.first = obs.cuda(), action.cuda(), first.cuda()
    batch.reward, batch.terminated = (
        torch.zeros(2, 20, device="cuda"),
        torch.zeros(2, 20, dtype=torch.bool, device="cuda"),
    )
    metrics = model.update(batch)
    assert metrics["wm/skipped_update"] == 0.0 and np.isfinite(metrics["wm/loss"])


def test_dream_runs_on_the_gpu():
    env = gym.make("CartPole-v1")
    model = WorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny()).cuda()
    dream = DreamEnv(model, fill_replay(env, 100), num_envs=32, context_length=8, horizon=5, array_type="torch")
    obs, _ = dream.reset(seed=0)
    assert obs.device.type == "cuda"
    for _ in range(6):
        obs, reward, terminated, truncated, _ = dream.step(torch.zeros(32, dtype=torch.long, device="cuda"))
        assert torch.isfinite(obs).all() and reward.device.type == "cuda"


def test_drama_learns_on_cuda():
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0, device="cuda")
    agent.learn(100, progress_bar=False)
    assert agent.world_model.updates == 37 and agent.learner.updates == 37
