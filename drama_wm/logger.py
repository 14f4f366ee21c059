"""Run logging: the same scalars to TensorBoard event files and to a CSV (long format: step, name, value)."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class RunLogger:
    """Writes scalars to ``logdir/scalars.csv`` and TensorBoard events in ``logdir``; a no-op without a logdir."""

    def __init__(self, logdir: str | os.PathLike[str] | None) -> None:
        self.logdir = Path(logdir) if logdir is not None else None
        self._writer: SummaryWriter | None = None
        self._csv = None
        self._start = time.time()
        if self.logdir is not None:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(str(self.logdir))
            path = self.logdir / "scalars.csv"
            new = not path.exists()
            self._csv = path.open("a", newline="")
            self._rows = csv.writer(self._csv)
            if new:
                self._rows.writerow(["step", "wall_time", "name", "value"])

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if self._writer is None:
            return
        wall = time.time() - self._start
        for name, value in scalars.items():
            self._writer.add_scalar(name, value, step)
            self._rows.writerow([step, f"{wall:.3f}", name, f"{value:.6g}"])
        self._csv.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._csv.close()
            self._writer = None
