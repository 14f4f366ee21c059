"""Catch: a tiny pixel game for tests and CPU demos of the world model and its policy.

A ball falls straight down an ``grid x grid`` board (default 8x8), one cell per step, from a random column of the
top row. A one-cell paddle on the bottom row moves left, stays or moves right each step. When the ball reaches
the bottom row: under the paddle it is caught (reward +1) and a new ball appears in a random column of the top
row; otherwise it is missed (reward -1) and the episode terminates. Episodes are truncated after ``max_steps``.

Why this design: the reward depends on one visible relation (ball column vs paddle column at the bottom), the
dynamics are deterministic except for the spawn column, and the ball needs ``grid - 1`` steps to fall, enough
for the paddle to cross the whole board, so perfect play never misses. With the defaults a uniformly random
policy catches about one ball in eight (mean return about -0.87), while perfect play catches every ball and
returns ``max_steps // (grid - 1)`` = 14.

Observations are RGB uint8 [size, size, 3]: black background, white ball, cyan paddle; board cell (r, c)
covers the pixels (y, x) with y * grid // size = r and x * grid // size = c.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drama_wm.checks import int_at_least, positive_int

LEFT, STAY, RIGHT = 0, 1, 2
_BALL_RGB = np.array([255, 255, 255], dtype=np.uint8)
_PADDLE_RGB = np.array([0, 200, 255], dtype=np.uint8)


class Catch(gym.Env):
    """Catch the falling ball with a paddle. Actions: 0 = left, 1 = stay, 2 = right.

    Args:
        size: observation side in pixels (>= grid).
        grid: board side in cells (>= 3).
        max_steps: steps per episode before ``truncated=True``.
        render_mode: None or "rgb_array" (``render()`` returns the observation image).

    ``info`` holds "ball" (row, col), "paddle" (col) after the step, and from ``step()`` "caught"/"missed".
    Deterministic given the seed of the first ``reset``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (an instance variable in gymnasium.Env)

    def __init__(self, size: int = 64, grid: int = 8, max_steps: int = 100, render_mode: str | None = None):
        int_at_least("grid", grid, 3)
        int_at_least("size", size, grid)
        positive_int("max_steps", max_steps)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.size, self.grid, self.max_steps, self.render_mode = size, grid, max_steps, render_mode
        self.action_space = spaces.Discrete(3)
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self._cell = np.arange(size) * grid // size  # board cell index of each pixel row/column
        self._ball = (0, 0)
        self._paddle = grid // 2
        self._steps = 0

    def _spawn_ball(self) -> None:
        self._ball = (0, int(self.np_random.integers(self.grid)))

    def _obs(self) -> np.ndarray:
        image = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        row, col = self._ball
        image[np.ix_(self._cell == row, self._cell == col)] = _BALL_RGB
        image[np.ix_(self._cell == self.grid - 1, self._cell == self._paddle)] = _PADDLE_RGB
        return image

    def _info(self) -> dict[str, Any]:
        return {"ball": self._ball, "paddle": self._paddle}

    def greedy_action(self) -> int:
        """The perfect policy: move the paddle toward the ball's column (used as the "good play" baseline)."""
        offset = self._ball[1] - self._paddle
        return STAY if offset == 0 else (RIGHT if offset > 0 else LEFT)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"Catch.reset takes no options, got {options!r}")
        self._paddle = self.grid // 2
        self._spawn_ball()
        self._steps = 0
        return self._obs(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, 2] (left, stay, right), got {action!r}")
        self._paddle = min(max(self._paddle + int(action) - 1, 0), self.grid - 1)
        row, col = self._ball[0] + 1, self._ball[1]
        self._ball = (row, col)
        self._steps += 1
        caught = missed = False
        if row == self.grid - 1:
            caught, missed = col == self._paddle, col != self._paddle
            if caught:
                self._spawn_ball()
        reward = 1.0 if caught else (-1.0 if missed else 0.0)
        truncated = self._steps >= self.max_steps
        info = {**self._info(), "caught": caught, "missed": missed}
        return self._obs(), reward, missed, truncated, info

    def render(self) -> np.ndarray | None:
        return self._obs() if self.render_mode == "rgb_array" else None
