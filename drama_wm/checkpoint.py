"""Checkpoint files: atomic, checked and safe to load.

A checkpoint is one file::

    b"drama_wm checkpoint\\n"                      magic
    {"format_version": 2}\\n                       header (JSON)
    payload                                       torch.save of plain data and tensors
    b"sha256 " + 64 hex digits + b"\\n"            digest of the payload

- Atomic: written to a temporary file in the target's folder, fsynced, then renamed over the target, so a killed
  run (or a full disk) leaves the previous checkpoint as it was, never a partial one.
- Checked: a changed or missing byte anywhere fails the digest (or the framing) with an error naming the file.
- Safe: the payload holds only tensors and plain data (dict, list, tuple, str, int, float, bool, None, bytes); numpy
  arrays are stored as tensors and come back as arrays. It is loaded with ``torch.load(weights_only=True)``, which
  builds no other objects, so a hostile file cannot run code on load.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from drama_wm.write_errors import os_error_in, write_error

FORMAT_VERSION = 2  #: 1: drama_wm 0.1.0's pickled checkpoints (not loadable safely); 2: drama_wm 0.2.0 on
MAGIC = b"drama_wm checkpoint\n"
_DIGEST_PREFIX = b"sha256 "
_TRAILER_BYTES = len(_DIGEST_PREFIX) + 64 + 1
_ARRAY_KEY = "__ndarray__"  #: how a numpy array is marked in the payload: {"__ndarray__": tensor}


class CheckpointError(ValueError):
    """A file that is not a loadable drama_wm checkpoint: foreign, damaged, unsafe or of another format version."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(file)`` on a temporary file in the target's folder, fsync it, then ``os.replace`` onto ``path``.

    ``os.replace`` is atomic on POSIX and Windows, so a reader sees either the old file or the complete new one; an
    interrupted or failed write (e.g. no space left) leaves the old file and no temporary file behind.
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


def abandoned_writes(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files that :func:`atomic_write` calls to ``path`` left behind when their process was killed
    (SIGKILL, power loss) before it could clean up; only safe to delete while no other process writes ``path``."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def save(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` (tensors, numpy arrays and plain data) to ``path`` atomically; returns the path.

    Anything else in the payload (an object that only pickle could store) is a TypeError naming where it is.
    """
    buffer = io.BytesIO()
    torch.save(_encode(payload, "payload"), buffer)
    body = buffer.getbuffer()
    header = json.dumps({"format_version": FORMAT_VERSION}).encode() + b"\n"
    digest = _DIGEST_PREFIX + hashlib.sha256(body).hexdigest().encode() + b"\n"

    def write(f: IO[bytes]) -> None:
        f.write(MAGIC)
        f.write(header)
        f.write(body)
        f.write(digest)

    return atomic_write(path, write)


def load(path: str | os.PathLike[str], map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """The payload :func:`save` wrote to ``path``, after checking its framing, format version and digest.

    Raises FileNotFoundError for a missing file and :class:`CheckpointError` (a ValueError) for a foreign, damaged,
    unsafe or differently versioned one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if _is_version_1(data):
            raise CheckpointError(
                f"{path} is a checkpoint of format version 1 (drama_wm 0.1.0), which stored pickled objects and "
                f"cannot be loaded safely; this drama_wm reads format version {FORMAT_VERSION}: train again, or load "
                "it with drama_wm 0.1.0 if you trust the file"
            )
        raise CheckpointError(f"{path} is not a drama_wm checkpoint (it does not start with {MAGIC!r})")
    header_end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : header_end])
        version = header["format_version"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path} is damaged: its header is unreadable") from None
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this drama_wm reads version {FORMAT_VERSION}"
            + (": upgrade drama_wm to load it" if newer else "")
        )
    body, trailer = data[header_end + 1 : -_TRAILER_BYTES], data[-_TRAILER_BYTES:]
    expected = _DIGEST_PREFIX + hashlib.sha256(body).hexdigest().encode() + b"\n"
    if len(data) < len(MAGIC) + _TRAILER_BYTES or trailer != expected:
        raise CheckpointError(
            f"{path} is damaged: its sha256 digest does not match its contents (a truncated or altered file); use an "
            "earlier copy or train again"
        )
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as error:  # the unpickler refuses anything but tensors and plain data, in many ways
        raise CheckpointError(
            f"{path} holds data other than tensors and plain values, which drama_wm never writes; refusing to load "
            f"it ({type(error).__name__})"
        ) from None
    return _decode(payload)


def _is_version_1(data: bytes) -> bool:
    """Whether ``data`` is a drama_wm 0.1.0 checkpoint: a torch.save zip whose pickle names the format "drama_wm"
    (its bytes are searched, never unpickled)."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
            return bool(pickles) and b"drama_wm" in archive.read(pickles[0])
    except zipfile.BadZipFile:
        return False


def _encode(value: Any, where: str) -> Any:
    """``value`` with numpy arrays and scalars as tensors and Python numbers; a TypeError for anything unsafe."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{where} is a numpy array of Python objects, which a checkpoint cannot hold")
        return {_ARRAY_KEY: torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if any(not isinstance(k, (str, int)) for k in value):
            raise TypeError(f"{where} has keys other than str and int")
        return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if value is None or isinstance(value, (torch.Tensor, str, bytes, bool, int, float)):
        return value
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoints hold only tensors, numpy arrays and plain data "
        "(state_dict() methods must return those)"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_KEY} and isinstance(value[_ARRAY_KEY], torch.Tensor):
            return value[_ARRAY_KEY].numpy()
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    return value


__all__ = ["FORMAT_VERSION", "CheckpointError", "abandoned_writes", "atomic_write", "load", "save"]
