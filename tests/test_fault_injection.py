"""Killed runs (issue 16): SIGKILL at random moments, SIGINT/SIGTERM, and exact resumes.

The kill trials run ``drama-wm train`` (``drama_wm.cli.main``) in processes forked from one pre-imported parent,
tests/train_forker.py, so that a trial costs its training time rather than the seconds of importing torch; the
slow-marked test does the same through the real ``drama-wm`` console script.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from drama_wm.cli import _GracefulStop
from drama_wm.driver import Drama, DramaConfig

STEPS = 240  #: steps of the killed run (tiny preset: 64 random warm-up steps, then about 30 ms per step here)
EVERY = 4  #: --checkpoint-every
TRAIN = ["train", "--env", "CartPole-v1", "--preset", "tiny", "--device", "cpu", "--no-progress"]
TRAIN += ["--seed", "0", "--checkpoint-every", str(EVERY)]
FORKER = Path(__file__).with_name("train_forker.py")


class Forker:
    """Client of tests/train_forker.py: ``start`` forks a ``drama-wm train`` process, ``wait`` gives its exit code."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(FORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def start(self, argv: list[str], log: Path) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
        self.process.stdin.flush()
        return int(json.loads(self.process.stdout.readline())["pid"])

    def wait(self) -> int:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the forker ended"
        return int(json.loads(line)["exit"])

    def run(self, argv: list[str], log: Path) -> int:
        self.start(argv, log)
        return self.wait()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a failed test left a child training: end the forker anyway
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def forker():
    f = Forker()
    yield f
    f.close()


def temp_files(logdir: Path) -> list[Path]:
    """Checkpoint writes in progress (or abandoned by a kill): atomic_write's temporary files."""
    return sorted(logdir.glob(".checkpoint.pt.*.tmp"))


def kill_during_write(pid: int, logdir: Path, writes_to_skip: int, timeout: float = 30) -> bool:
    """SIGKILL ``pid`` as soon as its (writes_to_skip + 1)-th new checkpoint temp file appears; whether it did."""
    seen: set[Path] = set(temp_files(logdir))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [p for p in temp_files(logdir) if p not in seen]
        if new:
            if writes_to_skip == 0:
                os.kill(pid, signal.SIGKILL)
                return True
            writes_to_skip -= 1
            seen.update(new)
        time.sleep(0.0002)
    os.kill(pid, signal.SIGKILL)
    return False


def logged(logdir: Path) -> dict[tuple[int, str], set[str]]:
    """Every value scalars.csv holds per (step, name), time/ columns left out (several, after re-done steps)."""
    values: dict[tuple[int, str], set[str]] = {}
    with (logdir / "scalars.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if not row["name"].startswith("time/"):
                values.setdefault((int(row["step"]), row["name"]), set()).add(row["value"])
    return values


def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint_and_the_run_resumes_exactly(forker, tmp_path):
    rng = random.Random(16)
    logdir, reference = tmp_path / "killed", tmp_path / "reference"
    path = logdir / "checkpoint.pt"
    steps_saved, during_write, abandoned = [], 0, set()
    for trial in range(12):
        argv = [*TRAIN, "--steps", str(STEPS), "--logdir", str(logdir), *(["--resume"] if path.exists() else [])]
        pid = forker.start(argv, tmp_path / f"trial{trial}.log")
        if trial % 2:  # during one of the next checkpoint writes
            during_write += kill_during_write(pid, logdir, writes_to_skip=rng.randrange(3))
        else:  # at any moment, from start-up (loading the checkpoint) to training
            time.sleep(rng.uniform(0.05, 1.2))
            os.kill(pid, signal.SIGKILL)
        assert forker.wait() == -signal.SIGKILL, (tmp_path / f"trial{trial}.log").read_text()
        abandoned.update(temp_files(logdir))  # what a SIGKILL inside a write leaves; the next --resume removes it
        if path.exists():
            agent = Drama.load(path, device="cpu")  # the last checkpoint on disk always loads
            assert agent.num_timesteps % EVERY == 0
            assert not steps_saved or agent.num_timesteps >= steps_saved[-1]
            steps_saved.append(agent.num_timesteps)
    assert during_write == 6 and len(abandoned) >= 3, (during_write, abandoned)  # most kills land inside the write
    assert steps_saved and 0 < steps_saved[-1] < STEPS

    # The resumed run finishes, and every scalar logged by any of the killed runs or the finishing one equals the
    # uninterrupted run's (steps re-done after a kill log the same values again).
    argv = [*TRAIN, "--steps", str(STEPS), "--logdir", str(logdir), "--resume"]
    assert forker.run(argv, tmp_path / "final.log") == 0, (tmp_path / "final.log").read_text()
    assert Drama.load(path, device="cpu").num_timesteps == STEPS and temp_files(logdir) == []
    argv = [*TRAIN, "--steps", str(STEPS), "--logdir", str(reference)]
    assert forker.run(argv, tmp_path / "reference.log") == 0
    want, got = logged(reference), logged(logdir)
    assert set(got) == set(want) and len(want) > 50
    assert {key: values for key, values in got.items() if values != want[key]} == {}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint_and_exit_with_128_plus_the_signal(forker, tmp_path, signum):
    logdir = tmp_path / "run"
    pid = forker.start([*TRAIN, "--steps", "100000", "--logdir", str(logdir)], tmp_path / "log")
    while not (logdir / "checkpoint.pt").exists():  # training has started
        time.sleep(0.01)
    os.kill(pid, signum)
    assert forker.wait() == 128 + signum
    output = (tmp_path / "log").read_text()
    saved = Drama.load(logdir / "checkpoint.pt", device="cpu")
    assert f"stopped by {signal.Signals(signum).name} at step {saved.num_timesteps}" in output
    assert 0 < saved.num_timesteps < 100000 and temp_files(logdir) == []


def test_a_second_signal_during_the_final_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0, device="cpu", logdir=tmp_path)
    agent.learn(3)  # checkpoint.pt at step 3
    save = torch.save

    def interrupted_save(obj, f):
        save(obj, f)
        f.write(b"\0" * 100)
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C arrives while the checkpoint is being written
        time.sleep(1)  # the handler runs here

    with _GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # the first signal: learn() stops after this step and saves
        monkeypatch.setattr(torch, "save", interrupted_save)
        with pytest.raises(KeyboardInterrupt) as aborted:
            agent.learn(100, callback=stop)
    assert aborted.value.signum == signal.SIGINT and stop.signum == signal.SIGTERM
    monkeypatch.undo()
    assert Drama.load(tmp_path / "checkpoint.pt").num_timesteps == 3  # the previous one, intact
    assert sorted(p.name for p in tmp_path.iterdir() if "checkpoint" in p.name) == ["checkpoint.pt"]


