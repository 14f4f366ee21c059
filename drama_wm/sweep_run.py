"""One resumable run of a sweep: train, evaluate and checkpoint a :class:`~drama_wm.run_spec.RunSpec` in its own
folder (:func:`run_one`).

A run's folder ``DIR/runs/<name>/`` (``name`` is readable and ends in a hash of the settings, so it is stable) holds
``spec.json`` (the settings), its checkpoint every ``checkpoint_every`` steps, ``curve.json`` (the learning curve and
training time so far, written just before each checkpoint) and, once finished, ``result.json``. Every file is written
atomically. A run with a ``result.json`` is not run again; any other resumes from its checkpoint. A Drama run also
logs its training scalars there (``scalars.csv`` and TensorBoard events, every ``log_every`` steps; a resumed run
appends, so the steps between its checkpoint and the kill appear twice, the later rows being the ones that count).
Finished runs keep everything but their checkpoints.

Learners:

- ``drama``: :class:`~drama_wm.Drama` with a ``DramaConfig`` preset and dotted ``--set`` overrides (resumes exactly
  from ``checkpoint.pt``, replay buffer included).
- ``sb3-ppo-modelfree`` / ``sb3-dqn-modelfree``: stable-baselines3 PPO / DQN with ``MlpPolicy`` on the real env
  (MinAtar grids flattened to float vectors of 0/1: SB3's ``NatureCNN`` needs frames of at least 36x36, so its
  ``CnnPolicy`` does not fit 10x10). PPO uses SB3's defaults; DQN SB3's defaults except a replay of
  min(steps, 100k), learning from step min(1000, steps / 10) and a target update every 1000 steps (SB3's 10k would
  leave short runs with a stale target). They resume from ``model.zip`` (DQN: also ``replay.pkl``) in a new
  episode of the env; a PPO rollout cut by a crash is collected again.

Evaluation (every ``eval_every`` real steps and at the end): ``eval_episodes`` whole episodes with the deterministic
policy on a fresh env seeded ``seed + 10000``, each cut at ``eval_max_steps`` steps (a deterministic MinAtar policy
can stall forever, e.g. staying at the surface in Seaquest).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drama_wm import checkpoint
from drama_wm.run_spec import RunSpec, make_real_env, resolve_env_id

#: eval seeds are the run's seed plus this, so evaluation never replays a training episode's start
EVAL_SEED_OFFSET = 10_000


def write_json(path: Path, data: Any) -> None:
    """``data`` as JSON in ``path``, written atomically (a killed run never leaves half a file)."""
    checkpoint.atomic_write(path, lambda f: f.write(json.dumps(data, indent=1).encode()))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass
class _Progress:
    """What a run carries across a resume besides the learner's own checkpoint."""

    curve: list[dict[str, Any]] = field(default_factory=list)  # {"step", "mean", "returns"}
    resumed_from: list[int] = field(default_factory=list)  # the step of each resume
    checkpoint_step: int = 0  # the real steps in the checkpoint this file goes with
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


class _Learner:
    """The common face of Drama and the SB3 baselines inside a run."""

    num_timesteps: int

    def train_until(self, step: int, on_step: Callable[[int], bool]) -> None:
        raise NotImplementedError

    def evaluate(self, episodes: int, seed: int, max_steps: int) -> list[float]:
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        raise NotImplementedError

    def train_episodes(self) -> list[dict[str, float]]:
        return []


