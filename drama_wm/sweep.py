"""Sweeps: every (env, seed, learner, preset, overrides) as a resumable run, executed as Ray tasks.

A run's folder ``DIR/runs/<name>/`` (``name`` is readable and ends in a hash of the settings, so it is stable) holds
``spec.json`` (the settings), its checkpoint every ``checkpoint_every`` steps, ``curve.json`` (the learning curve so
far, written just before each checkpoint) and, once finished, ``result.json``. Every file is written atomically.
Running the same sweep again skips runs with a ``result.json`` and resumes the others from their checkpoint; Ray's
``max_retries`` re-runs a task whose worker died, and the re-run resumes the same way.

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

Only :func:`run_sweep` needs Ray (``pip install drama-wm[sweep]``); this module imports it lazily.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drama_wm import checkpoint

LEARNERS = ("drama", "sb3-ppo-modelfree", "sb3-dqn-modelfree")
PRESETS = ("xs", "s", "tiny", "cpu_demo")
#: eval seeds are the run's seed plus this, so evaluation never replays a training episode's start
EVAL_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class RunSpec:
    """The settings of one run. Baselines ignore ``preset`` and ``overrides`` (they are stored as "-" and ()).

    ``config_digest`` pins what ``preset`` and ``overrides`` meant when the run was made: a hash of the resolved
    ``DramaConfig`` (filled in when left empty; "-" for baselines; "unrecorded" in specs written before it existed).
    It is part of :attr:`name`, so a sweep run again after a preset changed makes new runs instead of taking the old
    ones as finished, and the report refuses to pool the two.
    """

    env: str
    seed: int
    steps: int
    learner: str = "drama"
    preset: str = "cpu_demo"
    overrides: tuple[str, ...] = ()  #: dotted DramaConfig assignments, "sampler.kind=uniform"
    eval_every: int = 1000
    eval_episodes: int = 10
    eval_max_steps: int = 10_000
    checkpoint_every: int = 1000
    config_digest: str = ""

    def __post_init__(self) -> None:
        if self.learner not in LEARNERS:
            raise ValueError(f"unknown learner {self.learner!r}: use one of {', '.join(LEARNERS)}")
        if self.learner == "drama" and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: use one of {', '.join(PRESETS)}")
        for name in ("steps", "eval_every", "eval_episodes", "eval_max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"RunSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint_every < 0:
            raise ValueError(f"RunSpec.checkpoint_every must be >= 0 (0: no intermediate checkpoints), got "
                             f"{self.checkpoint_every}")
        if self.learner != "drama":
            if self.config_digest not in ("", "-"):
                raise ValueError(f"RunSpec.config_digest is for Drama runs; a {self.learner} run has '-'")
            object.__setattr__(self, "config_digest", "-")
            return
        config = self._resolve()  # keys and values fail at sweep time, not inside a worker
        if not self.config_digest:
            object.__setattr__(self, "config_digest", config_digest(config))

    def _resolve(self) -> Any:
        from drama_wm.config import DramaConfig

        return apply_overrides(getattr(DramaConfig, self.preset)(), self.overrides)

    def resolved_config(self) -> Any:
        """The DramaConfig this spec stands for now; an error if the preset no longer resolves to the recorded one."""
        config = self._resolve()
        if self.config_digest != config_digest(config):
            raise ValueError(
                f"run {self.name} was made with another {self.preset} preset (config {self.config_digest}, now "
                f"{config_digest(config)}): this drama_wm's presets differ from the ones the run started with; "
                "finish it with that version, or start the sweep again in another --out"
            )
        return config

    @property
    def setting(self) -> str:
        """What the report compares: the learner, and for Drama its preset and overrides."""
        if self.learner != "drama":
            return self.learner
        return " ".join([f"drama[{self.preset}]", *self.overrides])

    @property
    def name(self) -> str:
        """A stable folder name: env, setting and seed, then a hash of every setting."""
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        readable = f"{self.env.rsplit('/', 1)[-1]}-{self.setting}-s{self.seed}"
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in readable)
        return f"{safe}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overrides"] = list(self.overrides)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        unrecorded = "unrecorded" if d.get("learner", "drama") == "drama" else "-"
        digest = d.get("config_digest", unrecorded)
        return cls(**{**d, "overrides": tuple(d.get("overrides", ())), "config_digest": digest})


def config_digest(config: Any) -> str:
    """12 hex digits of a hash of a DramaConfig's plain data (equal configs, equal digests)."""
    return hashlib.sha1(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def expand(
    envs: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    learners: Sequence[str] = ("drama",),
    preset: str = "cpu_demo",
    overrides: Sequence[str] = (),
    **options: int,
) -> list[RunSpec]:
    """Every (env, learner, seed) combination as a :class:`RunSpec` (``options``: eval_every, eval_episodes,
    eval_max_steps, checkpoint_every). Baselines get no preset or overrides, so the same baseline run is shared by
    sweeps that differ only in Drama's settings.

    Seed-major order: every env and learner of the first seed comes before any run of the second, so a sweep cut
    short leaves whole seeds, the unit ``report`` needs (rliable wants as many runs on every env of a setting)."""
    if not envs or not seeds or not learners:
        raise ValueError("a sweep needs at least one env, one seed and one learner")
    unknown = set(options) - {"eval_every", "eval_episodes", "eval_max_steps", "checkpoint_every"}
    if unknown:
        raise TypeError(f"expand() got unknown options {sorted(unknown)}: eval_every, eval_episodes, eval_max_steps "
                        "or checkpoint_every")
    for env in envs:  # an unknown id fails here, before any run starts, not inside every worker
        for for_drama in sorted({learner == "drama" for learner in learners}):
            make_real_env(env, for_drama).close()
    schedule: dict[str, Any] = dict(options)
    specs: list[RunSpec] = []
    for seed in seeds:
        for env in envs:
            for learner in learners:
                drama = learner == "drama"
                specs.append(
                    RunSpec(
                        env=env,
                        seed=int(seed),
                        steps=steps,
                        learner=learner,
                        preset=preset if drama else "-",
                        overrides=tuple(overrides) if drama else (),
                        **schedule,
                    )
                )
    return list(dict.fromkeys(specs))


# ------------------------------------------------------------------------------------------------------------------
# --set key=value
def _config_fields(obj: Any) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _parse_value(text: str, current: Any, key: str) -> Any:
    """``text`` as a value of the type of ``current`` (JSON for numbers, lists and dicts; words for strings)."""
    if isinstance(current, str):
        return text
    try:
        value = json.loads(text.replace("True", "true").replace("False", "false").replace("None", "null"))
    except json.JSONDecodeError:
        expected = type(current).__name__
        raise ValueError(f"--set {key}={text}: expected a {expected} (JSON syntax), got {text!r}") from None
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"--set {key}={text}: expected true or false")
        return value
    if isinstance(current, int) and not isinstance(value, bool) and isinstance(value, int):
        return value
    if isinstance(current, float) and not isinstance(value, bool) and isinstance(value, (int, float)):
        return float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(current, dict) and isinstance(value, dict):
        return value
    if current is None:
        return value
    raise ValueError(f"--set {key}={text}: expected a {type(current).__name__}, got {type(value).__name__}")


