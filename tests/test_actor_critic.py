"""The built-in actor-critic: return computation on hand-made numbers, learning direction, state round trip."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import CountingWorldModel, fill_replay

from drama_wm import ActorCritic, ActorCriticConfig, DreamEnv, RecurrentState, WorldModel, WorldModelConfig
from drama_wm.learners.actor_critic import lambda_returns


def test_lambda_returns_by_hand():
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[0.5], [1.0], [2.0], [4.0]])
    cont = torch.tensor([[1.0], [0.0], [1.0]])
    # R2 = 3 + .9 * (.5 * 4 + .5 * 4) = 6.6; R1 = 2 (terminated); R0 = 1 + .9 * (.5 * 1 + .5 * 2) = 2.35
    out = lambda_returns(reward, value, cont, gamma=0.9, lambda_=0.5)
    torch.testing.assert_close(out, torch.tensor([[2.35], [2.0], [6.6]]))


def test_lambda_zero_is_one_step_td_and_lambda_one_is_monte_carlo():
    g = torch.Generator().manual_seed(0)
    reward, value = torch.rand(5, 3, generator=g), torch.rand(6, 3, generator=g)
    cont = torch.ones(5, 3)
    torch.testing.assert_close(lambda_returns(reward, value, cont, 0.9, 0.0), reward + 0.9 * value[1:])
    discounts = 0.9 ** torch.arange(5.0)
    mc0 = (discounts[:, None] * reward).sum(0) + 0.9**5 * value[-1]
    torch.testing.assert_close(lambda_returns(reward, value, cont, 0.9, 1.0)[0], mc0)


def test_lambda_returns_shape_errors():
    with pytest.raises(ValueError, match="value"):
        lambda_returns(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), 0.9, 0.9)


class BanditWorldModel(WorldModel):
    """Dream where action 1 pays 1 and action 0 pays 0, forever (no terminations)."""

    def imagine_step(self, state, z, action, generator=None, uniform=None):
        return RecurrentState(state.backbone, state.d), z, (action == 1).float(), torch.zeros(len(action))


def _bandit_dream(num_envs=64):
    env = gym.make("CartPole-v1")
    model = BanditWorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    learner = ActorCritic(ActorCriticConfig.tiny(num_envs=num_envs, lr=1e-3))
    dream = DreamEnv(model, fill_replay(env, 200), context_length=4, horizon=8, seed=0, **learner.dream_options)
    learner.bind(dream)
    return learner, dream


def test_actor_critic_learns_the_rewarded_action():
    learner, dream = _bandit_dream()
    obs, _ = dream.reset(seed=1)
    p_rewarded = lambda: float(torch.softmax(learner.actor(obs).detach(), -1)[:, 1].mean())  # noqa: E731
    initial = p_rewarded()
    assert abs(initial - 0.5) < 1e-6  # zero-initialised output layer: uniform policy
    for _ in range(60):
        metrics = learner.learn()
    final = p_rewarded()
    assert final > 0.9
    assert metrics["behaviour/value"] > 1.0  # the critic learned that rewards arrive
    assert (learner.act(obs.numpy(), deterministic=True) == 1).all()


def test_return_scale_ema_starts_at_zero():
    """S starts at 0 (DreamerV3, STORM): after one update S = 0.01 x the 5-95 percentile spread of the returns,
    which the max(1, S) floor then keeps out of the advantage."""
    learner, dream = _bandit_dream(num_envs=8)
    assert float(learner.return_scale) == 0.0
    learner.learn()
    spread = float(learner.return_scale) / (1 - learner.config.return_scale_decay)
    assert 0.0 < spread < 16.0  # 8 steps of reward <= 1 with gamma 0.985: returns lie in [0, 8)
    assert float(learner.return_scale) < 0.2  # starting at 1.0 it would be above 0.99


def test_imagined_termination_rate_counts_only_dreams_not_yet_ended():
    """Counting dreams of 4 steps: sub-envs 0 and 2 end at their 2nd and 3rd step, 1 and 3 never. Alive steps:
    2 + 4 + 3 + 4 = 13 with 2 terminations, so the rate is 2 / 13; the plain mean over all 16 steps is 2 / 16."""
    env = gym.make("CartPole-v1")
    model = CountingWorldModel(env.observation_space, env.action_space, WorldModelConfig.tiny())
    model.terminate_at = torch.tensor([2.0, 100.0, 3.0, 100.0])
    learner = ActorCritic(ActorCriticConfig.tiny(num_envs=4))
    dream = DreamEnv(model, fill_replay(env, 60), context_length=4, horizon=4, seed=0, **learner.dream_options)
    learner.bind(dream)
    metrics = learner.learn()
    assert metrics["behaviour/imagined_termination_rate"] == pytest.approx(2 / 13)
    assert metrics["behaviour/imagined_termination"] == pytest.approx(2 / 16)


def test_state_round_trip_and_errors():
    learner, dream = _bandit_dream(num_envs=8)
    learner.learn()
    other = ActorCritic(ActorCriticConfig.tiny(num_envs=8, lr=1e-3))
    with pytest.raises(RuntimeError, match="bind"):
        other.act(np.zeros((1, 4), np.float32))
    other.bind(dream)
    other.load_state_dict(learner.state_dict())
    obs, _ = dream.reset(seed=0)
    for a, b in zip(learner.actor.parameters(), other.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(learner.act(obs, deterministic=True), other.act(obs, deterministic=True))
    wrong = ActorCritic(ActorCriticConfig.tiny(num_envs=8, lr=5e-4))
    wrong.bind(dream)
    with pytest.raises(ValueError, match="different ActorCriticConfig"):
        wrong.load_state_dict(learner.state_dict())
    numpy_dream = DreamEnv(dream.world_model, dream.replay, num_envs=8, context_length=4)
    with pytest.raises(ValueError, match="torch arrays"):
        ActorCritic().bind(numpy_dream)
