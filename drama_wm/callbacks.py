"""``learn()``'s callbacks: a plain ``f(agent) -> bool | None`` or stable-baselines3 callbacks (imported only then)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

#: ``learn(callback=...)``: ``f(agent) -> bool | None``, a stable-baselines3 ``BaseCallback``, or a list of them
LearnCallback = Callable[[Any], bool | None] | Any


class CallbackHooks:
    """Runs ``learn()``'s callback: a plain ``f(agent)`` or stable-baselines3 callbacks (imported only then)."""

    def __init__(self, agent: Any, callback: LearnCallback) -> None:
        self.agent = agent
        self.plain: Callable[[Any], bool | None] | None = None
        self.sb3: Any = None
        self.locals: dict[str, Any] = {}
        if callback is None:
            return
        if isinstance(callback, list) or (hasattr(callback, "init_callback") and hasattr(callback, "on_step")):
            from stable_baselines3.common.callbacks import CallbackList

            self.sb3 = CallbackList(callback) if isinstance(callback, list) else callback
            with warnings.catch_warnings():
                # EvalCallback warns when the eval env's type differs from the training env's; Drama trains on one
                # LatentObservation-wrapped env, so it always differs, by design.
                warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
                self.sb3.init_callback(agent)
        elif callable(callback):
            self.plain = callback
        else:
            raise TypeError(
                "callback must be a function f(agent) -> bool | None, a stable_baselines3 BaseCallback or a list of "
                f"them, got {type(callback).__name__}"
            )

    def start(self, total_timesteps: int) -> None:
        if self.sb3 is not None:
            self.locals = {"self": self.agent, "total_timesteps": total_timesteps, "callback": self.sb3}
            self.sb3.on_training_start(self.locals, {})
            self.sb3.on_rollout_start()

    def step(self, step: dict[str, Any]) -> bool | None:
        if self.plain is not None:
            return self.plain(self.agent)
        if self.sb3 is not None:
            self.sb3.update_locals(step)
            return bool(self.sb3.on_step())
        return None

    def end(self) -> None:
        if self.sb3 is not None:
            self.sb3.on_rollout_end()
            self.sb3.on_training_end()


__all__ = ["CallbackHooks", "LearnCallback"]