def parse_overrides(assignments: Iterable[str]) -> list[tuple[tuple[str, ...], str]]:
    """``key=value`` strings as (the dotted key split into a path, the value's text); :func:`apply_overrides` checks
    the keys against the config it changes."""
    parsed = []
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value (e.g. sampler.kind=uniform), got {text!r}")
        parsed.append((tuple(key.split(".")), value))
    return parsed


def apply_overrides(config: Any, assignments: Iterable[str]) -> Any:
    """A copy of ``config`` (a DramaConfig) with the dotted ``key=value`` assignments applied and validated.

    A key that names a whole config of a :class:`~drama_wm.config_io.Variant` family takes a kind name:
    ``world_model.backbone=mamba`` makes the backbone the current one as that kind (the kind's defaults at the
    current d_model, n_layers, dropout and d_state, as ``drama-wm train --backbone`` does), ``learner=sb3-ppo`` gives
    that learner's defaults. Kind changes apply before field assignments, so ``world_model.backbone=transformer``
    and ``world_model.backbone.n_heads=4`` combine in either order.
    """
    from drama_wm.config_io import Variant

    def changes_kind(path: tuple[str, ...]) -> bool:
        obj = config
        for part in path:
            obj = getattr(obj, part, None)
        return isinstance(obj, Variant)

    items = parse_overrides(assignments)
    items.sort(key=lambda item: not changes_kind(item[0]))  # stable: kind changes first, then the fields
    for path, text in items:
        key = ".".join(path)
        current = _value_at(config, path)
        if isinstance(current, Variant):
            value = _as_kind(current, text, key)
        elif dataclasses.is_dataclass(current):
            raise ValueError(f"--set {key}: is a whole config; set one of its fields ({key}.<field>)")
        else:
            value = _parse_value(text, current, key)
        config = _replace_at(config, path, value)
    return config


