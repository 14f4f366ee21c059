"""Tests for drama_wm.envs: Atari 100k protocol, reference scores, the paper's grid world, and Catch."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from drama_wm.envs import (
    ATARI_100K_GAMES,
    ATARI_100K_SCORES,
    Catch,
    GridWorld,
    grid_error,
    human_normalized_score,
    make_atari,
    make_sequence_dataset,
    tokenize_trajectory,
    untokenize_trajectory,
)
from drama_wm.envs.atari import LifeLossTermination, MaxPoolSkip, _env_name, _rom_id
from drama_wm.envs.gridworld import AGENT, EAST, FLOOR, GOAL, NORTH, PALETTE, SOUTH, STAY, WALL, WEST

# ---------------------------------------------------------------------------------------------------------------
# Scripted fake env for the wrappers: frame k is filled with a known pattern, rewards and lives are scripted.


class ScriptedEnv(gym.Env):
    """Frame k (k = 1, 2, ... per step; 0 at reset) is a 2x2x3 image; rewards/lives/termination scripted."""

    def __init__(self, frames: list[np.ndarray], rewards: list[float], lives: list[int], terminal_at: int):
        self.observation_space = gym.spaces.Box(0, 255, (2, 2, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.frames, self.rewards, self.lives, self.terminal_at = frames, rewards, lives, terminal_at
        self.k = 0
        self.n_resets = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.k = 0
        self.n_resets += 1
        return self.frames[0], {"lives": self.lives[0]}

    def step(self, action: int):
        self.k += 1
        return (
            self.frames[self.k],
            self.rewards[self.k],
            self.k == self.terminal_at,
            False,
            {"lives": self.lives[self.k], "k": self.k},
        )


def _pattern_frames(n: int) -> list[np.ndarray]:
    """Frames whose element-wise max over two consecutive frames mixes pixels of both."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(2, 2, 3), dtype=np.uint8) for _ in range(n)]


def test_max_pool_skip_sums_rewards_and_pools_last_two_frames():
    frames = _pattern_frames(10)
    rewards = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    env = MaxPoolSkip(ScriptedEnv(frames, rewards, [0] * 10, terminal_at=100), skip=4)
    env.reset()
    obs, reward, terminated, truncated, info = env.step(0)
    assert reward == 1 + 2 + 4 + 8
    np.testing.assert_array_equal(obs, np.maximum(frames[3], frames[4]))
    assert not np.array_equal(obs, frames[4]) and not np.array_equal(obs, frames[3])  # a real mix
    assert info["k"] == 4 and not terminated and not truncated
    obs, reward, *_ = env.step(0)
    assert reward == 16 + 32 + 64 + 128
    np.testing.assert_array_equal(obs, np.maximum(frames[7], frames[8]))


def test_max_pool_skip_stops_early_at_episode_end():
    frames = _pattern_frames(10)
    rewards = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    env = MaxPoolSkip(ScriptedEnv(frames, rewards, [0] * 10, terminal_at=6), skip=4)
    env.reset()
    env.step(0)
    obs, reward, terminated, _, info = env.step(0)
    assert terminated and info["k"] == 6  # raw frames 7, 8 were never played
    assert reward == 16 + 32
    np.testing.assert_array_equal(obs, np.maximum(frames[5], frames[6]))
    # Ending on the first raw frame of a step returns that frame alone, never mixed with an older step.
    env = MaxPoolSkip(ScriptedEnv(frames, rewards, [0] * 10, terminal_at=5), skip=4)
    env.reset()
    env.step(0)
    obs, reward, terminated, _, _ = env.step(0)
    assert terminated and reward == 16
    np.testing.assert_array_equal(obs, frames[5])
    with pytest.raises(ValueError, match="skip"):
        MaxPoolSkip(env, skip=0)