class _DramaRun(_Learner):
    def __init__(self, spec: RunSpec, folder: Path) -> None:
        from drama_wm.driver import Drama

        self.spec = spec
        path = folder / "checkpoint.pt"
        env = resolve_env_id(spec.env)
        # The run's folder is the agent's logdir: its training scalars (world-model losses, imagined reward, entropy)
        # go to scalars.csv and TensorBoard events beside the checkpoint, and a resumed run appends to them.
        if path.exists():
            self.agent = Drama.load(path, device="cpu", logdir=folder)
        else:
            config = dataclasses.replace(spec.resolved_config(), checkpoint_every=0)  # the sweep checkpoints itself
            self.agent = Drama(env, config, seed=spec.seed, device="cpu", logdir=folder)

    @property
    def num_timesteps(self) -> int:  # type: ignore[override]
        return self.agent.num_timesteps

    def train_until(self, step: int, on_step: Callable[[int], bool]) -> None:
        todo = step - self.agent.num_timesteps
        self.agent.learn(todo, callback=lambda agent: on_step(agent.num_timesteps), progress_bar=False)

    def evaluate(self, episodes: int, seed: int, max_steps: int) -> list[float]:
        spec = self.spec
        env = make_real_env(spec.env, True, max_steps)
        # Drama.evaluate seeds its env with its own seed + 10000, which is this run's evaluation seed
        return list(self.agent.evaluate(episodes, deterministic=True, env=env)["returns"])

    def save(self, folder: Path) -> None:
        self.agent.save(folder / "checkpoint.pt")

    def train_episodes(self) -> list[dict[str, float]]:
        return list(self.agent.episodes)


