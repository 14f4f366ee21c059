"""Bad data from the world: envs whose observations or rewards are NaN, infinite, of the wrong dtype or shape stop
training with an EnvDataError naming the real step and the field, and never reach the replay or the weights."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm import Drama, DramaConfig
from drama_wm.env_checks import CheckEnvData, EnvDataError, observation_problem, reward_problem


class FaultyEnv(gym.Env):
    """Episodes of 20 steps with smooth finite observations and reward 1, except at real step ``at`` (counted over
    the env's life, 1-based), where ``fault`` breaks one field. ``fault="reset"`` breaks the first reset instead."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, fault: str, at: int = 0, image: bool = False) -> None:
        self.fault, self.at, self.image = fault, at, image
        if image:
            self.observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.steps = 0
        self._t = 0

    def _obs(self) -> np.ndarray:
        if self.image:
            return np.full((16, 16, 3), 10 * (self._t % 20), np.uint8)
        return np.array([np.sin(self._t), np.cos(self._t), self._t / 20, 1.0], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        obs = self._obs()
        if self.fault == "reset":
            obs[0] = np.nan
        return obs, {}

    def step(self, action):
        self.steps += 1
        self._t += 1
        obs, reward = self._obs(), 1.0
        if self.steps == self.at:
            if self.fault == "nan_obs":
                obs[2] = np.nan
            elif self.fault == "inf_reward":
                reward = float("inf")
            elif self.fault == "float64_obs":
                obs = obs.astype(np.float64)
            elif self.fault == "wrong_shape":
                obs = obs[:, :15]
            elif self.fault == "array_reward":
                reward = np.array([1.0])
        return obs, reward, False, self._t == 20, {}


def _weights(agent: Drama) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.world_model.parameters()]


@pytest.mark.parametrize(
    ("fault", "image", "field", "expected"),
    [
        ("nan_obs", False, "observation", r"expected finite values, got nan at index \(2,\)"),
        ("inf_reward", False, "reward", "expected a finite number, got inf"),
        ("float64_obs", False, "observation", "expected dtype float32 .*, got float64"),
        ("wrong_shape", True, "observation", r"expected shape \(16, 16, 3\) .*, got shape \(16, 15, 3\)"),
        ("array_reward", False, "reward", r"expected a single number, got a float64 array of shape \(1,\)"),
    ],
)
def test_bad_data_after_training_started_stops_at_that_step_and_leaves_the_weights(fault, image, field, expected):
    config = DramaConfig.tiny(warmup_steps=32, world_model_every=2, behaviour_every=4)
    at = 45  # 13 steps after the warm-up: the world model and the learner have updated several times
    agent = Drama(FaultyEnv(fault, at, image), config, seed=0)
    before: dict[str, list[torch.Tensor]] = {}

    def snapshot(a: Drama) -> None:
        if a.num_timesteps == at - 1:
            before["weights"] = _weights(a)

    with pytest.raises(EnvDataError, match=rf"bad {field} at real step {at}: {expected}") as caught:
        agent.learn(100, callback=snapshot)
    assert caught.value.field == field and caught.value.step == at
    assert agent.world_model.updates > 0 and agent.num_timesteps == at - 1 and len(agent.replay) == at - 1
    after = _weights(agent)
    assert all(torch.isfinite(p).all() for p in after)
    assert all(torch.equal(a, b) for a, b in zip(after, before["weights"], strict=True))


def test_step_numbers_count_from_the_agents_timesteps_across_learn_calls():
    agent = Drama(FaultyEnv("nan_obs", at=30), DramaConfig.tiny(), seed=0)
    agent.learn(20)
    with pytest.raises(EnvDataError, match="bad observation at real step 30: "):
        agent.learn(20)


def test_bad_reset_observation_names_the_reset_and_the_next_step():
    agent = Drama(FaultyEnv("reset"), DramaConfig.tiny(), seed=0)
    with pytest.raises(EnvDataError, match=r"reset\(\) before real step 1 returned a bad observation: expected finite"):
        agent.learn(5)
    assert len(agent.replay) == 0


def test_evaluation_checks_its_env_too():
    agent = Drama(FaultyEnv("inf_reward", at=0), DramaConfig.tiny(), seed=0)
    with pytest.raises(EnvDataError, match="bad reward at evaluation step 3: expected a finite number, got inf"):
        agent.evaluate(1, env=lambda: FaultyEnv("inf_reward", at=3))


def test_good_data_passes_unchanged_and_int_rewards_are_fine():
    space = gym.spaces.Box(0, 255, (84, 84, 3), np.uint8)
    frame = space.sample()
    assert observation_problem(frame, space) is None
    for reward in (1, 0.5, True, np.float32(-2), np.int64(3), np.array(1.5)):
        assert reward_problem(reward) is None, reward
    env = CheckEnvData(gym.make("CartPole-v1"))
    obs, _ = env.reset(seed=0)
    reference = gym.make("CartPole-v1")
    expected, _ = reference.reset(seed=0)
    np.testing.assert_array_equal(obs, expected)
    got, want = env.step(1), reference.step(1)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:4] == want[1:4]


@pytest.mark.parametrize(
    ("obs", "expected"),
    [
        ([0.0, 0.0, 0.0, 0.0], "expected a numpy array of dtype float32 and shape (4,), got list [0.0, 0.0, 0.0, 0.0]"),
        (np.array([0, 0, np.inf, -np.inf], np.float32), "got inf at index (2,) (2 of 4 entries are NaN or infinite)"),
    ],
)
def test_observation_problems_say_what_was_expected_and_what_came(obs, expected):
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    assert expected in observation_problem(obs, space)
    assert reward_problem("1") == "expected a number (int or float), got str '1'"
    assert reward_problem(float("nan")) == "expected a finite number, got nan"
