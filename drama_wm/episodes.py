"""Whole-game returns from a stream of real steps, written once for training, evaluation and baselines.

An env's episode and the game it plays can differ: with ``make_atari``'s life-loss signal, a lost life ends the
learner's episode (``terminated``) but the game goes on, and ``info["episode_game_over"]`` says when the game ended;
``info["game_return"]`` then holds the score over all lives. Envs without these keys end a game with every episode.
"""

from __future__ import annotations

from typing import Any


class EpisodeTracker:
    """Sums rewards per game and records every finished game.

    ``finished`` holds one dict per finished game: ``{"return": float, "length": int, "step": int}``, ``step`` being
    the caller's step count at the game's last step (real steps of the run, or steps of an evaluation).
    """

    def __init__(self) -> None:
        self.finished: list[dict[str, float]] = []
        self.current_return = 0.0  #: the unfinished game's return so far
        self.current_length = 0  #: its steps so far

    def step(self, reward: float, done: bool, info: dict[str, Any], step: int) -> float | None:
        """Count one env step (``done`` = terminated or truncated); returns the game's return when it ended here."""
        self.current_return += float(reward)
        self.current_length += 1
        if not done or not info.get("episode_game_over", True):
            return None
        game_return = float(info.get("game_return", self.current_return))
        self.finished.append({"return": game_return, "length": self.current_length, "step": step})
        self.current_return, self.current_length = 0.0, 0
        return game_return

    def new_game(self) -> None:
        """Forget the unfinished game (its env was replaced or restarted from outside)."""
        self.current_return, self.current_length = 0.0, 0

    @property
    def returns(self) -> list[float]:
        return [game["return"] for game in self.finished]

    def state_dict(self) -> dict[str, Any]:
        current = [self.current_return, self.current_length]
        return {"finished": [dict(game) for game in self.finished], "current": current}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.finished = [dict(game) for game in state["finished"]]
        self.current_return, self.current_length = float(state["current"][0]), int(state["current"][1])


__all__ = ["EpisodeTracker"]