def _life_env(terminal_on_life_loss: bool = True) -> tuple[LifeLossTermination, ScriptedEnv]:
    # Lives after each raw step: lose one at steps 2 and 4, gain one at step 5, game over at step 7.
    lives = [3, 3, 2, 2, 1, 2, 2, 1]
    rewards = [0.0, 1.0, 0.0, 5.0, 0.0, 0.0, 2.0, 0.0]
    inner = ScriptedEnv(_pattern_frames(8), rewards, lives, terminal_at=7)
    return LifeLossTermination(inner, terminal_on_life_loss), inner


def test_life_loss_terminates_without_resetting_the_game():
    env, inner = _life_env()
    obs, info = env.reset()
    assert info["life_loss_reset"] is False and inner.n_resets == 1
    flags = []
    game_info = None
    for _ in range(7):
        obs, _, terminated, _, info = env.step(0)
        flags.append((terminated, info["life_loss"], info["episode_game_over"]))
        if terminated and not info["episode_game_over"]:
            reset_obs, reset_info = env.reset()
            assert reset_info["life_loss_reset"] is True
            np.testing.assert_array_equal(reset_obs, obs)  # the game continues from the same frame
            assert reset_info["lives"] == info["lives"] and reset_info["k"] == info["k"]
            assert "life_loss" not in reset_info
            env.reset()  # a second reset before stepping still does not reset the game
        if info["episode_game_over"]:
            game_info = info
    assert inner.n_resets == 1
    # Life lost at steps 2 and 4; the extra life at step 5 is no loss; lives dropping at step 7 is game over.
    assert flags == [
        (False, False, False),
        (True, True, False),
        (False, False, False),
        (True, True, False),
        (False, False, False),
        (False, False, False),
        (True, False, True),
    ]
    assert game_info is not None
    assert game_info["game_return"] == 8.0 and game_info["game_length"] == 7
    _, info = env.reset()
    assert info["life_loss_reset"] is False and inner.n_resets == 2


def test_life_loss_option_off_and_real_resets():
    env, inner = _life_env(terminal_on_life_loss=False)
    env.reset()
    terminated = [env.step(0)[2] for _ in range(7)]
    assert terminated == [False] * 6 + [True]
    # Without a life-loss termination every reset is real, even mid-game.
    env, inner = _life_env()
    env.reset()
    env.step(0)
    assert env.reset()[1]["life_loss_reset"] is False and inner.n_resets == 2
    # An explicit seed after a life loss starts a new game.
    env.step(0)
    assert env.step(0)[2]
    assert env.reset(seed=1)[1]["life_loss_reset"] is False and inner.n_resets == 3


# ---------------------------------------------------------------------------------------------------------------
# make_atari on real ROMs (shipped inside ale-py).


