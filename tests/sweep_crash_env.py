"""An env for tests/test_sweep.py's retry test, importable by Ray workers (tests/ is put on their PYTHONPATH).

``CrashOnceCartPole-v0`` is CartPole whose worker process dies (``os._exit``) at the CRASH_AT-th step of an env
instance (counted over its episodes: the training env; short evaluation episodes never get there), but only if the
marker file named by SWEEP_CRASH_MARKER does not exist yet; it creates the marker first, so the retried
task runs through.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

CRASH_AT = 90


class CrashOnceCartPole(CartPoleEnv):
    def step(self, action: int):  # type: ignore[override]
        self.steps_made = getattr(self, "steps_made", 0) + 1
        marker = os.environ.get("SWEEP_CRASH_MARKER")
        if marker and self.steps_made == CRASH_AT and not Path(marker).exists():
            Path(marker).write_text("crashed once\n")
            os._exit(1)  # the worker dies, as it would when a node is lost or the process is killed
        return super().step(action)


class BrokenCartPole(CartPoleEnv):
    """Raises at its third step, on every attempt: a run that cannot succeed."""

    def step(self, action: int):  # type: ignore[override]
        self.steps_made = getattr(self, "steps_made", 0) + 1
        if self.steps_made == 3:
            raise RuntimeError("step 3 is broken")
        return super().step(action)


if "BrokenCartPole-v0" not in gym.registry:
    gym.register("BrokenCartPole-v0", entry_point=BrokenCartPole, max_episode_steps=500)
if "CrashOnceCartPole-v0" not in gym.registry:
    gym.register("CrashOnceCartPole-v0", entry_point=CrashOnceCartPole, max_episode_steps=500)
