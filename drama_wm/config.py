"""The configuration of a Drama run and its presets (xs, s, tiny, cpu_demo).

Defaults are the paper's (REFERENCE.md, Algorithm 1, Tables 5-8). A config is plain data all the way down:
:meth:`DramaConfig.to_dict` / :meth:`DramaConfig.from_dict` (via :mod:`drama_wm.config_io`) are what checkpoints,
sweeps and the CLI store and read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from drama_wm.checks import int_at_least
from drama_wm.config_io import from_dict, to_dict
from drama_wm.learners import ActorCriticConfig, LearnerConfig
from drama_wm.names import DREAM_TERMINATIONS, PRESETS
from drama_wm.replay import SamplerConfig
from drama_wm.world_model import WorldModelConfig

#: DramaConfig's int fields that must be >= 1 (the others, e.g. warmup_steps and checkpoint_every, may be 0)
_AT_LEAST_ONE = frozenset(
    {"replay_capacity", "batch_size", "sequence_length", "context_length", "horizon", "world_model_every",
     "behaviour_every", "log_every"}
)


@dataclass
class DramaConfig:
    """Everything that shapes a Drama run; defaults are the paper's (REFERENCE.md, Algorithm 1, Tables 5-8)."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig.xs)
    #: the behaviour learner and its settings (its kind names it: "actor-critic" built in, "sb3-ppo", ...)
    learner: LearnerConfig = field(default_factory=ActorCriticConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    replay_capacity: int = 100_000  #: the whole Atari 100k run fits
    batch_size: int = 16  #: b, world-model batch
    sequence_length: int = 128  #: l, world-model sequence length (authors' code; STORM used 64)
    context_length: int = 8  #: l_img, real steps read before dreaming
    horizon: int = 16  #: h, imagined steps
    #: how a dream ends (DreamEnv's ``termination``): "threshold", when the predicted termination probability exceeds
    #: 0.5 (the authors' choice), or "sample", a Bernoulli draw of it. On MinAtar the head was calibrated, yet the
    #: thresholded dreams of three of four games ended 3-7x less often than the real games, drawn ones 0.5-0.8x as
    #: often (BENCHMARKS.md).
    dream_termination: str = "threshold"
    warmup_steps: int = 1032  #: random-action steps before the first update
    world_model_every: int = 1  #: real steps per world-model update (paper: 1)
    behaviour_every: int = 1  #: real steps per behaviour update (paper: 1)
    log_every: int = 1000  #: real steps between log rows
    checkpoint_every: int = 0  #: real steps between checkpoints into the logdir (0: only at the end of learn)
    #: include the replay buffer in checkpoints (needed for exact resume). A run resumed from a checkpoint without
    #: it starts with an empty buffer: it acts with the loaded policy (no random warm-up again) and trains again as
    #: soon as a world-model batch and the learner's imagination starts can be drawn.
    checkpoint_replay: bool = True
    #: False (the authors' behaviour): an Atari life loss is stored as a termination for the learner, but the game,
    #: the replay episode and the recurrent state go on. True: a life loss starts a new episode (first=True, the
    #: backbone state is reset in training, dreaming and acting).
    life_loss_resets: bool = False
    #: on a CUDA device, also keep the replay's observations there so batches are gathered on the GPU (saves about
    #: 37 ms per imagination start at XS on an H100; costs capacity x frame bytes of GPU memory, 1.2 GB for Atari)
    replay_on_device: bool = True
    #: stop with drama_wm.health.SkippedUpdatesError when the world model or the learner skips this many updates in
    #: a row (non-finite loss or gradient); 0 only counts them (logged as health/<component>_skipped_updates)
    max_consecutive_skipped_updates: int = 100

    #: Top-level fields added after sweeps began to record config digests, each with the value that means what a
    #: config without the field meant. :meth:`digest_dict` leaves a field out while it holds that value, so adding an
    #: option does not orphan the runs of a sweep made before it (see :func:`drama_wm.run_spec.config_digest`). A
    #: field added to a nested config would need the same done one level down.
    DIGEST_NEUTRAL: ClassVar[Mapping[str, Any]] = MappingProxyType({"dream_termination": "threshold"})

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type in (int, "int"):  # counts and intervals: ints, at least 1 where 0 would mean nothing
                int_at_least(f"DramaConfig.{f.name}", getattr(self, f.name), 1 if f.name in _AT_LEAST_ONE else 0)
        if self.warmup_steps < self.sequence_length:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be >= sequence_length ({self.sequence_length})"
                " so the first world-model batch can be drawn"
            )
        if self.dream_termination not in DREAM_TERMINATIONS:
            raise ValueError(
                f"DramaConfig.dream_termination must be one of {', '.join(DREAM_TERMINATIONS)}, "
                f"got {self.dream_termination!r}"
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DramaConfig:
        """The preset named ``name`` (one of :data:`drama_wm.names.PRESETS`, each a classmethod below), with
        ``overrides`` of its top-level fields."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
        build: Any = getattr(cls, name)
        config: DramaConfig = build(**overrides)
        return config

    @classmethod
    def xs(cls, **overrides: Any) -> DramaConfig:
        """The paper's agent (about 7M world-model parameters)."""
        return cls(**overrides)

    @classmethod
    def s(cls, **overrides: Any) -> DramaConfig:
        """Paper Sec. A.3: the S world model."""
        return cls(**{"world_model": WorldModelConfig.s(), **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> DramaConfig:
        """Seconds-long runs for tests."""
        base = dict(
            world_model=WorldModelConfig.tiny(),
            learner=ActorCriticConfig.tiny(num_envs=16),
            replay_capacity=5_000,
            batch_size=4,
            sequence_length=16,
            context_length=4,
            horizon=8,
            warmup_steps=64,
            log_every=50,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def cpu_demo(cls, **overrides: Any) -> DramaConfig:
        """The preset that learns CartPole-sized tasks within minutes on a 2-core CPU (see BENCHMARKS.md).

        64 dreams per behaviour update (b_img; the paper's 1024, 256 before issue 13's right-sizing): a real step
        costs 2.2x less than with 256. Over 5 CartPole seeds, 3 reach 475 in 2,000-2,500 steps and 2 stall below it
        (256 dreams: 4 of 5, in 2,500-12,500 steps); BENCHMARKS.md has the runs.
        """
        base = dict(
            world_model=WorldModelConfig.tiny(),
            learner=ActorCriticConfig.tiny(num_envs=64),
            replay_capacity=50_000,
            batch_size=16,
            sequence_length=32,
            context_length=8,
            horizon=16,
            warmup_steps=500,
            world_model_every=2,
            behaviour_every=2,
            log_every=500,
        )
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain data (see :mod:`drama_wm.config_io`): what checkpoints and sweeps store."""
        return to_dict(self)

    def digest_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the :attr:`DIGEST_NEUTRAL` fields that hold their neutral value: what a config
        digest hashes."""
        data = self.to_dict()
        for name, neutral in self.DIGEST_NEUTRAL.items():
            if data.get(name) == neutral:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DramaConfig:
        """The config :meth:`to_dict` describes (missing fields take their defaults; unknown ones are errors)."""
        return from_dict(cls, data)


__all__ = ["DramaConfig"]
