"""Clear errors for files a run cannot write (a read-only or full logdir): the path, the OS's reason, what to do.

Serialisers hide the OS error: ``torch.save`` into a file whose ``write`` fails with "No space left on device"
raises a ``RuntimeError("... unexpected pos ...")`` whose ``__context__`` is the real ``OSError``.
:func:`os_error_in` finds it, and :func:`write_error` turns it into an ``OSError`` with the same ``errno`` (so
``PermissionError``, ``errno.ENOSPC`` checks still work) and a message a user can act on.
"""

from __future__ import annotations

import errno
import os

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def os_error_in(error: BaseException) -> OSError | None:
    """The first ``OSError`` among ``error`` and the exceptions it was raised from or during, or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def write_error(path: str | os.PathLike[str], error: OSError, outcome: str = "", what: str = "") -> OSError:
    """An ``OSError`` (same errno, hence the same subclass) saying that ``path`` (``what``, e.g. "the run's logs")
    could not be written, why (the OS's reason), ``outcome`` (e.g. "the previous checkpoint.pt is unchanged") and
    what to do."""
    reason = error.strerror or str(error)
    if error.errno in _FULL:
        advice = "free some space or choose another folder"
    elif error.errno in _DENIED:
        advice = "choose a writable folder or change its permissions"
    else:
        advice = "check the folder"
    target = f"{what} {os.fspath(path)}" if what else os.fspath(path)
    message = f"cannot write {target}: {reason}; {outcome + '; ' if outcome else ''}{advice}"
    return OSError(error.errno, message) if error.errno is not None else OSError(message)


__all__ = ["os_error_in", "write_error"]
