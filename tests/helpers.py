"""Shared test doubles and helpers (fixtures live in conftest.py): import them as ``from helpers import ...``.

pytest puts tests/ on ``sys.path`` (``pythonpath`` in pyproject.toml), so this module imports from any test.
"""

from __future__ import annotations

import gymnasium as gym
import torch

from drama_wm import RecurrentState, ReplayBuffer, WorldModel
from drama_wm.replay import collect


class CountingWorldModel(WorldModel):
    """A world model whose dream is known exactly: after a (re)start d = 0 and every step adds 1 to every entry of d.

    reward = count + 0.1 * action; sub-env i terminates when its count reaches ``terminate_at[i]``. The count is the
    last entry of the latent observation (features end with d).
    """

    terminate_at: torch.Tensor

    def observe(self, obs, action, first, state=None, sample=True, generator=None):
        features, d, state = super().observe(obs, action, first, state, sample, generator)
        return features, d, RecurrentState(state.backbone, torch.zeros_like(state.d))

    def imagine_step(self, state, z, action, generator=None, uniform=None):
        d = state.d + 1
        count = d[:, 0]
        p_term = (count == self.terminate_at[: len(count)].to(count)).float()
        return RecurrentState(state.backbone, d), z, count + 0.1 * action.float(), p_term


def fill_replay(env: gym.Env, steps: int, seed: int = 0, capacity: int | None = None, policy=None) -> ReplayBuffer:
    """Play ``steps`` real steps (random actions unless ``policy(env)`` is given) into a new buffer."""
    return collect(env, steps, seed, capacity, policy)


def assert_drama_learns_cartpole(device: str, steps: int = 150) -> None:
    """A tiny Drama run on CartPole must learn, not just count: its world model's loss on real data falls to under
    half of the untrained model's on the same batch, its dreams pay CartPole's reward of 1 per step, and its critic
    values real states above the exact 0 it starts at."""
    import copy

    from drama_wm import Drama, DramaConfig

    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0, device=device)
    untrained = copy.deepcopy(agent.world_model)
    agent.learn(steps, progress_bar=False)
    batch = agent.replay.sample(8, 16, "world_model", device=device)
    with torch.no_grad():
        torch.manual_seed(0)
        trained_loss = float(agent.world_model.loss(batch)[0])
        torch.manual_seed(0)
        untrained_loss = float(untrained.loss(batch)[0])
        features = torch.as_tensor(agent._features, device=device)[None]
        value = float(agent.learner.two_hot.mean(agent.learner.critic(features)))
        agent.dream.reset(seed=0)
        actions = torch.zeros(agent.dream.num_envs, dtype=torch.long, device=device)
        imagined = torch.stack([agent.dream.step(actions)[1] for _ in range(agent.dream.horizon)])
    assert trained_loss < 0.5 * untrained_loss, (trained_loss, untrained_loss)
    assert abs(float(imagined.mean()) - 1.0) < 0.1, float(imagined.mean())
    assert value > 0.2, value
