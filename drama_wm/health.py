"""Training health: counts skipped updates and stops a run whose updates keep being skipped.

An update whose loss or gradient norm is not finite is skipped (:func:`drama_wm.optim.apply_gradients`): the weights
stay as they were and the component reports ``<prefix>/skipped_update`` = 1 in its metrics ("wm" for the world
model, "behaviour" for the built-in actor-critic). An occasional skip is harmless; a long unbroken run of them means
training has stopped learning (a diverged model, or bad data that the env checks cannot see), so
:class:`UpdateHealth` raises :class:`SkippedUpdatesError` after ``max_consecutive`` skips in a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: metric prefix -> the component's name in messages
COMPONENTS = {"wm": "world model", "behaviour": "behaviour learner"}


class SkippedUpdatesError(RuntimeError):
    """A component skipped ``count`` updates in a row (non-finite loss or gradient): training is stopped.

    Attributes:
        component: "world model" or "behaviour learner".
        count: the consecutive skips that stopped the run.
    """

    def __init__(self, message: str, component: str, count: int) -> None:
        super().__init__(message)
        self.component = component
        self.count = count


class UpdateHealth:
    """Counts each component's skipped updates (in all, and in a row) from the metrics its updates return.

    Args:
        max_consecutive: raise :class:`SkippedUpdatesError` when a component has skipped this many updates in a row
            (0: never raise, only count).
    """

    def __init__(self, max_consecutive: int) -> None:
        self.max_consecutive = max_consecutive
        self.skipped: dict[str, int] = {}  #: prefix -> skipped updates in all (components seen so far)
        self.consecutive: dict[str, int] = {}  #: prefix -> skipped updates since the last applied one

    def observe(self, metrics: Mapping[str, float], step: int) -> None:
        """Count the skip flags in one update's ``metrics`` (metrics without them, e.g. an external learner's,
        count nothing); ``step`` is the real step, for the error message."""
        for prefix, name in COMPONENTS.items():
            flag = metrics.get(f"{prefix}/skipped_update")
            if flag is None:
                continue
            skipped = self.skipped.get(prefix, 0)
            if not flag:
                self.skipped[prefix], self.consecutive[prefix] = skipped, 0
                continue
            run = self.consecutive.get(prefix, 0) + 1
            self.skipped[prefix], self.consecutive[prefix] = skipped + 1, run
            if self.max_consecutive and run >= self.max_consecutive:
                raise SkippedUpdatesError(
                    f"the {name} skipped its last {run} updates in a row at real step {step} ({skipped + 1} skipped in "
                    "all): its loss or gradient is not finite, so training was stopped rather than go on without "
                    "learning. Check the env's observations and rewards for extreme values, try a lower learning rate "
                    f"or gradient clip, or raise DramaConfig.max_consecutive_skipped_updates (now "
                    f"{self.max_consecutive}; 0 disables this stop)",
                    name,
                    run,
                )

    def scalars(self) -> dict[str, float]:
        """The cumulative counts to log: ``health/<prefix>_skipped_updates`` for each component seen."""
        return {f"health/{prefix}_skipped_updates": float(n) for prefix, n in self.skipped.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": dict(self.skipped), "consecutive": dict(self.consecutive)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.skipped = {str(k): int(v) for k, v in state["skipped"].items()}
        self.consecutive = {str(k): int(v) for k, v in state["consecutive"].items()}


__all__ = ["COMPONENTS", "SkippedUpdatesError", "UpdateHealth"]
