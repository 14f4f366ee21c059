"""The grid world of the paper's long-sequence prediction experiment (Sec. 3.2.3, Fig. 3, Table 2, App. A.6).

World: a 5x5 grid whose 16 border cells are walls, leaving a 3x3 walkable interior holding one agent and one
goal (never on the same cell). The paper does not list the action set (Fig. 3 shows east/south/north moves);
its footnote credits the implementation to Torres-Legueta (2024), the mamba.py repository, whose grid-world
example ("tiny home") has five actions: stay, north, east, south, west. We use those five. Moving into a wall
leaves the agent in place. When the agent steps onto the goal it receives reward 1 and *both* agent and goal
are re-placed uniformly at random on distinct interior cells, as the paper's Fig. 3 caption states ("the
location of the agent and goal will be reset randomly"; the mamba.py example re-places only the goal). The
episode continues until ``max_steps`` (truncation). The agent is therefore never seen standing on the goal.

Cell codes (observation values and cell tokens): WALL=0, FLOOR=1, AGENT=2, GOAL=3.
Actions: STAY=0, NORTH=1 (row - 1), EAST=2 (column + 1), SOUTH=3 (row + 1), WEST=4 (column - 1).

Token vocabulary of the sequence task (``VOCAB_SIZE`` = 9): ids 0-3 are the cell codes, ids 4-8 are the
actions (token = ``N_CELL_TYPES`` + action). A frame is 25 cell tokens, row-major, followed by the token of the
action taken in that frame, so a trajectory of T frames is T x 26 tokens (paper: l_f = l_g^2 + 1 = 26).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from drama_wm.checks import int_at_least, positive_int

GRID_SIZE = 5
WALL, FLOOR, AGENT, GOAL = 0, 1, 2, 3
N_CELL_TYPES = 4
STAY, NORTH, EAST, SOUTH, WEST = 0, 1, 2, 3, 4
N_ACTIONS = 5
FRAME_TOKENS = GRID_SIZE * GRID_SIZE + 1
VOCAB_SIZE = N_CELL_TYPES + N_ACTIONS

# (row, column) displacement of each action.
_MOVES = np.array([[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)
_INTERIOR = GRID_SIZE - 2
# RGB colour of each cell code (paper Fig. 3: black walls, red agent, yellow goal).
PALETTE = np.array([[0, 0, 0], [200, 200, 200], [220, 30, 30], [240, 220, 40]], dtype=np.uint8)

_BORDER = np.ones((GRID_SIZE, GRID_SIZE), dtype=bool)
_BORDER[1:-1, 1:-1] = False


def _interior_cell(index: np.ndarray) -> np.ndarray:
    """Interior cell index in [0, 9) (row-major) -> (row, col) int64 [..., 2] in grid coordinates."""
    return np.stack([1 + index // _INTERIOR, 1 + index % _INTERIOR], axis=-1)


def _random_placement(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform over the 9 x 8 ordered pairs of distinct interior cells. Returns agent, goal: int64 [n, 2]."""
    cells = _INTERIOR * _INTERIOR
    first = rng.integers(0, cells, size=n)
    second = rng.integers(0, cells - 1, size=n)
    second = second + (second >= first)  # skip the agent's cell so the pair is distinct and uniform
    return _interior_cell(first), _interior_cell(second)


