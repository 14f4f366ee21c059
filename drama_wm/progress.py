"""The driver's own state between real steps: how far the run is, its games, its random streams and its timers."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from drama_wm.episodes import EpisodeTracker

#: what the driver times, in seconds: stepping the real env, world-model updates, behaviour updates
TIMERS = ("env", "world_model", "behaviour")


class RunProgress:
    """Step counts, finished games, the warm-up action RNG, timers, metrics awaiting the next log row and torch's
    global RNG (which the updates and the
    policy draw from), with ``state_dict`` / ``load_state_dict`` for checkpoints.

    ``num_timesteps`` counts steps since the last ``learn(reset_num_timesteps=True)``; ``steps_before_reset`` the
    ones before; their sum, :attr:`schedule_step`, is what Algorithm 1's warm-up and update intervals count.
    """

    def __init__(self, seed: int | None) -> None:
        self.num_timesteps = 0
        self.steps_before_reset = 0
        self.games = EpisodeTracker()
        self.rng = np.random.default_rng(seed)  #: draws the random warm-up actions
        self.timers = dict.fromkeys(TIMERS, 0.0)
        #: metrics recorded since the last log row (a checkpoint between two rows must keep them for the next one)
        self.pending: dict[str, list[float]] = {}

    @property
    def schedule_step(self) -> int:
        """Real steps ever taken."""
        return self.steps_before_reset + self.num_timesteps

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_timesteps": self.num_timesteps,
            "steps_before_reset": self.steps_before_reset,
            "games": self.games.state_dict(),
            "rng": self.rng.bit_generator.state,
            "timers": dict(self.timers),
            "pending": {name: list(values) for name, values in self.pending.items()},
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_timesteps = int(state["num_timesteps"])
        self.steps_before_reset = int(state["steps_before_reset"])
        self.games.load_state_dict(state["games"])
        self.rng.bit_generator.state = state["rng"]
        self.timers = {name: float(state["timers"][name]) for name in TIMERS}
        self.pending = {name: [float(v) for v in values] for name, values in state["pending"].items()}
        torch.set_rng_state(state["torch_rng"])


__all__ = ["TIMERS", "RunProgress"]
