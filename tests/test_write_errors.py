"""An unwritable or full logdir: a clear error naming the path and the OS's reason, and the previous good checkpoint
is never replaced by a partial one."""

from __future__ import annotations

import errno
import os

import pytest

from drama_wm import Drama, DramaConfig, checkpoint
from drama_wm.write_errors import os_error_in


class _FullDisk:
    """A file that takes ``budget`` bytes, then fails as a full disk does."""

    def __init__(self, file, budget: int) -> None:
        self._file, self._budget = file, budget
        self.written = 0

    def write(self, data) -> int:
        room = self._budget - self.written
        if len(data) > room:
            self._file.write(bytes(data[:room]))
            self.written += room
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def _temp_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_full_disk_mid_checkpoint_keeps_the_previous_checkpoint_byte_identical(tmp_path, monkeypatch):
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0)
    agent.learn(70)
    path = agent.save(tmp_path / "checkpoint.pt")
    good = path.read_bytes()
    agent.learn(10)  # the agent moves on; its next checkpoint fails half-way
    real_fdopen = os.fdopen
    monkeypatch.setattr(checkpoint.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), len(good) // 2))
    with pytest.raises(OSError, match="No space left on device") as caught:
        agent.save(path)
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (
        f"[Errno {errno.ENOSPC}] cannot write {path}: No space left on device; the previous checkpoint.pt is "
        "unchanged; free some space or choose another folder"
    )
    assert path.read_bytes() == good
    assert _temp_files(tmp_path) == []
    monkeypatch.undo()
    assert Drama.load(path).num_timesteps == 70  # still the good one


def test_atomic_write_failing_half_way_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old contents")

    def write_half(f) -> None:
        f.write(b"new con")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match=r"cannot write .*data.bin: No space left on device; the previous data.bin"):
        checkpoint.atomic_write(path, write_half)
    assert path.read_bytes() == b"old contents" and _temp_files(tmp_path) == []
    with pytest.raises(ZeroDivisionError):  # errors that are not the file system's pass through unchanged
        checkpoint.atomic_write(path, lambda f: 1 / 0)
    assert path.read_bytes() == b"old contents" and _temp_files(tmp_path) == []


def test_the_os_error_that_torch_save_wraps_is_found():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("unexpected pos 704 vs 598")  # noqa: B904 (what torch's C++ writer raises)
    except RuntimeError as error:
        assert os_error_in(error).errno == errno.ENOSPC
    assert os_error_in(RuntimeError("no file system involved")) is None


def test_a_logdir_under_a_file_fails_at_construction_naming_the_path(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"cannot write the run's scalars .*afile/run/scalars.csv: Not a dir"):
        Drama("CartPole-v1", DramaConfig.tiny(), logdir=tmp_path / "afile" / "run")


def test_a_read_only_logdir_fails_at_construction_and_at_save(tmp_path):
    logdir = tmp_path / "ro"
    logdir.mkdir()
    logdir.chmod(0o555)
    try:
        try:
            (logdir / "probe").touch()
        except PermissionError:
            pass
        else:  # root (with CAP_DAC_OVERRIDE) writes into read-only folders
            (logdir / "probe").unlink()
            pytest.skip("this process ignores file permissions (root)")
        expected = r"cannot write the run's scalars .*ro/scalars.csv: Permission denied; choose a writable folder"
        with pytest.raises(PermissionError, match=expected):
            Drama("CartPole-v1", DramaConfig.tiny(), logdir=logdir)
        agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0)
        with pytest.raises(PermissionError, match=r"cannot write .*ro/checkpoint.pt: Permission denied; no file"):
            agent.save(logdir / "checkpoint.pt")
        assert list(logdir.iterdir()) == []
    finally:
        logdir.chmod(0o755)