def _step_positions(
    agent: np.ndarray, goal: np.ndarray, actions: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised dynamics. agent, goal: int64 [n, 2]; actions: int [n]. Returns new agent, goal, reached [n]."""
    # Clipping to the interior is exactly "moving into a wall leaves the agent in place".
    agent = np.clip(agent + _MOVES[actions], 1, GRID_SIZE - 2)
    reached = np.all(agent == goal, axis=-1)
    goal = goal.copy()
    if reached.any():
        new_agent, new_goal = _random_placement(rng, int(reached.sum()))
        agent[reached], goal[reached] = new_agent, new_goal
    return agent, goal, reached


def _draw(agent: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Cell-code grids uint8 [n, 5, 5] for agent, goal positions int [n, 2]."""
    n = agent.shape[0]
    grid = np.full((n, GRID_SIZE, GRID_SIZE), FLOOR, dtype=np.uint8)
    grid[:, _BORDER] = WALL
    rows = np.arange(n)
    grid[rows, agent[:, 0], agent[:, 1]] = AGENT
    grid[rows, goal[:, 0], goal[:, 1]] = GOAL
    return grid


def grid_to_rgb(frames: np.ndarray, size: int) -> np.ndarray:
    """Render cell-code frames uint8 [..., 5, 5] as RGB images uint8 [..., size, size, 3].

    Pixel (y, x) shows cell (y * 5 // size, x * 5 // size), so any ``size >= 5`` works (64 gives cells of 12-13
    pixels). Codes outside 0..3 raise ValueError.
    """
    frames = np.asarray(frames)
    if frames.shape[-2:] != (GRID_SIZE, GRID_SIZE):
        raise ValueError(f"frames must have shape [..., {GRID_SIZE}, {GRID_SIZE}], got {frames.shape}")
    if frames.size and (frames.min() < 0 or frames.max() >= N_CELL_TYPES):
        raise ValueError(f"cell codes must lie in [0, {N_CELL_TYPES - 1}], got {frames.min()}..{frames.max()}")
    int_at_least("size", size, GRID_SIZE)
    cell = np.arange(size) * GRID_SIZE // size
    return PALETTE[frames[..., cell[:, None], cell[None, :]]]


class GridWorld(gym.Env):
    """The paper's 5x5 grid world as a Gymnasium env (see the module docstring for rules and codes).

    Args:
        max_steps: steps per episode, then ``truncated=True`` (the task itself never terminates).
        render_size: None gives observations uint8 [5, 5] of cell codes; an int S >= 5 gives RGB images
            uint8 [S, S, 3] (e.g. 64, a small pixel env for the world model).
        render_mode: None or "rgb_array" (``render()`` returns the RGB image, 64x64 unless ``render_size``).

    ``reset(options={"agent_pos": (r, c), "goal_pos": (r, c)})`` places both explicitly (distinct interior
    cells). ``info`` has "agent_pos", "goal_pos" (tuples, after the step) and, from ``step()``, "goal_reached".
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (an instance variable in gymnasium.Env)

    def __init__(self, max_steps: int = 100, render_size: int | None = None, render_mode: str | None = None):
        positive_int("max_steps", max_steps)
        if render_size is not None:  # None: observations are the cell codes, not pixels
            int_at_least("render_size", render_size, GRID_SIZE)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_steps = max_steps
        self.render_size = render_size
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(N_ACTIONS)
        if render_size is None:
            self.observation_space = spaces.Box(0, N_CELL_TYPES - 1, (GRID_SIZE, GRID_SIZE), np.uint8)
        else:
            self.observation_space = spaces.Box(0, 255, (render_size, render_size, 3), np.uint8)
        self._agent = np.zeros((1, 2), dtype=np.int64)
        self._goal = np.zeros((1, 2), dtype=np.int64)
        self._steps = 0

    @property
    def grid(self) -> np.ndarray:
        """Current cell codes, uint8 [5, 5]."""
        return _draw(self._agent, self._goal)[0]

    def _obs(self) -> np.ndarray:
        return self.grid if self.render_size is None else grid_to_rgb(self.grid, self.render_size)

    def _info(self) -> dict[str, Any]:
        return {"agent_pos": tuple(int(v) for v in self._agent[0]), "goal_pos": tuple(int(v) for v in self._goal[0])}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if set(options) - {"agent_pos", "goal_pos"}:
            raise ValueError(f"unknown reset options {sorted(set(options))}; expected 'agent_pos' and 'goal_pos'")
        if options:
            if set(options) != {"agent_pos", "goal_pos"}:
                raise ValueError("reset options must give both 'agent_pos' and 'goal_pos'")
            agent, goal = (np.asarray(options[k], dtype=np.int64).reshape(1, -1) for k in ("agent_pos", "goal_pos"))
            for name, pos in (("agent_pos", agent), ("goal_pos", goal)):
                if pos.shape != (1, 2) or pos.min() < 1 or pos.max() > GRID_SIZE - 2:
                    raise ValueError(
                        f"{name} must be an interior (row, col) in 1..{GRID_SIZE - 2}, got {options[name]}"
                    )
            if np.array_equal(agent, goal):
                raise ValueError(f"agent_pos and goal_pos must differ, both are {options['agent_pos']}")
            self._agent, self._goal = agent, goal
        else:
            self._agent, self._goal = _random_placement(self.np_random, 1)
        self._steps = 0
        return self._obs(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {N_ACTIONS - 1}], got {action!r}")
        self._agent, self._goal, reached = _step_positions(
            self._agent, self._goal, np.array([int(action)]), self.np_random
        )
        self._steps += 1
        info = {**self._info(), "goal_reached": bool(reached[0])}
        return self._obs(), float(reached[0]), False, self._steps >= self.max_steps, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return grid_to_rgb(self.grid, self.render_size or 64)


def _as_long(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(x)
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {tensor.dtype}")
    return tensor.long()


def tokenize_trajectory(frames: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Flatten a trajectory into the paper's token sequence (Fig. 3b).

    Args:
        frames: cell codes, int [..., T, 5, 5].
        actions: actions taken in those frames, int [..., T] (a_t leads from frame t to frame t + 1).

    Returns:
        LongTensor [..., T * 26]: for each t, the 25 cells of frame t row-major, then token 4 + a_t.
    """
    frames, actions = _as_long(frames, "frames"), _as_long(actions, "actions")
    if frames.dim() < 3 or frames.shape[-2:] != (GRID_SIZE, GRID_SIZE) or frames.shape[:-2] != actions.shape:
        raise ValueError(
            f"expected frames [..., T, {GRID_SIZE}, {GRID_SIZE}] and actions [..., T], "
            f"got {tuple(frames.shape)} and {tuple(actions.shape)}"
        )
    if frames.numel() and (frames.min() < 0 or frames.max() >= N_CELL_TYPES):
        raise ValueError(f"cell codes must lie in [0, {N_CELL_TYPES - 1}]")
    if actions.numel() and (actions.min() < 0 or actions.max() >= N_ACTIONS):
        raise ValueError(f"actions must lie in [0, {N_ACTIONS - 1}]")
    cells = frames.flatten(-2)  # [..., T, 25]
    per_frame = torch.cat([cells, (actions + N_CELL_TYPES).unsqueeze(-1)], dim=-1)  # [..., T, 26]
    return per_frame.flatten(-2)


def untokenize_trajectory(tokens: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse layout of :func:`tokenize_trajectory`, without validation (for decoding model predictions).

    Args:
        tokens: int [..., T * 26].

    Returns:
        frames LongTensor [..., T, 5, 5] holding the raw token ids at cell positions (a predicted id >= 4 there
        is an invalid cell and counts as an error in :func:`grid_error`), and actions LongTensor [..., T] =
        token id - 4 at action positions.
    """
    tokens = _as_long(tokens, "tokens")
    if tokens.dim() < 1 or tokens.shape[-1] % FRAME_TOKENS:
        raise ValueError(f"tokens must have shape [..., T * {FRAME_TOKENS}], got {tuple(tokens.shape)}")
    per_frame = tokens.unflatten(-1, (-1, FRAME_TOKENS))
    frames = per_frame[..., :-1].unflatten(-1, (GRID_SIZE, GRID_SIZE))
    return frames, per_frame[..., -1] - N_CELL_TYPES


def make_sequence_dataset(n_sequences: int, n_frames: int, seed: int = 0) -> torch.Tensor:
    """Token sequences of uniformly random-policy rollouts, each starting from a fresh random placement.

    The paper uses n_frames = 8 (l = 208) and 64 (l = 1664). Returns LongTensor [n_sequences, n_frames * 26];
    identical for identical arguments.
    """
    positive_int("n_sequences", n_sequences)
    positive_int("n_frames", n_frames)
    rng = np.random.default_rng(seed)
    agent, goal = _random_placement(rng, n_sequences)
    frames = np.empty((n_sequences, n_frames, GRID_SIZE, GRID_SIZE), dtype=np.uint8)
    actions = rng.integers(0, N_ACTIONS, size=(n_sequences, n_frames))
    for t in range(n_frames):
        frames[:, t] = _draw(agent, goal)
        agent, goal, _ = _step_positions(agent, goal, actions[:, t], rng)
    return tokenize_trajectory(frames, actions)


def _valid(frames: np.ndarray) -> np.ndarray:
    """Geometric validity (App. A.6) of int frames [N, 5, 5] -> bool [N]."""
    border_ok = np.all(frames[:, _BORDER] == WALL, axis=-1)
    interior = frames[:, 1:-1, 1:-1].reshape(len(frames), -1)
    n_agent = (interior == AGENT).sum(-1)
    n_goal = (interior == GOAL).sum(-1)
    n_floor = (interior == FLOOR).sum(-1)
    return border_ok & (n_agent == 1) & (n_goal == 1) & (n_floor == interior.shape[1] - 2)


def grid_error(
    predicted_frames: np.ndarray | torch.Tensor, target_frames: np.ndarray | torch.Tensor
) -> dict[str, float]:
    """Geometric and logic error of predicted grid frames (paper App. A.6), as fractions of frames.

    Args:
        predicted_frames: int [..., 5, 5], the model's prediction of each target frame (raw token ids allowed).
        target_frames: int [..., 5, 5], the ground-truth frames, same shape; each must be a valid frame.

    Returns:
        dict with
        - "geometric_error" E_g: fraction of predicted frames violating the structure: some border cell is not
          a wall, or the 3x3 interior does not hold exactly one agent, one goal and seven floors.
        - "logic_error" E_l: fraction of predicted frames that are invalid (as above) or whose agent position
          differs from the target frame's agent position.
        - "error": (E_g + E_l) / 2, the paper's "Error (%)" of Table 2 (x 100 for a percentage).
        - "n_frames": number of frames compared.

    Reading of A.6 (the appendix leaves the unit open): it describes E_g as "the number of boundary cells
    incorrectly classified" plus interior constraints, but reports a percentage; we count *frames* with any
    violation, so both errors are per-frame rates in [0, 1] and E_l >= E_g. Note that when the agent reaches
    the goal both are re-placed at random, so the next agent position is unpredictable: under the uniformly
    random policy this happens on about 4.6% of steps, a floor on the logic error of even a perfect predictor.
    """
    pred = _as_long(predicted_frames, "predicted_frames").numpy()
    target = _as_long(target_frames, "target_frames").numpy()
    if pred.shape != target.shape or pred.shape[-2:] != (GRID_SIZE, GRID_SIZE):
        raise ValueError(
            f"expected predicted and target frames of equal shape [..., {GRID_SIZE}, {GRID_SIZE}], "
            f"got {pred.shape} and {target.shape}"
        )
    pred = pred.reshape(-1, GRID_SIZE, GRID_SIZE)
    target = target.reshape(-1, GRID_SIZE, GRID_SIZE)
    if len(pred) == 0:
        raise ValueError("grid_error needs at least one frame")
    if not _valid(target).all():
        raise ValueError("target_frames contain invalid frames; targets must be ground-truth grid world frames")
    valid = _valid(pred)
    # Valid frames have exactly one agent, so comparing the agent masks compares the agent positions.
    same_agent = np.all((pred == AGENT) == (target == AGENT), axis=(-2, -1))
    geometric = float(np.mean(~valid))
    logic = float(np.mean(~(valid & same_agent)))
    return {
        "geometric_error": geometric,
        "logic_error": logic,
        "error": (geometric + logic) / 2,
        "n_frames": len(pred),
    }