class _SB3Run(_Learner):
    def __init__(self, spec: RunSpec, folder: Path) -> None:
        try:
            import stable_baselines3 as sb3
            from stable_baselines3.common.callbacks import BaseCallback
        except ImportError:
            raise ImportError(f"learner {spec.learner} needs stable-baselines3: pip install drama-wm[sb3]") from None
        self.spec = spec
        self._callback_base = BaseCallback
        env = make_real_env(spec.env, for_drama=False)
        self.dqn = spec.learner == "sb3-dqn-modelfree"
        algo = sb3.DQN if self.dqn else sb3.PPO
        model_path = folder / "model.zip"
        if model_path.exists():
            self.model = algo.load(model_path, env=env, device="cpu")
            if isinstance(self.model, sb3.DQN) and (folder / "replay.pkl").exists():  # i.e. self.dqn
                self.model.load_replay_buffer(folder / "replay.pkl")
        else:
            kwargs: dict[str, Any] = {}
            if self.dqn:
                kwargs = dict(
                    buffer_size=min(spec.steps, 100_000),
                    learning_starts=min(1000, spec.steps // 10),
                    target_update_interval=1000,
                )
            self.model = algo("MlpPolicy", env, seed=spec.seed, device="cpu", verbose=0, **kwargs)

    @property
    def num_timesteps(self) -> int:  # type: ignore[override]
        return int(self.model.num_timesteps)

    def train_until(self, step: int, on_step: Callable[[int], bool]) -> None:
        base = self._callback_base

        class _Hook(base):  # type: ignore[misc, valid-type]
            def _on_step(hook) -> bool:
                return on_step(int(hook.model.num_timesteps)) is not False

        # SB3 counts a vector step as n_envs steps; with its one env the counter is the real-step count.
        self.model.learn(step - self.num_timesteps, callback=_Hook(), reset_num_timesteps=False, progress_bar=False)

    def evaluate(self, episodes: int, seed: int, max_steps: int) -> list[float]:
        env = make_real_env(self.spec.env, False, max_steps)
        returns: list[float] = []
        obs, _ = env.reset(seed=seed)
        total = 0.0
        while len(returns) < episodes:
            action, _ = self.model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            if terminated or truncated:
                returns.append(total)
                total = 0.0
                obs, _ = env.reset()
        env.close()
        return returns

    def save(self, folder: Path) -> None:
        def via_temp(target: Path, write: Callable[[Path], None]) -> None:
            tmp = target.with_name(f".{target.name}.tmp")
            write(tmp)
            os.replace(tmp, target)

        if self.dqn:  # the buffer first: a model.zip never pairs with an older buffer than its own
            from stable_baselines3 import DQN

            dqn = self.model
            assert isinstance(dqn, DQN)  # self.dqn: built (or loaded) as one
            via_temp(folder / "replay.pkl", lambda p: dqn.save_replay_buffer(p))
        via_temp(folder / "model.zip", lambda p: self.model.save(p))


def _make_learner(spec: RunSpec, folder: Path) -> _Learner:
    return _DramaRun(spec, folder) if spec.learner == "drama" else _SB3Run(spec, folder)


def checkpoint_files(folder: Path) -> list[Path]:
    """The learner checkpoints in a run's folder (Drama's ``checkpoint.pt`` or SB3's ``model.zip``)."""
    return [folder / n for n in ("checkpoint.pt", "model.zip") if (folder / n).exists()]


def run_one(
    spec: RunSpec, out: str | Path, stop_at: int | None = None, threads: int | None = 1
) -> dict[str, Any] | None:
    """Train, evaluate and checkpoint one run in ``out/runs/<spec.name>``; returns its result (None if ``stop_at``
    ended it early, leaving a checkpoint). A finished run returns its stored result; an unfinished one resumes."""
    folder = Path(out) / "runs" / spec.name
    result_path = folder / "result.json"
    if result_path.exists():
        return read_json(result_path)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "spec.json"
    if spec_path.exists() and RunSpec.from_dict(read_json(spec_path)) != spec:
        raise ValueError(f"{folder} holds another run's spec.json: remove the folder or use another --out")
    write_json(spec_path, spec.to_dict())

    progress = _Progress()
    resuming = bool(checkpoint_files(folder))
    learner = _make_learner(spec, folder)
    if resuming:
        if (folder / "curve.json").exists():
            progress = _Progress(**read_json(folder / "curve.json"))
        done = learner.num_timesteps
        # curve.json is written before the checkpoint: drop evaluations after the checkpoint's step (redone below)
        progress.curve = [point for point in progress.curve if point["step"] <= done]
        progress.resumed_from.append(done)

    evaluated = {point["step"] for point in progress.curve}
    end = spec.steps if stop_at is None else min(stop_at, spec.steps)
    since = time.perf_counter()  # training time since then is not yet in progress.train_seconds

    def count_training() -> None:
        nonlocal since
        now = time.perf_counter()
        progress.train_seconds += now - since
        since = now

    def save() -> None:
        count_training()  # a checkpoint carries the training time up to it, so a killed run's resume keeps it
        progress.checkpoint_step = learner.num_timesteps
        write_json(folder / "curve.json", dataclasses.asdict(progress))
        learner.save(folder)

    def evaluate(step: int) -> None:
        nonlocal since
        count_training()
        returns = learner.evaluate(spec.eval_episodes, spec.seed + EVAL_SEED_OFFSET, spec.eval_max_steps)
        progress.curve.append({"step": step, "mean": float(np.mean(returns)), "returns": returns})
        evaluated.add(step)
        now = time.perf_counter()
        progress.eval_seconds += now - since
        since = now

    def on_step(step: int) -> bool:
        # Called inside the learner's loop after each real step (a consistent state to evaluate and save in; PPO
        # keeps its rollout going). Returning False ends training at `end`.
        if step % spec.eval_every == 0 and step not in evaluated:
            evaluate(step)
        if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < end:
            save()
        return step < end

    if learner.num_timesteps < end:
        since = time.perf_counter()
        learner.train_until(end, on_step)
        count_training()
    if learner.num_timesteps < spec.steps:
        save()
        return None
    if learner.num_timesteps not in evaluated:
        evaluate(learner.num_timesteps)
    result = {
        "spec": spec.to_dict(),
        "setting": spec.setting,
        "name": spec.name,
        "steps": learner.num_timesteps,
        "final_return": progress.curve[-1]["mean"],
        "curve": progress.curve,
        "train_episodes": learner.train_episodes(),
        "resumed_from": progress.resumed_from,
        "train_seconds": progress.train_seconds,
        "eval_seconds": progress.eval_seconds,
    }
    write_json(result_path, result)
    for path in (*checkpoint_files(folder), folder / "replay.pkl"):
        path.unlink(missing_ok=True)  # the result is all that is kept of a finished run
    return result


__all__ = ["EVAL_SEED_OFFSET", "checkpoint_files", "read_json", "run_one", "write_json"]
