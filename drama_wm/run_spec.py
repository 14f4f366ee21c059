"""What a sweep runs: :class:`RunSpec` (one run's settings, with a stable name), :func:`expand` (every combination
of envs, seeds and learners) and the env ids a spec may name.

Learners: ``drama`` (a ``DramaConfig`` preset with dotted ``--set`` overrides, :mod:`drama_wm.overrides`) and the
model-free baselines ``sb3-ppo-modelfree`` / ``sb3-dqn-modelfree`` (see :mod:`drama_wm.sweep_run`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from drama_wm.names import PRESETS
from drama_wm.names import SWEEP_LEARNERS as LEARNERS
from drama_wm.overrides import apply_overrides

#: The config_digest of a spec (Drama or baseline) written before digests existed.
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class RunSpec:
    """The settings of one run. Baselines ignore ``preset`` and ``overrides`` (they are stored as "-" and ()).

    ``config_digest`` pins what ``preset`` and ``overrides`` meant when the run was made: a hash of the resolved
    ``DramaConfig`` (filled in when left empty; "-" for baselines; "unrecorded" in specs written before it existed,
    which keep their old :attr:`name` and can never be resumed as a Drama run).
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
            if self.config_digest not in ("", "-", UNRECORDED):
                raise ValueError(f"RunSpec.config_digest is for Drama runs; a {self.learner} run has '-'")
            if self.config_digest != UNRECORDED:
                object.__setattr__(self, "config_digest", "-")
            return
        config = self._resolve()  # keys and values fail at sweep time, not inside a worker
        if not self.config_digest:
            object.__setattr__(self, "config_digest", config_digest(config))

    def _resolve(self) -> Any:
        from drama_wm.config import DramaConfig

        return apply_overrides(DramaConfig.preset(self.preset), self.overrides)

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
        """A stable folder name: env, setting and seed, then a hash of every setting. A spec written before
        ``config_digest`` existed ("unrecorded") keeps the name it was given then, hashed without that field, so its
        finished run is still found."""
        settings = self.to_dict()
        if self.config_digest == UNRECORDED:
            del settings["config_digest"]
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        readable = f"{self.env.rsplit('/', 1)[-1]}-{self.setting}-s{self.seed}"
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in readable)
        return f"{safe}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overrides"] = list(self.overrides)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        digest = d.get("config_digest", UNRECORDED)
        return cls(**{**d, "overrides": tuple(d.get("overrides", ())), "config_digest": digest})


def config_digest(config: Any) -> str:
    """12 hex digits of a hash of a DramaConfig's plain data, :meth:`~drama_wm.DramaConfig.digest_dict` (equal
    configs, equal digests; an option added later, at the value that keeps the old behaviour, changes no digest)."""
    return hashlib.sha1(json.dumps(config.digest_dict(), sort_keys=True).encode()).hexdigest()[:12]


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


__all__ = ["LEARNERS", "PRESETS", "RunSpec", "config_digest", "expand", "make_real_env", "resolve_env_id"]
