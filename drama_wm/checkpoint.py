"""Atomic checkpoint files: a killed run never leaves a half-written checkpoint behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from drama_wm.write_errors import os_error_in, write_error


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file in the target's folder, fsync it, then ``os.replace`` onto ``path``.

    ``os.replace`` is atomic on POSIX and Windows, so a reader sees either the old file or the complete new one; an
    interrupted write leaves no temporary file behind.
    """
    path = Path(path)
    kept = f"the previous {path.name} is unchanged" if path.exists() else "no file was written"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:  # a read-only or missing folder: name the file, not a temp name
        raise write_error(path, error, kept) from error
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        cause = os_error_in(error)  # e.g. a full disk, which torch.save reports as a RuntimeError
        if cause is None or not isinstance(error, (OSError, RuntimeError)):
            raise
        raise write_error(path, cause, kept) from error
    return path


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def load(path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_save`; a missing or foreign file raises a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    # weights_only=False: checkpoints hold numpy RNG states and config dicts next to tensors; only load files you trust.
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # truncated or foreign files fail in many ways inside unpickling
        raise ValueError(f"{path} is not a drama_wm checkpoint (unreadable: {error})") from error
    if not isinstance(state, dict) or state.get("format") != "drama_wm":
        raise ValueError(f"{path} is not a drama_wm checkpoint")
    return state