# ------------------------------------------------------------------------------------------------- exact resumes
def test_a_run_resumed_from_a_checkpoint_logs_what_the_uninterrupted_run_logs(tmp_path):
    """Train to N with a checkpoint at K (mid-episode, between two log rows) vs load that checkpoint and train
    N - K steps: every logged scalar (time/ aside) is equal, as are the weights and the env's observations."""
    k, n = 75, 130
    config = DramaConfig.tiny(warmup_steps=32, log_every=10, checkpoint_every=k)
    straight = Drama("CartPole-v1", config, seed=1, device="cpu", logdir=tmp_path / "straight")
    copied = []

    def keep_checkpoint(agent: Drama) -> None:
        if agent.num_timesteps == k:
            copied.append(shutil.copy(tmp_path / "straight" / "checkpoint.pt", tmp_path / "k.pt"))

    straight.learn(n, callback=keep_checkpoint)
    resumed = Drama.load(tmp_path / "k.pt", device="cpu", logdir=tmp_path / "resumed")
    assert copied and resumed.num_timesteps == k and resumed.progress.games.current_return > 0  # inside an episode
    resumed.learn(n - k)
    want = {key: v for key, v in logged(tmp_path / "straight").items() if key[0] > k}
    assert logged(tmp_path / "resumed") == want and len(want) > 50
    for a, b in zip(straight.world_model.parameters(), resumed.world_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    replays = straight.replay.state_dict(), resumed.replay.state_dict()
    np.testing.assert_array_equal(replays[0]["observation"], replays[1]["observation"])


@pytest.mark.slow
def test_the_drama_wm_console_script_survives_kills_inside_checkpoint_writes(tmp_path):
    """The same promise through the installed ``drama-wm`` script (each start imports torch again): killed inside
    checkpoint writes, then SIGTERM, then resumed to the end; every checkpoint on disk loads."""
    script = shutil.which("drama-wm") or pytest.skip("the drama-wm console script is not installed")
    logdir = tmp_path / "run"
    path = logdir / "checkpoint.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start() -> subprocess.Popen:
        resume = ["--resume"] if path.exists() else []
        argv = [script, *TRAIN, "--steps", str(STEPS), "--logdir", str(logdir), *resume]
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    rng = random.Random(7)
    for _ in range(4):
        process = start()
        kill_during_write(process.pid, logdir, writes_to_skip=rng.randrange(5))
        assert process.wait(timeout=120) == -signal.SIGKILL
        assert Drama.load(path, device="cpu").num_timesteps % EVERY == 0
    left = set(temp_files(logdir))  # by the last kill; the resumed run removes them once it has loaded
    process = start()
    while not set(temp_files(logdir)) - left and process.poll() is None:  # SIGTERM inside a periodic write
        time.sleep(0.0002)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    assert Drama.load(path, device="cpu").num_timesteps < STEPS
    process = start()
    assert process.wait(timeout=300) == 0
    assert Drama.load(path, device="cpu").num_timesteps == STEPS and temp_files(logdir) == []