@pytest.mark.parametrize(("game", "n_actions"), [("Pong", 6), ("Breakout", 4)])
def test_atari_spaces_and_protocol(game: str, n_actions: int):
    env = make_atari(game, seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(n_actions)
    kwargs = env.unwrapped.spec.kwargs
    assert kwargs["frameskip"] == 1 and kwargs["repeat_action_probability"] == 0.0
    assert kwargs["full_action_space"] is False and kwargs["max_num_frames_per_episode"] == 108_000
    obs, _ = env.reset()
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    obs, reward, *_, info = env.step(0)
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    assert info["episode_frame_number"] == 4  # one agent step = 4 emulator frames
    env.close()


def test_atari_name_forms_resolve_and_errors():
    for name in ("Pong", "pong", "PongNoFrameskip-v4", "ALE/Pong-v5"):
        env = make_atari(name)
        assert env.unwrapped.spec.id == "ALE/Pong-v5"
        env.close()
    # All 26 Atari 100k games map onto registered ALE v5 environments.
    for game in ATARI_100K_GAMES:
        assert f"ALE/{_env_name(_rom_id(game))}-v5" == f"ALE/{game}-v5" in gym.registry
    with pytest.raises(ValueError, match="did you mean 'Pong'"):
        make_atari("Pongg")
    with pytest.raises(TypeError, match=r"frameskip.*valid overrides: frame_skip=4"):
        make_atari("Pong", frameskip=4)
    with pytest.raises(ValueError, match="frame_skip"):
        make_atari("Pong", frame_skip=0)
    with pytest.raises(TypeError, match="terminal_on_life_loss"):
        make_atari("Pong", terminal_on_life_loss=1)
    with pytest.raises(ValueError, match="repeat_action_probability"):
        make_atari("Pong", repeat_action_probability=1.5)


def test_atari_overrides_change_skip_and_size():
    env = make_atari("Pong", frame_skip=2, size=32, repeat_action_probability=0.25)
    assert env.observation_space.shape == (32, 32, 3)
    assert env.unwrapped.spec.kwargs["repeat_action_probability"] == 0.25
    env.reset(seed=0)
    assert env.step(0)[-1]["episode_frame_number"] == 2
    env.close()


def test_breakout_life_loss_continues_the_game():
    env = make_atari("Breakout", seed=0)
    obs, info = env.reset()
    assert info["lives"] == 5 and info["life_loss_reset"] is False
    total, steps, life_losses = 0.0, 0, 0
    frame_at_life_loss = None
    while True:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        steps += 1
        if frame_at_life_loss is not None:
            assert info["episode_frame_number"] > frame_at_life_loss  # the emulator was not reset
            frame_at_life_loss = None
        if info["episode_game_over"]:
            break
        if terminated:
            assert info["life_loss"] and not truncated
            life_losses += 1
            reset_obs, reset_info = env.reset()
            assert reset_info["life_loss_reset"] is True
            np.testing.assert_array_equal(reset_obs, obs)
            assert reset_info["lives"] == info["lives"] == 5 - life_losses
            frame_at_life_loss = reset_info["episode_frame_number"]
            assert frame_at_life_loss == info["episode_frame_number"] > 0
    assert life_losses == 4 and info["lives"] == 0
    assert info["game_length"] == steps and info["game_return"] == total
    _, info = env.reset()
    assert info["life_loss_reset"] is False and info["lives"] == 5 and info["episode_frame_number"] == 0
    env.close()


def test_atari_truncates_at_frame_limit():
    env = make_atari("Pong", seed=0, max_episode_frames=40)
    env.reset()
    for step in range(1, 11):
        _, _, terminated, truncated, info = env.step(0)
        assert truncated == (step == 10) and not terminated
    assert info["episode_frame_number"] == 40 and info["episode_game_over"] and info["game_length"] == 10
    assert env.reset()[1]["episode_frame_number"] == 0
    env.close()


def test_atari_seed_makes_runs_reproducible():
    def rollout() -> list[np.ndarray]:
        env = make_atari("Breakout", seed=7)
        observations = [env.reset()[0]]
        observations += [env.step(env.action_space.sample())[0] for _ in range(40)]
        env.close()
        return observations

    for a, b in zip(rollout(), rollout(), strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------------------------
# Reference scores.

# Paper Table 1: (Random, Human, DramaXS) as printed.
_PAPER_TABLE_1 = {
    "Alien": (228, 7128, 820),
    "Amidar": (6, 1720, 131),
    "Assault": (222, 742, 539),
    "Asterix": (210, 8503, 1632),
    "BankHeist": (14, 753, 137),
    "BattleZone": (2360, 37188, 10860),
    "Boxing": (0, 12, 78),
    "Breakout": (2, 30, 7),
    "ChopperCommand": (811, 7388, 1642),
    "CrazyClimber": (10780, 35829, 83931),
    "DemonAttack": (152, 1971, 201),
    "Freeway": (0, 30, 15),
    "Frostbite": (65, 4335, 785),
    "Gopher": (258, 2412, 2757),
    "Hero": (1027, 30826, 7946),
    "Jamesbond": (29, 303, 372),
    "Kangaroo": (52, 3035, 1384),
    "Krull": (1598, 2666, 9693),
    "KungFuMaster": (258, 22736, 23920),
    "MsPacman": (307, 6952, 2270),
    "Pong": (-21, 15, 15),
    "PrivateEye": (25, 69571, 90),
    "Qbert": (164, 13455, 796),
    "RoadRunner": (12, 7845, 14020),
    "Seaquest": (68, 42055, 497),
    "UpNDown": (533, 11693, 7387),
}


def test_scores_match_paper_table_1():
    assert set(ATARI_100K_SCORES) == set(_PAPER_TABLE_1) and len(ATARI_100K_SCORES) == 26
    for game, (random_score, human_score, _) in _PAPER_TABLE_1.items():
        assert tuple(round(v) for v in ATARI_100K_SCORES[game]) == (random_score, human_score), game
    normalised = np.array([human_normalized_score(g, row[2]) for g, row in _PAPER_TABLE_1.items()])
    assert round(100 * normalised.mean()) == 105 and round(100 * np.median(normalised)) == 27


def test_human_normalized_score_by_hand():
    assert human_normalized_score("Pong", 14.6) == pytest.approx(1.0)
    assert human_normalized_score("Pong", -20.7) == pytest.approx(0.0)
    assert human_normalized_score("PongNoFrameskip-v4", 15) == pytest.approx(35.7 / 35.3)
    assert human_normalized_score("ALE/Boxing-v5", 78) == pytest.approx((78 - 0.1) / 12.0)
    assert human_normalized_score("ms_pacman", 2270) == pytest.approx((2270 - 307.3) / (6951.6 - 307.3))
    assert human_normalized_score("breakout", 1.7) == pytest.approx(0.0)
    with pytest.raises(KeyError, match="Tetris"):
        human_normalized_score("Tetris", 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Grid world.

_W, _F, _A, _G = WALL, FLOOR, AGENT, GOAL


def _frame(agent: tuple[int, int], goal: tuple[int, int]) -> np.ndarray:
    frame = np.full((5, 5), _W, dtype=np.uint8)
    frame[1:4, 1:4] = _F
    frame[agent], frame[goal] = _A, _G
    return frame


def test_gridworld_exact_dynamics():
    env = GridWorld(max_steps=50)
    obs, info = env.reset(seed=0, options={"agent_pos": (1, 1), "goal_pos": (3, 3)})
    expected = np.array(
        [
            [_W, _W, _W, _W, _W],
            [_W, _A, _F, _F, _W],
            [_W, _F, _F, _F, _W],
            [_W, _F, _F, _G, _W],
            [_W, _W, _W, _W, _W],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(obs, expected)
    assert obs.dtype == np.uint8 and env.observation_space.contains(obs)
    # Walls block NORTH and WEST from the corner; STAY stays; moves follow (row, col) conventions.
    script = [(NORTH, (1, 1)), (WEST, (1, 1)), (EAST, (1, 2)), (SOUTH, (2, 2)), (STAY, (2, 2)), (EAST, (2, 3))]
    for action, position in script:
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["agent_pos"] == position and reward == 0.0 and not terminated and not truncated
        np.testing.assert_array_equal(obs, _frame(position, (3, 3)))
    obs, reward, terminated, truncated, info = env.step(SOUTH)  # onto the goal
    assert reward == 1.0 and info["goal_reached"] and not terminated
    assert info["agent_pos"] != info["goal_pos"]  # both re-placed on distinct interior cells
    np.testing.assert_array_equal(obs, _frame(info["agent_pos"], info["goal_pos"]))


def test_gridworld_truncation_determinism_and_validity():
    def rollout(seed: int) -> list[np.ndarray]:
        env = GridWorld(max_steps=300)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        frames, truncated, total = [obs], False, 0.0
        while not truncated:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert not terminated
            frames.append(obs)
            total += reward
        assert total > 0  # a random walk on 3x3 reaches the goal within 300 steps
        return frames

    frames = rollout(3)
    assert len(frames) == 301
    np.testing.assert_array_equal(np.stack(frames), np.stack(rollout(3)))
    assert not np.array_equal(np.stack(frames), np.stack(rollout(4)))
    errors = grid_error(np.stack(frames), np.stack(frames))
    assert errors["geometric_error"] == 0.0 and errors["logic_error"] == 0.0  # all frames valid


def test_gridworld_rgb_and_errors():
    env = GridWorld(render_size=64, render_mode="rgb_array")
    obs, _ = env.reset(seed=0, options={"agent_pos": (2, 2), "goal_pos": (1, 3)})
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8) and obs.shape == (64, 64, 3)
    np.testing.assert_array_equal(obs[32, 32], PALETTE[_A])  # pixel 32 lies in cell 32 * 5 // 64 = 2
    np.testing.assert_array_equal(obs[20, 45], PALETTE[_G])  # cell (1, 3)
    np.testing.assert_array_equal(obs[0, 0], PALETTE[_W])
    np.testing.assert_array_equal(env.render(), obs)
    with pytest.raises(ValueError, match="action"):
        env.step(5)
    with pytest.raises(ValueError, match="differ"):
        env.reset(options={"agent_pos": (2, 2), "goal_pos": (2, 2)})
    with pytest.raises(ValueError, match="interior"):
        env.reset(options={"agent_pos": (0, 2), "goal_pos": (2, 2)})
    with pytest.raises(ValueError, match="render_size"):
        GridWorld(render_size=3)


def test_tokenisation_layout_and_inverse():
    frames = np.stack([_frame((1, 1), (3, 3)), _frame((1, 2), (3, 3)), _frame((2, 2), (3, 3))])
    actions = np.array([EAST, SOUTH, STAY])
    tokens = tokenize_trajectory(frames, actions)
    assert tokens.dtype == torch.long and tokens.shape == (3 * 26,)
    for t in range(3):
        np.testing.assert_array_equal(tokens[26 * t : 26 * t + 25].numpy(), frames[t].reshape(-1))
        assert tokens[26 * t + 25] == 4 + actions[t]
    assert tokens[6] == _A and tokens[18] == _G and tokens[25] == 4 + EAST
    batched = tokenize_trajectory(np.stack([frames, frames]), np.stack([actions, actions]))
    assert batched.shape == (2, 78) and torch.equal(batched[1], tokens)
    back_frames, back_actions = untokenize_trajectory(batched)
    np.testing.assert_array_equal(back_frames[0].numpy(), frames)
    np.testing.assert_array_equal(back_actions[1].numpy(), actions)
    with pytest.raises(ValueError, match="actions"):
        tokenize_trajectory(frames, np.array([0, 1, 5]))
    with pytest.raises(ValueError, match=r"frames \[\.\.\., T, 5, 5\]"):
        tokenize_trajectory(frames, actions[:2])
    with pytest.raises(TypeError, match="integers"):
        tokenize_trajectory(frames.astype(np.float32), actions)


def test_sequence_dataset_follows_the_dynamics():
    data = make_sequence_dataset(64, 8, seed=1)
    assert data.dtype == torch.long and data.shape == (64, 8 * 26)
    assert torch.equal(data, make_sequence_dataset(64, 8, seed=1))
    assert not torch.equal(data, make_sequence_dataset(64, 8, seed=2))
    frames, actions = untokenize_trajectory(data)
    assert frames.max() <= 3 and actions.min() >= 0 and actions.max() <= 4
    assert grid_error(frames, frames)["error"] == 0.0
    moves = torch.tensor([[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1]])
    agent = (frames == AGENT).nonzero()[:, 2:].view(64, 8, 2)
    goal = (frames == GOAL).nonzero()[:, 2:].view(64, 8, 2)
    moved = (agent[:, :-1] + moves[actions[:, :-1]]).clamp(1, 3)
    reached = (moved == goal[:, :-1]).all(-1)
    # Either the agent made the move, or it reached the goal and everything was re-placed.
    assert torch.all((moved == agent[:, 1:]).all(-1) | reached)
    assert reached.any() and (~reached).any()
    assert len(make_sequence_dataset(2, 64, seed=0)[0]) == 1664


def test_grid_error_on_hand_made_frames():
    target = np.stack([_frame((1, 1), (3, 3))] * 5)
    good = target[0].copy()
    broken_wall = good.copy()
    broken_wall[0, 2] = _F  # boundary cell not a wall
    wrong_agent = _frame((2, 2), (3, 3))  # valid frame, agent in the wrong place
    two_agents = good.copy()
    two_agents[2, 2] = _A
    bad_token = good.copy()
    bad_token[2, 2] = 7  # an action token predicted at a cell position
    predicted = np.stack([good, broken_wall, wrong_agent, two_agents, bad_token])
    errors = grid_error(predicted, target)
    assert errors["n_frames"] == 5
    assert errors["geometric_error"] == pytest.approx(3 / 5)  # broken_wall, two_agents, bad_token
    assert errors["logic_error"] == pytest.approx(4 / 5)  # the same three plus wrong_agent
    assert errors["error"] == pytest.approx(0.7)
    assert grid_error(torch.as_tensor(target), torch.as_tensor(target))["error"] == 0.0
    with pytest.raises(ValueError, match="target_frames contain invalid"):
        grid_error(target, predicted)
    with pytest.raises(ValueError, match="equal shape"):
        grid_error(predicted[:2], target)


# ---------------------------------------------------------------------------------------------------------------
# Catch.


def _episode_return(env: Catch, seed: int, policy) -> float:
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(policy())
        total += reward
        done = terminated or truncated
    return total


def test_catch_mechanics_and_rendering():
    env = Catch(size=64, grid=8, max_steps=100)
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    (row, col), paddle = info["ball"], info["paddle"]
    assert row == 0 and paddle == 4
    np.testing.assert_array_equal(obs[0:8, 8 * col : 8 * col + 8], 255)  # white ball in its 8x8 cell
    np.testing.assert_array_equal(obs[56:64, 32:40], [[[0, 200, 255]] * 8] * 8)  # cyan paddle
    assert int((obs.sum(-1) > 0).sum()) == 2 * 64  # nothing else drawn
    # Miss on purpose: keep the paddle away from the ball's column.
    away = 0 if col > 3 else 2
    rewards = [env.step(away)[1:3] for _ in range(7)]
    assert rewards[:-1] == [(0.0, False)] * 6 and rewards[-1] == (-1.0, True)
    # Catch: the greedy policy is at the ball when it lands, and a new ball appears on the top row.
    env.reset(seed=0)
    for _ in range(6):
        assert env.step(env.greedy_action())[1] == 0.0
    _, reward, terminated, _, info = env.step(env.greedy_action())
    assert reward == 1.0 and info["caught"] and not terminated and info["ball"][0] == 0
    with pytest.raises(ValueError, match="action"):
        env.step(3)


def test_catch_is_deterministic_given_seed():
    def rollout(seed: int) -> list[np.ndarray]:
        env = Catch(size=32, max_steps=30)
        env.action_space.seed(seed)
        observations = [env.reset(seed=seed)[0]]
        for _ in range(30):
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            observations.append(obs)
            if terminated or truncated:
                break
        return observations

    a, b = rollout(5), rollout(5)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_catch_good_play_beats_random_play():
    env = Catch()
    greedy = [_episode_return(env, seed, env.greedy_action) for seed in range(5)]
    assert greedy == [14.0] * 5  # max_steps // (grid - 1) catches, never a miss
    rng = np.random.default_rng(0)
    random_returns = [_episode_return(env, seed, lambda: int(rng.integers(3))) for seed in range(200)]
    assert np.mean(random_returns) < 0.0 and max(random_returns) < 14.0


def test_registered_env_ids():
    catch = gym.make("drama_wm/Catch-v0", size=32)
    assert catch.reset(seed=0)[0].shape == (32, 32, 3)
    grid = gym.make("drama_wm/GridWorld-v0", render_size=64)
    assert grid.reset(seed=0)[0].shape == (64, 64, 3)


def test_is_atari_100k_game_accepts_every_spelling():
    from drama_wm.envs.scores import is_atari_100k_game

    assert all(is_atari_100k_game(name) for name in ("Pong", "ALE/Pong-v5", "PongNoFrameskip-v4", "ms_pacman"))
    assert not any(is_atari_100k_game(name) for name in ("CartPole-v1", "Tetris", "drama_wm/Catch-v0"))