def _value_at(config: Any, path: tuple[str, ...]) -> Any:
    """The value of ``config`` at the dotted ``path``; a ValueError listing the known fields where one is unknown."""
    obj = config
    for i, part in enumerate(path):
        known = _config_fields(obj) if dataclasses.is_dataclass(obj) else {}
        if part not in known:
            where = ".".join(path[:i]) or type(config).__name__
            raise ValueError(
                f"--set {'.'.join(path)}: {where} has no field {part!r}; known: {', '.join(sorted(known)) or 'none'}"
            )
        obj = getattr(obj, part)
    return obj


def _replace_at(config: Any, path: tuple[str, ...], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(config, **{path[0]: value})
    return dataclasses.replace(config, **{path[0]: _replace_at(getattr(config, path[0]), path[1:], value)})


def _as_kind(current: Any, kind: str, key: str) -> Any:
    """``current`` (a Variant config) as the member ``kind`` of its family (see :func:`apply_overrides`)."""
    from drama_wm.config_io import Variant
    from drama_wm.sequence import BackboneConfig

    family = next(c for c in type(current).__mro__ if Variant in c.__bases__ and issubclass(c, Variant))
    if kind not in family.kinds():
        kinds = ", ".join(family.kinds())
        raise ValueError(f"--set {key}={kind}: expected a kind of {family.__name__}, one of {kinds}")
    if isinstance(current, BackboneConfig):
        return current.as_kind(kind)
    return current if kind == current.kind else family.member(kind)()


# ------------------------------------------------------------------------------------------------------------------
# Environments
def resolve_env_id(env: str) -> str:
    """``"module:Id-v0"`` imports ``module`` (which registers the id) and returns ``"Id-v0"``; MinAtar ids are
    registered on first use; other ids are returned unchanged."""
    if ":" in env:
        module, env = env.split(":", 1)
        importlib.import_module(module)
    if env.startswith("MinAtar/"):
        from drama_wm.envs.minatar import register_minatar

        register_minatar()
    return env


def make_real_env(env: str, for_drama: bool, max_episode_steps: int | None = None) -> Any:
    """A fresh env: Drama's view (MinAtar as uint8 frames) or the model-free baselines' (MinAtar as float vectors),
    cut at ``max_episode_steps`` if given."""
    import gymnasium as gym

    env_id = resolve_env_id(env)
    if env_id.startswith("MinAtar/"):
        from drama_wm.envs.minatar import make_minatar, make_minatar_vector

        made = make_minatar(env_id) if for_drama else make_minatar_vector(env_id)
    elif for_drama:
        from drama_wm.env_recipes import make_env

        made = make_env(env_id)
    else:
        made = gym.make(env_id)
    if max_episode_steps is not None:
        made = gym.wrappers.TimeLimit(made, max_episode_steps)
    return made


# ------------------------------------------------------------------------------------------------------------------
# One run
def _write_json(path: Path, data: Any) -> None:
    checkpoint.atomic_write(path, lambda f: f.write(json.dumps(data, indent=1).encode()))


def _read_json(path: Path) -> Any:
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
        if path.exists():
            self.agent = Drama.load(path, device="cpu")
        else:
            config = dataclasses.replace(spec.resolved_config(), checkpoint_every=0)  # the sweep checkpoints itself
            self.agent = Drama(env, config, seed=spec.seed, device="cpu")

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


def _checkpoint_files(folder: Path) -> list[Path]:
    return [folder / n for n in ("checkpoint.pt", "model.zip") if (folder / n).exists()]


def run_one(
    spec: RunSpec, out: str | Path, stop_at: int | None = None, threads: int | None = 1
) -> dict[str, Any] | None:
    """Train, evaluate and checkpoint one run in ``out/runs/<spec.name>``; returns its result (None if ``stop_at``
    ended it early, leaving a checkpoint). A finished run returns its stored result; an unfinished one resumes."""
    folder = Path(out) / "runs" / spec.name
    result_path = folder / "result.json"
    if result_path.exists():
        return _read_json(result_path)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "spec.json"
    if spec_path.exists() and RunSpec.from_dict(_read_json(spec_path)) != spec:
        raise ValueError(f"{folder} holds another run's spec.json: remove the folder or use another --out")
    _write_json(spec_path, spec.to_dict())

    progress = _Progress()
    resuming = bool(_checkpoint_files(folder))
    learner = _make_learner(spec, folder)
    if resuming:
        if (folder / "curve.json").exists():
            progress = _Progress(**_read_json(folder / "curve.json"))
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
        _write_json(folder / "curve.json", dataclasses.asdict(progress))
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
    _write_json(result_path, result)
    for path in (*_checkpoint_files(folder), folder / "replay.pkl"):
        path.unlink(missing_ok=True)  # the result is all that is kept of a finished run
    return result


# ------------------------------------------------------------------------------------------------------------------
# Ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("sweeps need Ray: pip install drama-wm[sweep]") from None
    return ray


def _remote_run(spec_dict: dict[str, Any], out: str) -> dict[str, Any]:
    result = run_one(RunSpec.from_dict(spec_dict), out)
    assert result is not None
    return result


def _merged_specs(path: Path, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
    """The specs recorded in ``path`` by earlier sweeps into the same folder, then ``specs`` (each run once): a
    sweep extended with new settings or seeds keeps the record of every run its folder holds."""
    new = [s.to_dict() for s in specs]
    names = {s.name for s in specs}
    earlier = _read_json(path)["specs"] if path.exists() else []
    return [d for d in earlier if RunSpec.from_dict(d).name not in names] + new


class SweepFailed(RuntimeError):
    """Some runs failed after their retries; the others ran to the end. ``results`` holds the finished runs'
    results (by position in the specs, ``None`` where failed), ``failed`` maps a failed run's name to its error."""

    def __init__(self, out: Path, results: list[dict[str, Any] | None], failed: dict[str, str]) -> None:
        self.results, self.failed = results, failed
        lines = "\n".join(f"  {name}: {error}" for name, error in failed.items())
        super().__init__(
            f"{len(failed)} of {len(results)} runs failed after their retries (the others finished, results in "
            f"{out}):\n{lines}\nfix the cause and run the same sweep again: finished runs are skipped and the failed "
            "ones resume from their last checkpoint"
        )


def run_sweep(
    specs: Sequence[RunSpec],
    out: str | Path,
    address: str | None = None,
    num_cpus: int | None = None,
    max_retries: int = 3,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every spec as a Ray task (one CPU each) and return their results in the order of ``specs``.

    ``address=None`` starts Ray on this machine with ``num_cpus`` CPUs (all by default), so that many runs go at
    once; an address ("auto", "ray://head:10001") joins a cluster. Runs with a ``result.json`` are not started
    again. A task whose worker dies, or that raises, is retried up to ``max_retries`` times and resumes from its
    checkpoint. A run that still fails does not stop the others: once every run has ended, :class:`SweepFailed`
    names the failed ones. ``out`` must be on a file system that every node sees.
    """
    ray = _import_ray()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    pending_specs = []
    for i, spec in enumerate(specs):
        done = out / "runs" / spec.name / "result.json"
        if done.exists():
            results[i] = _read_json(done)
        else:
            pending_specs.append((i, spec))
    _write_json(out / "sweep.json", {"specs": _merged_specs(out / "sweep.json", specs)})
    if pending_specs:
        started_here = not ray.is_initialized()
        if started_here:
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR")
            else:
                ray.init(address=address, logging_level="ERROR")
        try:
            task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=True)(_remote_run)
            refs = {task.remote(spec.to_dict(), str(out)): i for i, spec in pending_specs}
            waiting = list(refs)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                i = refs[ready[0]]
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayError as err:  # the task's own error, or its worker's death, after retries
                    cause = getattr(err, "cause", None) or err
                    first_line = (str(cause).strip().splitlines() or [""])[0]
                    failed[specs[i].name] = f"{type(cause).__name__}: {first_line[:300]}"
                    continue
                results[i] = result
                if on_result is not None:
                    on_result(result)
        finally:
            if started_here:
                ray.shutdown()
    if failed:
        raise SweepFailed(out, [results.get(i) for i in range(len(specs))], failed)
    return [results[i] for i in range(len(specs))]


def load_results(out: str | Path) -> list[dict[str, Any]]:
    """Every finished run's result under ``out`` (``out/runs/*/result.json``)."""
    folder = Path(out) / "runs"
    if not folder.is_dir():
        raise FileNotFoundError(f"{out} holds no sweep (no runs/ folder): run drama-wm sweep --out {out} first")
    return [_read_json(p) for p in sorted(folder.glob("*/result.json"))]


def run_state(out: str | Path, spec: RunSpec) -> str:
    """"finished" (it has a result.json), "started" (its folder exists: it resumes from its last checkpoint, if any)
    or "not started"."""
    folder = Path(out) / "runs" / spec.name
    if (folder / "result.json").exists():
        return "finished"
    return "started" if folder.is_dir() else "not started"


def sweep_progress(out: str | Path) -> list[dict[str, Any]]:
    """Where each run recorded in ``out/sweep.json`` stands, in its order: ``{"name", "setting", "env", "seed",
    "steps", "state", "step", "train_seconds"}`` with state "finished", "started" (``step``: the real steps of its
    last checkpoint, from which it resumes) or "not started"."""
    out = Path(out)
    if not (out / "sweep.json").exists():
        raise FileNotFoundError(f"{out} holds no sweep.json: run drama-wm sweep --out {out} first")
    rows = []
    for d in _read_json(out / "sweep.json")["specs"]:
        spec = RunSpec.from_dict(d)
        folder = out / "runs" / spec.name
        row: dict[str, Any] = {"name": spec.name, "setting": spec.setting, "env": spec.env, "seed": spec.seed,
                               "steps": spec.steps, "state": run_state(out, spec), "step": 0, "train_seconds": 0.0}
        if row["state"] == "finished":
            result = _read_json(folder / "result.json")
            row.update(step=result["steps"], train_seconds=result["train_seconds"])
        elif row["state"] == "started":
            if (folder / "curve.json").exists() and _checkpoint_files(folder):
                progress = _read_json(folder / "curve.json")
                # curve.json files written before checkpoint_step existed: the last evaluation, at most the checkpoint
                step = progress.get("checkpoint_step") or max((p["step"] for p in progress["curve"]), default=0)
                row.update(step=step, train_seconds=progress["train_seconds"])
        rows.append(row)
    return rows


def remove_run(out: str | Path, spec: RunSpec) -> None:
    """Delete a run's folder (to run it again from scratch)."""
    shutil.rmtree(Path(out) / "runs" / spec.name, ignore_errors=True)


__all__ = [
    "LEARNERS",
    "RunSpec",
    "SweepFailed",
    "apply_overrides",
    "expand",
    "load_results",
    "make_real_env",
    "parse_overrides",
    "remove_run",
    "run_one",
    "run_state",
    "run_sweep",
    "sweep_progress",
]
