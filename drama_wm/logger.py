"""Run logging: the same scalars to TensorBoard event files and to a CSV (long format: step, name, value).

:class:`RunLogger` writes each scalar into every folder it was given. :class:`~drama_wm.Drama` gives it its
``logdir`` (the run's folder, which also holds ``checkpoint.pt``; a resumed run appends to its ``scalars.csv``) and,
when ``tensorboard_log`` is set, a new numbered folder per ``learn()`` call (stable-baselines3's convention, see
:func:`next_run_dir`). It also has the ``record`` / ``dump`` pair of stable-baselines3's ``Logger``, so SB3
callbacks such as ``EvalCallback`` log through it.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import IO, Any

from torch.utils.tensorboard import SummaryWriter

from drama_wm.write_errors import write_error

PathLike = str | os.PathLike[str]


def next_run_dir(root: PathLike, name: str) -> Path:
    """``root/<name>_<n>`` with n one more than the largest existing ``<name>_<k>`` (1 in a new folder)."""
    root = Path(root)
    pattern = re.compile(rf"{re.escape(name)}_(\d+)")
    names = [p.name for p in root.iterdir()] if root.is_dir() else []
    taken = [int(m.group(1)) for n in names if (m := pattern.fullmatch(n))]
    return root / f"{name}_{max(taken, default=0) + 1}"


def open_scalars(folder: Path) -> IO[str]:
    """``folder/scalars.csv`` opened for appending, with its header when new; an OSError naming the file and the
    reason when the folder cannot be written (read-only, under a file, full disk)."""
    path = folder / "scalars.csv"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # An empty file is new too: a run killed before its first row was written leaves one behind.
        new = not path.exists() or path.stat().st_size == 0
        file = path.open("a", newline="")
        if new:
            csv.writer(file).writerow(["step", "wall_time", "name", "value"])
            file.flush()
    except OSError as error:
        raise write_error(path, error, what="the run's scalars") from error
    return file


class RunLogger:
    """Writes scalars to ``<folder>/scalars.csv`` and TensorBoard events in each folder; a no-op without folders.

    Args:
        logdir: one folder, several folders, or None (nothing is written).
    """

    def __init__(self, logdir: PathLike | Sequence[PathLike] | None) -> None:
        if logdir is None:
            folders: list[Path] = []
        elif isinstance(logdir, (str, os.PathLike)):
            folders = [Path(logdir)]
        else:
            folders = [Path(p) for p in logdir]
        self.logdirs = folders
        self.logdir = folders[0] if folders else None  #: the first folder (None without folders)
        self._sinks: list[tuple[SummaryWriter, IO[str], Any]] = []
        self._start = time.time()
        self._pending: dict[str, float] = {}
        for folder in folders:
            file = open_scalars(folder)
            self._sinks.append((SummaryWriter(str(folder)), file, csv.writer(file)))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        wall = time.time() - self._start
        for writer, file, rows in self._sinks:
            try:
                for name, value in scalars.items():
                    writer.add_scalar(name, value, step)
                    rows.writerow([step, f"{wall:.3f}", name, f"{value:.6g}"])
                file.flush()
            except OSError as error:  # e.g. the disk filled up during the run
                raise write_error(file.name, error, what="the run's scalars") from error

    # stable-baselines3's Logger interface (what its callbacks call)
    def record(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        """Keep a scalar until the next :meth:`dump` (non-numeric values, e.g. SB3's videos, are ignored)."""
        if isinstance(value, Real) and not isinstance(value, bool):
            self._pending[key] = float(value)

    def record_mean(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        self.record(key, value, exclude)

    def dump(self, step: int = 0) -> None:
        """Write the scalars recorded since the last dump at ``step``."""
        pending, self._pending = self._pending, {}
        if pending:
            self.log(step, pending)

    def close(self) -> None:
        for writer, file, _ in self._sinks:
            writer.close()
            file.close()
        self._sinks = []
