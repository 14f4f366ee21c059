"""CUDA correctness: the same model gives the same numbers on the GPU, and every phase runs there.

Skipped (with the reason) on machines without a CUDA GPU, such as CI.
"""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from helpers import assert_drama_learns_cartpole, fill_replay

from drama_wm import DreamEnv, ReplayBuffer, WorldModel, WorldModelConfig
from drama_wm.sequence import Mamba2Config, make

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
IMAGE_SPACE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)


def _tiny_with(kind: str) -> WorldModelConfig:
    """The tiny preset with its backbone as ``kind`` (that kind's defaults at tiny's sizes)."""
    config = WorldModelConfig.tiny()
    return replace(config, backbone=config.backbone.as_kind(kind))


@pytest.mark.parametrize("kind", ["mamba2", "mamba", "gru", "transformer"])
def test_backbone_matches_cpu(kind):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = make(Mamba2Config(d_model=64, n_layers=2, dropout=0.0, d_state=16).as_kind(kind))
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
    assert_drama_learns_cartpole("cuda")


def _twin_dreams(termination: str, backbone: str):
    """A world model, its training batch, and two dreams over equal replay copies: captured graph vs eager."""
    env = gym.make("CartPole-v1")
    model = WorldModel(env.observation_space, env.action_space, _tiny_with(backbone)).cuda()
    replay = fill_replay(env, 300)
    batch = replay.sample(8, 16, "world_model", device="cuda")  # before the copy: sampling moves DFS counters
    twin = ReplayBuffer(env.observation_space, env.action_space, replay.capacity)
    twin.load_state_dict(replay.state_dict())
    kwargs = dict(num_envs=48, context_length=8, horizon=6, array_type="torch", termination=termination, seed=3)
    graph = DreamEnv(model, replay, autoreset_mode=AutoresetMode.SAME_STEP, cuda_graph=True, **kwargs)
    eager = DreamEnv(model, twin, autoreset_mode=AutoresetMode.SAME_STEP, cuda_graph=False, **kwargs)
    return model, batch, graph, eager


@pytest.mark.parametrize(("termination", "backbone"), [("threshold", "mamba2"), ("sample", "gru")])
def test_captured_step_gives_the_eager_dream(termination, backbone):
    """Same seed, same dream, stepped in lockstep: through automatic restarts, a partial reset, an in-place
    world-model update (the graph must read the new weights) and re-allocated weights (it must be captured again)."""
    model, batch, graph, eager = _twin_dreams(termination, backbone)
    assert graph.cuda_graph and not eager.cuda_graph
    torch.testing.assert_close(graph.reset(seed=1)[0], eager.reset(seed=1)[0], rtol=0, atol=0)
    for t in range(30):
        if t == 10:
            model.update(batch)
        if t == 15:
            mask = torch.zeros(48, dtype=torch.bool, device="cuda")
            mask[::5] = True
            reset_obs = [dream.reset(options={"reset_mask": mask})[0] for dream in (graph, eager)]
            torch.testing.assert_close(*reset_obs, rtol=0, atol=0)
        if t == 20:  # new storage and new values: a graph still reading the old storage would be caught
            captured = graph._graph
            for parameter in model.parameters():
                parameter.data = parameter.data * 1.05
        action = torch.randint(0, 2, (48,), device="cuda")
        out_graph, out_eager = graph.step(action), eager.step(action)
        if t == 20:
            assert graph._graph is not captured
        for a, b in zip(out_graph[:4], out_eager[:4], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        info_graph, info_eager = out_graph[4], out_eager[4]
        assert info_graph.keys() == info_eager.keys()
        if info_eager:
            assert torch.equal(info_graph["_final_obs"], info_eager["_final_obs"])


def test_replay_on_the_gpu_and_channels_last_give_the_same_numbers():
    rng = np.random.default_rng(0)
    host = ReplayBuffer(IMAGE_SPACE, gym.spaces.Discrete(6), 64, seed=0)
    gpu = ReplayBuffer(IMAGE_SPACE, gym.spaces.Discrete(6), 64, seed=0, device="cuda")
    frames = rng.integers(0, 256, (80, 64, 64, 3), dtype=np.uint8)
    fields = (rng.integers(0, 6, 80), rng.random(80), rng.random(80) < 0.1, rng.random(80) < 0.1)
    for buffer in (host, gpu):
        buffer.add_batch(frames, *fields)
    a, b = host.sample(5, 8, "imagination", device="cuda"), gpu.sample(5, 8, "imagination", device="cuda")
    for name in ("observation", "action", "reward", "terminated", "first", "start"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name

    torch.backends.cudnn.allow_tf32 = False
    models = [
        WorldModel(IMAGE_SPACE, gym.spaces.Discrete(6), WorldModelConfig.tiny(channels_last=flag)).cuda()
        for flag in (True, False)
    ]
    models[1].load_state_dict(models[0].state_dict())
    with torch.no_grad():
        logits = [m.posterior_logits(b.observation) for m in models]
        frames_out = [m.decoder(torch.eye(64, device="cuda")) for m in models]
    torch.testing.assert_close(*logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(*frames_out, rtol=1e-4, atol=1e-4)
