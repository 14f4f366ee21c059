"""The Drama agent: paper Algorithm 1 as a driver with a stable-baselines3-style API.

Each real step: act through :class:`~drama_wm.LatentObservation` (O(1) per step; random actions during warm-up),
store the transition, then, once warm, update the world model on a DFS batch every ``world_model_every`` steps and
let the behaviour learner learn in :class:`~drama_wm.DreamEnv` every ``behaviour_every`` steps (the train ratio).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import pickle
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from drama_wm import checkpoint
from drama_wm.allocator import keep_freed_memory
from drama_wm.dream_env import DreamEnv
from drama_wm.env_checks import CheckEnvData
from drama_wm.envs.scores import human_normalized_score, is_atari_100k_game
from drama_wm.health import UpdateHealth
from drama_wm.latent_observation import LatentObservation
from drama_wm.learners import BehaviourLearner
from drama_wm.learners.actor_critic import ActorCritic, ActorCriticConfig
from drama_wm.logger import RunLogger, next_run_dir
from drama_wm.observations import AdaptObservation, observation_adapter
from drama_wm.replay import ReplayBuffer, SamplerConfig
from drama_wm.world_model import RecurrentState, WorldModel, WorldModelConfig

EnvSpec = gym.Env | str | Callable[[], gym.Env]
#: ``learn(callback=...)``: ``f(agent) -> bool | None``, a stable-baselines3 ``BaseCallback``, or a list of them
LearnCallback = Callable[["Drama"], bool | None] | Any

_log = logging.getLogger("drama_wm")


@dataclass
class DramaConfig:
    """Everything that shapes a Drama run; defaults are the paper's (REFERENCE.md, Algorithm 1, Tables 5-8)."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig.xs)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    replay_capacity: int = 100_000  #: the whole Atari 100k run fits
    batch_size: int = 16  #: b, world-model batch
    sequence_length: int = 128  #: l, world-model sequence length (authors' code; STORM used 64)
    context_length: int = 8  #: l_img, real steps read before dreaming
    horizon: int = 16  #: h, imagined steps
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

    def __post_init__(self) -> None:
        if type(self.max_consecutive_skipped_updates) is not int:
            got = self.max_consecutive_skipped_updates
            raise TypeError(f"DramaConfig.max_consecutive_skipped_updates must be an int (0 disables), got {got!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"DramaConfig.{f.name} must be >= 0, got {value}")
        for name in (
            "batch_size",
            "sequence_length",
            "context_length",
            "horizon",
            "world_model_every",
            "behaviour_every",
            "log_every",
            "replay_capacity",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DramaConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < self.sequence_length:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be >= sequence_length ({self.sequence_length})"
                " so the first world-model batch can be drawn"
            )

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
            actor_critic=ActorCriticConfig.tiny(num_envs=16),
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
        """The preset that learns CartPole-sized tasks within minutes on a 2-core CPU (see BENCHMARKS.md)."""
        base = dict(
            world_model=WorldModelConfig.tiny(),
            actor_critic=ActorCriticConfig.tiny(num_envs=256),
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
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DramaConfig:
        tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in d["world_model"].items()}
        rest = {k: v for k, v in d.items() if k not in ("world_model", "actor_critic", "sampler")}
        return cls(
            world_model=WorldModelConfig(**tuples),
            actor_critic=ActorCriticConfig(**d["actor_critic"]),
            sampler=SamplerConfig(**d["sampler"]),
            **rest,
        )


def make_env(env: EnvSpec, seed: int | None = None) -> gym.Env:
    """An env instance from an instance, a factory, or an id (ALE ids and Atari game names go through make_atari).

    ``"module:EnvId"`` imports ``module`` first (Gymnasium's ``gym.make`` convention), so envs it registers work.
    """
    if isinstance(env, gym.Env):
        return env
    if callable(env):
        return env()
    if isinstance(env, str):
        if env.startswith("MinAtar/"):  # 10x10 boolean grids as uint8 0/255 frames (pip install drama-wm[minatar])
            from drama_wm.envs.minatar import make_minatar

            return make_minatar(env)
        from drama_wm.envs import make_atari  # also registers drama_wm/GridWorld-v0 and drama_wm/Catch-v0
        from drama_wm.envs.atari import atari_game_names, is_atari_game

        if ":" in env:
            module = env.split(":", 1)[0]
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                raise ValueError(
                    f"cannot import {module!r} for env {env!r} ({err}): 'module:EnvId' imports module, which must "
                    "register EnvId with gymnasium.register; check the module is on the Python path"
                ) from None
            return gym.make(env)  # the id the module registered
        # ALE ids, legacy NoFrameskip ids and bare game names ("Pong") get the Atari 100k protocol.
        if env.startswith("ALE/") or "NoFrameskip" in env:
            return make_atari(env, seed=seed)
        if env in gym.registry:
            return gym.make(env)
        if is_atari_game(env):
            return make_atari(env, seed=seed)
        close = difflib.get_close_matches(env, [*gym.registry, *atari_game_names()], n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown environment {env!r}: expected a registered Gymnasium id (e.g. 'CartPole-v1'), an Atari game "
            f"(e.g. 'Pong' or 'ALE/Pong-v5') or 'module:EnvId' for an env your module registers{hint}"
        )
    raise TypeError(f"env must be a gymnasium.Env, an env id or a zero-argument factory, got {type(env).__name__}")


def env_recipe(env: EnvSpec, instance: gym.Env | None = None) -> dict[str, Any] | None:
    """How to build ``env`` again, for checkpoints: ``{"id": ...}`` for ids, ``{"make_atari": kwargs}`` for
    :func:`~drama_wm.envs.make_atari` envs, ``{"gym_spec": bytes}`` (the pickled ``EnvSpec``; its JSON would turn
    wrapper arguments' tuples into lists) for envs whose Gymnasium spec, wrappers included, can be made again; None
    when it cannot be rebuilt (then ``load`` and ``evaluate`` need ``env=``)."""
    if isinstance(env, str):
        return {"id": env}
    instance = env if isinstance(env, gym.Env) else instance
    if instance is None:
        return None
    atari = getattr(instance, "make_atari_args", None)
    if isinstance(atari, dict):
        return {"make_atari": dict(atari)}
    try:
        spec = instance.spec
        if spec is None:
            return None
        spec.to_json()  # raises for wrappers that did not record their arguments, so cannot be made again
        return {"gym_spec": pickle.dumps(spec)}
    except Exception:  # wrappers without recorded arguments, entry points that are not import paths, ...
        return None


def make_env_from_recipe(recipe: dict[str, Any], seed: int | None = None) -> gym.Env:
    """The env :func:`env_recipe` describes."""
    if "id" in recipe:
        return make_env(recipe["id"], seed)
    if "make_atari" in recipe:
        from drama_wm.envs import make_atari

        args = dict(recipe["make_atari"])
        return make_atari(args.pop("game"), seed=seed, **args)
    if "gym_spec" in recipe:
        return gym.make(pickle.loads(recipe["gym_spec"]))
    raise ValueError(f"unknown env recipe {recipe!r}: expected a key 'id', 'make_atari' or 'gym_spec'")


class Drama:
    """Drama: learn a world model from real data and a behaviour policy inside it.

    Args:
        env: the real environment (instance, id such as "CartPole-v1" / "ALE/Pong-v5" / "Pong", or factory).
            Observations: uint8 HxWxC images or float vectors; actions: Discrete.
        config: a :class:`DramaConfig` (``DramaConfig.xs()`` by default).
        learner: "actor-critic" (built in) or any :class:`~drama_wm.learners.BehaviourLearner` instance.
        seed: seeds torch, the action sampler, the replay buffer, the env and the dreams.
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        logdir: the run's folder: ``checkpoint.pt`` (written at the end of every ``learn()`` and every
            ``config.checkpoint_every`` steps), TensorBoard events and ``scalars.csv``; later ``learn()`` calls and
            resumed runs append to them (nothing is written without it).
        tensorboard_log: stable-baselines3's convention: each ``learn()`` writes its scalars (TensorBoard events and
            ``scalars.csv``) to a new folder ``<tensorboard_log>/<tb_log_name>_<n>``. No checkpoints go there.
            With both set, scalars go to both.
        verbose: 0 prints nothing; 1 prints the observation adaptation (if any) and a line per log row.

    Image observations that the world model does not take as they are (other sizes, grey frames without a channel
    axis, channel-first frame stacks) are adapted in one place, :mod:`drama_wm.observations`, for training,
    evaluation and ``predict`` alike; ``observation_adapter`` says how (None when nothing is adapted).
    """

    def __init__(
        self,
        env: EnvSpec,
        config: DramaConfig | None = None,
        learner: str | BehaviourLearner = "actor-critic",
        seed: int | None = None,
        device: str | torch.device = "auto",
        logdir: str | Path | None = None,
        tensorboard_log: str | Path | None = None,
        verbose: int = 0,
    ) -> None:
        self.config = config = config or DramaConfig.xs()
        self.seed = seed
        self.device = (
            torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
        )
        if self.device.type == "cpu":
            keep_freed_memory()  # page faults on fresh tensor memory cost as much as the arithmetic on CPU
        self.env_spec = env if isinstance(env, str) else None
        if seed is not None:
            torch.manual_seed(seed)
        real_env = make_env(env, seed)
        self.env_recipe = env_recipe(env, real_env)
        # Atari 100k games also log the human-normalised score (paper Table 1's random and human scores).
        game = self.env_name
        self._atari_game = game if game is not None and is_atari_100k_game(game) else None
        self.observation_adapter = observation_adapter(real_env.observation_space, config.world_model.image_size)
        if self.observation_adapter is not None:
            _log.info("drama_wm: %s", self.observation_adapter.describe())
            if verbose >= 1:
                print(f"drama_wm: {self.observation_adapter.describe()}")
        raw_env = self._adapt(CheckEnvData(real_env, lambda: self.num_timesteps))  # bad data: EnvDataError
        self.world_model = WorldModel(raw_env.observation_space, raw_env.action_space, config.world_model).to(
            self.device
        )
        self.replay = ReplayBuffer(
            raw_env.observation_space,
            raw_env.action_space,
            config.replay_capacity,
            sampler=config.sampler,
            seed=seed,
            device=self.device if config.replay_on_device and self.device.type == "cuda" else None,
        )
        self.learner_name, self.learner = _resolve_learner(learner, config)
        self.dream = DreamEnv(
            self.world_model,
            self.replay,
            context_length=config.context_length,
            horizon=config.horizon,
            device=self.device,
            seed=None if seed is None else seed + 1,
            **self.learner.dream_options,
        )
        self.learner.bind(self.dream)
        self.env = LatentObservation(raw_env, self.world_model, continue_on_life_loss=not config.life_loss_resets)
        self._real_env = real_env  # what checkpoints pickle: the env as given, before any adaptation
        self.logdir = Path(logdir) if logdir is not None else None
        self.tensorboard_log = Path(tensorboard_log) if tensorboard_log is not None else None
        self.logger = RunLogger(self.logdir)
        self.run_dir: Path | None = None  #: the numbered folder of the last learn() under tensorboard_log
        self._predict_generator = torch.Generator(device=self.device)
        if seed is not None:
            self._predict_generator.manual_seed(seed + 2)
        self.num_timesteps = 0
        self._steps_before_reset = 0  # steps taken before learn(reset_num_timesteps=True) restarted the count
        self.verbose = verbose
        self.episodes: list[dict[str, float]] = []  # finished real games: return, length, step
        self._rng = np.random.default_rng(seed)
        self._features: np.ndarray | None = None  # the real env is reset lazily, so load() can restore an episode
        self._first = True
        self._trainable = False  # set once the replay can give a world-model batch and the imagination starts
        self._episode_return = 0.0
        self._metrics: dict[str, list[float]] = {}
        self._timers = {"env": 0.0, "world_model": 0.0, "behaviour": 0.0}
        self._health = UpdateHealth(config.max_consecutive_skipped_updates)  # counts skipped updates, stops on a run
        self._last_log = (time.perf_counter(), 0)  # (wall time, real steps) at the previous log row

    # ----------------------------------------------------------------------------------------------------------------
    @property
    def env_name(self) -> str | None:
        """The env's id or game name (None for envs that cannot be rebuilt)."""
        recipe = self.env_recipe or {}
        if "id" in recipe:
            return recipe["id"]
        if "make_atari" in recipe:
            return recipe["make_atari"]["game"]
        if "gym_spec" in recipe:
            return pickle.loads(recipe["gym_spec"]).id
        return None

    @property
    def _schedule_step(self) -> int:
        """Real steps ever taken: what Algorithm 1's warm-up and update intervals count."""
        return self._steps_before_reset + self.num_timesteps

    def set_env(self, env: EnvSpec) -> None:
        """Train on ``env`` from now on (its observations must match the agent's); its first episode starts at the
        next ``learn()`` step. ``evaluate`` and checkpoints then rebuild this env."""
        real_env = make_env(env, self.seed)
        acting = LatentObservation(
            self._adapt(CheckEnvData(real_env, lambda: self.num_timesteps)),
            self.world_model,
            continue_on_life_loss=not self.config.life_loss_resets,
        )  # checks the spaces before anything changes
        self.env.close()
        self.env = acting
        self._real_env = real_env
        self.env_spec = env if isinstance(env, str) else None
        self.env_recipe = env_recipe(env, real_env)
        self._features, self._first, self._episode_return = None, True, 0.0

    def get_parameters(self) -> dict[str, dict[str, Any]]:
        """The networks' and optimisers' states by component: ``{"world_model": ..., "learner": ...}``."""
        return {"world_model": self.world_model.training_state(), "learner": self.learner.state_dict()}

    def set_parameters(self, load_path_or_dict: str | Path | dict[str, dict[str, Any]]) -> None:
        """Load :meth:`get_parameters` output, or the parameters of a checkpoint file, into this agent."""
        params = load_path_or_dict
        if not isinstance(params, dict):
            params = checkpoint.load(_with_suffix(params))
        missing = {"world_model", "learner"} - set(params)
        if missing:
            raise ValueError(
                f"parameters need the keys 'world_model' and 'learner' (as get_parameters() returns), missing {missing}"
            )
        self.world_model.load_training_state(params["world_model"])
        self.learner.load_state_dict(params["learner"])

    def get_env(self) -> gym.Env:
        """The real env Drama trains on, seen through the world model (what SB3 callbacks get as training_env)."""
        return self.env

    def get_vec_normalize_env(self) -> None:
        """Drama normalises nothing (stable-baselines3's API, called by some of its callbacks)."""
        return None

    def learn(
        self,
        total_timesteps: int,
        callback: LearnCallback = None,
        progress_bar: bool = False,
        tb_log_name: str = "Drama",
        reset_num_timesteps: bool = False,
    ) -> Drama:
        """Run ``total_timesteps`` more real steps of Algorithm 1.

        Args:
            total_timesteps: real environment steps to add to ``num_timesteps``.
            callback: called after every real step. Either ``f(agent)``, whose False return stops training early,
                or a stable-baselines3 ``BaseCallback`` (or a list of them, e.g. ``CheckpointCallback``,
                ``EvalCallback``), whose ``on_step()`` returning False stops it. SB3 callbacks see this agent as
                ``model`` (``save``, ``predict``, ``num_timesteps``, ``logger``) and ``locals`` with
                ``total_timesteps``, ``rewards``, ``dones``, ``infos`` and ``new_obs`` of the step.
            progress_bar: show a tqdm bar (warm-up and training as two phases).
            tb_log_name: with ``tensorboard_log``, the scalars go to ``<tensorboard_log>/<tb_log_name>_<n>``.
            reset_num_timesteps: start ``num_timesteps`` (what logs, callbacks and checkpoint names count) from 0,
                as stable-baselines3 does by default. Drama's default is False, to continue counting: the schedule
                of Algorithm 1 (warm-up, update intervals) counts every step ever taken either way, so a reset
                never brings back random warm-up actions.
        """
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, int) or total_timesteps < 0:
            raise ValueError(f"total_timesteps must be a non-negative int, got {total_timesteps!r}")
        hooks = _CallbackHooks(self, callback)
        if reset_num_timesteps:
            self._steps_before_reset += self.num_timesteps
            self.num_timesteps = 0
        if self.tensorboard_log is not None:
            self.run_dir = next_run_dir(self.tensorboard_log, tb_log_name)
            self.logger.close()
            self.logger = RunLogger([*([self.logdir] if self.logdir is not None else []), self.run_dir])
        target = self.num_timesteps + total_timesteps
        # Random warm-up steps cost a fraction of a training step: they get their own bar phase, so the rate and
        # the ETA shown while training are those of training steps.
        warmup_end = min(target, self.num_timesteps + max(0, self.config.warmup_steps - self._schedule_step))

        def new_bar(desc: str, end: int) -> tqdm:
            total = end - self.num_timesteps
            return tqdm(total=total, desc=desc, disable=not progress_bar, unit="step", dynamic_ncols=True)

        in_warmup = self.num_timesteps < warmup_end
        bar = new_bar("warm-up", warmup_end) if in_warmup else new_bar("train", target)
        hooks.start(total_timesteps)
        try:
            while self.num_timesteps < target:
                if in_warmup and self.num_timesteps >= warmup_end:
                    in_warmup = False
                    bar.close()
                    bar = new_bar("train", target)
                step = self._real_step()
                self._train()
                bar.update(1)
                if self.num_timesteps % self.config.log_every == 0:
                    self._log(bar)
                if self.config.checkpoint_every and self.num_timesteps % self.config.checkpoint_every == 0:
                    self._checkpoint()
                if hooks.step(step) is False:
                    break
        finally:
            bar.close()
        hooks.end()
        self._checkpoint()
        return self

    def _real_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        if self._features is None:
            self._features, _ = self.env.reset(seed=self.seed)
            self._first = self.env.episode_start
        raw_obs = self.env.raw_observation
        if self._schedule_step < self.config.warmup_steps:
            action = int(self._rng.integers(self.world_model.n_actions))
        else:
            action = int(self.learner.act(self._features[None], deterministic=False)[0])
        features, reward, terminated, truncated, info = self.env.step(action)
        self.replay.add(raw_obs, action, float(reward), bool(terminated), self._first)
        self.num_timesteps += 1
        self._first = False
        self._episode_return += float(reward)
        if terminated or truncated:
            # Atari life losses end the learner's episode but not the game: report whole games only.
            if info.get("episode_game_over", True):
                game_return = float(info.get("game_return", self._episode_return))
                self.episodes.append({"return": game_return, "step": self.num_timesteps})
                self._record({"episode/return": game_return})
                if self._atari_game is not None:
                    self._record(
                        {"episode/human_normalized_score": human_normalized_score(self._atari_game, game_return)}
                    )
                self._episode_return = 0.0
            features, _ = self.env.reset()  # after a life loss this may continue the game (see LatentObservation)
            self._first = self.env.episode_start
        self._features = features
        self._timers["env"] += time.perf_counter() - start
        # The step as SB3 callbacks see it in ``locals`` (batched over one env, like a VecEnv's).
        done = bool(terminated or truncated)
        return {
            "new_obs": features[None],
            "rewards": np.array([float(reward)], np.float32),
            "dones": np.array([done]),
            "infos": [info],
            "actions": np.array([action]),
        }

    def _train(self) -> None:
        c = self.config
        since_warmup = self._schedule_step - c.warmup_steps
        # Once a batch can be drawn it stays so (the replay grows until full, and a full one holds far more windows
        # than a batch), so the check runs only until then: it scans every stored window.
        self._trainable = self._trainable or (since_warmup >= 0 and self._can_train())
        if not self._trainable:
            return
        if since_warmup % c.world_model_every == 0:
            start = time.perf_counter()
            batch = self.replay.sample(c.batch_size, c.sequence_length, "world_model", device=self.device)
            metrics = self.world_model.update(batch)
            self._record(metrics)
            self._health.observe(metrics, self.num_timesteps)
            self._timers["world_model"] += time.perf_counter() - start
        if since_warmup % c.behaviour_every == 0:
            start = time.perf_counter()
            metrics = self.learner.learn()
            self._record(metrics)
            self._health.observe(metrics, self.num_timesteps)
            self._timers["behaviour"] += time.perf_counter() - start

    def _can_train(self) -> bool:
        """Whether the replay holds enough for a world-model batch and the learner's imagination starts (False right
        after warm-up only if too few windows are valid, and after resuming without the replay)."""
        c, replay = self.config, self.replay
        return replay.can_sample(c.batch_size, c.sequence_length, "world_model") and replay.can_sample(
            self.dream.num_envs, c.context_length, "imagination"
        )

    def _record(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._metrics.setdefault(key, []).append(value)

    def _log(self, bar: tqdm) -> None:
        scalars = {k: float(np.mean(v)) for k, v in self._metrics.items()}
        scalars.update({f"time/{k}_seconds": v for k, v in self._timers.items()})
        scalars.update(self._health.scalars())
        now, steps = time.perf_counter(), self.num_timesteps
        scalars["time/steps_per_second"] = (steps - self._last_log[1]) / max(now - self._last_log[0], 1e-9)
        self._last_log = (now, steps)
        self.logger.log(self.num_timesteps, scalars)
        if self.verbose >= 1:
            keep = ("episode/", "wm/loss", "time/steps_per_second")
            shown = {k: v for k, v in scalars.items() if k.startswith(keep)}
            print(f"step {self.num_timesteps}: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())))
        if self.episodes:
            recent = np.mean([e["return"] for e in self.episodes[-5:]])
            bar.set_postfix(return5=f"{recent:.1f}", episodes=len(self.episodes))
        self._metrics = {}

    def _checkpoint(self) -> None:
        if self.logdir is not None:
            self.save(self.logdir / "checkpoint.pt")

    # ----------------------------------------------------------------------------------------------------------------
    def predict(
        self,
        observation: np.ndarray,
        state: PredictState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, PredictState]:
        """Actions for raw observations of the real env, as stable-baselines3's recurrent policies take them.

        ``observation`` is one observation of the env Drama was built with, or a batch [B, ...] of them (a VecEnv's,
        e.g. in ``evaluate_policy``); images are adapted as in training. The world model's recurrent state of each
        row comes back as ``state``: pass it with the next observations, and ``episode_start`` [B] (True where an
        episode begins: that row starts afresh). ``state=None`` starts every row afresh. Returns (action [] or [B],
        state). To act on world-model features (an env wrapped in :class:`LatentObservation`, or DreamEnv's
        observations), use :meth:`predict_features`.
        """
        obs = np.asarray(observation)
        raw_shape = tuple(self._real_env.observation_space.shape)
        if obs.shape == raw_shape:
            single, batch = True, obs[None]
        elif obs.shape[1:] == raw_shape:
            single, batch = False, obs
        else:
            hint = ""
            if obs.shape[-1:] == (self.world_model.config.feature_dim,):
                hint = "; for world-model features (LatentObservation's) call predict_features"
            raise ValueError(
                f"observation must be one observation of the env, shape {raw_shape}, or a batch [B, *{raw_shape}], "
                f"got {obs.shape}{hint}"
            )
        if self.observation_adapter is not None:
            batch = self.observation_adapter.batch(batch)
        n, wm = len(batch), self.world_model
        if state is not None and (not isinstance(state, PredictState) or state.batch_size != n):
            raise ValueError(
                f"state must be the PredictState that predict returned for a batch of {n} observations, or None; got "
                f"{getattr(state, 'batch_size', type(state).__name__)} rows"
            )
        with torch.no_grad():
            fresh = wm.initial_state(n, self.device)
            if state is None:
                recurrent = fresh
            else:
                recurrent = wm.advance(state.recurrent, state.z, state.action)
                if episode_start is not None:
                    starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(n), device=self.device)
                    recurrent = recurrent.merge(starts, fresh)
            z = wm.encode(torch.as_tensor(batch, device=self.device), sample=True, generator=self._predict_generator)
            features = wm.features(z, recurrent).float().cpu().numpy()
        actions = self.learner.act(features, deterministic=deterministic)
        taken = torch.as_tensor(np.asarray(actions).reshape(n), device=self.device).long()
        return (actions[0] if single else actions), PredictState(recurrent, z, taken)

    def predict_features(self, features: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions for world-model features [z_t, d_{t-1}]: observations of an env wrapped in
        :class:`LatentObservation` or of :class:`DreamEnv`. They carry the recurrent state already.
        Shapes: [feature_dim] -> action [], [B, feature_dim] -> [B]."""
        obs = np.asarray(features, dtype=np.float32)
        dim = self.world_model.config.feature_dim
        if obs.shape[-1:] != (dim,) or obs.ndim not in (1, 2):
            raise ValueError(
                f"features must have shape [{dim}] or [B, {dim}], got {obs.shape}; for raw observations of the env "
                "call predict"
            )
        actions = self.learner.act(obs.reshape(-1, dim), deterministic=deterministic)
        return actions[0] if obs.ndim == 1 else actions

    def _adapt(self, env: gym.Env) -> gym.Env:
        """``env`` with the observation adaptation this agent was built with (see :mod:`drama_wm.observations`)."""
        adapter = observation_adapter(env.observation_space, self.config.world_model.image_size)
        if adapter != self.observation_adapter:
            trained = self.observation_adapter.describe() if self.observation_adapter else "used as they are"
            raise ValueError(
                f"the env's observations {env.observation_space} differ from those the agent was built with "
                f"({trained}): pass an env with the same observations"
            )
        return env if adapter is None else AdaptObservation(env, adapter)

    def evaluate(self, n_episodes: int = 10, deterministic: bool = False, env: EnvSpec | None = None) -> dict[str, Any]:
        """Play ``n_episodes`` whole games in a fresh env and return their returns (Atari: all lives per game).

        The env defaults to a new one built like the training env (from its id, its ``make_atari`` arguments or
        its Gymnasium spec); pass ``env`` (an instance or factory) when it cannot be rebuilt.
        """
        if env is None and self.env_recipe is None:
            raise ValueError(
                "Drama cannot rebuild its env (built from an instance without a Gymnasium spec, or from a factory): "
                "pass env= (a fresh env or factory) to evaluate"
            )
        fresh = make_env(env) if env is not None else make_env_from_recipe(self.env_recipe or {})
        wrapped = LatentObservation(
            self._adapt(CheckEnvData(fresh, label="evaluation step")),
            self.world_model,
            continue_on_life_loss=not self.config.life_loss_resets,
        )
        returns: list[float] = []
        features, _ = wrapped.reset(seed=None if self.seed is None else self.seed + 10_000)
        total = 0.0
        while len(returns) < n_episodes:
            action = int(self.learner.act(features[None], deterministic=deterministic)[0])
            features, reward, terminated, truncated, info = wrapped.step(action)
            total += float(reward)
            if terminated or truncated:
                if info.get("episode_game_over", True):
                    returns.append(float(info.get("game_return", total)))
                    total = 0.0
                features, _ = wrapped.reset()
        wrapped.close()
        return {"returns": returns, "mean": float(np.mean(returns)), "std": float(np.std(returns))}

    # ----------------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint of everything that shapes behaviour, atomically (temp file + rename).

        A path without a suffix gets ``.pt`` (as stable-baselines3 adds ``.zip``; ``EvalCallback`` saves
        ``best_model`` so); returns the path written.
        """
        path = _with_suffix(path)
        state = {
            "format": "drama_wm",
            "config": self.config.to_dict(),
            "env_spec": self.env_spec,
            "env_recipe": self.env_recipe,
            "observation_adapter": None if self.observation_adapter is None else self.observation_adapter.to_dict(),
            "seed": self.seed,
            "learner_name": self.learner_name,
            "world_model": self.world_model.training_state(),
            "learner": self.learner.state_dict(),
            "replay": self.replay.state_dict() if self.config.checkpoint_replay else None,
            "dream": self.dream.state_dict(),
            "acting": self.env.state_dict(),
            "env_pickle": _try_pickle(self._real_env),
            "driver": {
                "num_timesteps": self.num_timesteps,
                "steps_before_reset": self._steps_before_reset,
                "episodes": self.episodes,
                "features": self._features,
                "first": self._first,
                "episode_return": self._episode_return,
                "rng": self._rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "timers": self._timers,
                "health": self._health.state_dict(),
            },
        }
        return checkpoint.atomic_save(state, path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: EnvSpec | None = None,
        device: str | torch.device = "auto",
        learner: BehaviourLearner | None = None,
        logdir: str | Path | None = None,
        tensorboard_log: str | Path | None = None,
    ) -> Drama:
        """Restore a saved agent. The env defaults to the pickled env of the checkpoint (exact continuation) or a
        fresh one rebuilt from the checkpoint (its id, ``make_atari`` arguments or Gymnasium spec); ``env`` is needed
        only when neither exists. External learners must be passed as ``learner`` (an unbound instance)."""
        path = Path(path)
        state = checkpoint.load(path if path.exists() else _with_suffix(path))
        if state["learner_name"] != "actor-critic" and learner is None:
            raise ValueError(f"checkpoint was trained with learner {state['learner_name']!r}: pass learner=")
        recipe = state.get("env_recipe") or ({"id": state["env_spec"]} if state["env_spec"] is not None else None)
        restored_env = env if env is not None else _unpickle(state["env_pickle"])
        if restored_env is None:
            if recipe is None:
                raise ValueError(
                    "the checkpoint's env can be neither unpickled nor rebuilt (it was not made from an id, "
                    "make_atari or a Gymnasium spec): pass env="
                )
            restored_env = make_env_from_recipe(recipe)
        config = DramaConfig.from_dict(state["config"])
        agent = cls(
            restored_env,
            config,
            learner if learner is not None else "actor-critic",
            seed=None,
            device=device,
            logdir=logdir,
            tensorboard_log=tensorboard_log,
        )
        saved_view = state.get("observation_adapter", "absent")  # checkpoints before adapters lack the key
        view = None if agent.observation_adapter is None else agent.observation_adapter.to_dict()
        if saved_view != "absent" and saved_view != view:
            raise ValueError(
                f"the env's observations are adapted as {view}, but the checkpoint was trained on {saved_view}: "
                "pass an env with the observations it was trained on"
            )
        agent.seed, agent.env_spec = state["seed"], state["env_spec"]
        agent.env_recipe = recipe if recipe is not None else agent.env_recipe
        game = agent.env_name
        agent._atari_game = game if game is not None and is_atari_100k_game(game) else None
        agent.world_model.load_training_state(state["world_model"])
        agent.learner.load_state_dict(state["learner"])
        if state["replay"] is not None:
            agent.replay.load_state_dict(state["replay"])
        agent.dream.load_state_dict(state["dream"])
        driver = state["driver"]
        agent.num_timesteps, agent.episodes = driver["num_timesteps"], driver["episodes"]
        agent._steps_before_reset = driver.get("steps_before_reset", 0)
        agent._timers = driver["timers"]
        if "health" in driver:  # checkpoints before the skipped-update counts lack it
            agent._health.load_state_dict(driver["health"])
        agent._rng.bit_generator.state = driver["rng"]
        if state["env_pickle"] is not None and env is None:
            # The pickled env continues the interrupted episode: restore the carried recurrent state and the
            # episode's partial return too (with a new env the next episode starts from 0).
            agent.env.load_state_dict(state["acting"])
            agent._features, agent._first = driver["features"], driver["first"]
            agent._episode_return = driver["episode_return"]
        torch.set_rng_state(driver["torch_rng"])
        return agent


@dataclass
class PredictState:
    """What :meth:`Drama.predict` carries between calls for B rows: the world model's recurrent state after the
    last observation, its latent z and the action taken (the next call advances the backbone on them)."""

    recurrent: RecurrentState
    z: torch.Tensor
    action: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.z.shape[0])


class _CallbackHooks:
    """Runs ``learn()``'s callback: a plain ``f(agent)`` or stable-baselines3 callbacks (imported only then)."""

    def __init__(self, agent: Drama, callback: LearnCallback) -> None:
        self.agent = agent
        self.plain: Callable[[Drama], bool | None] | None = None
        self.sb3: Any = None
        self.locals: dict[str, Any] = {}
        if callback is None:
            return
        if isinstance(callback, list) or (hasattr(callback, "init_callback") and hasattr(callback, "on_step")):
            from stable_baselines3.common.callbacks import CallbackList

            self.sb3 = CallbackList(callback) if isinstance(callback, list) else callback
            with warnings.catch_warnings():
                # EvalCallback warns when the eval env's type differs from the training env's; Drama trains on one
                # LatentObservation-wrapped env, so it always differs, by design.
                warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
                self.sb3.init_callback(agent)
        elif callable(callback):
            self.plain = callback
        else:
            raise TypeError(
                "callback must be a function f(agent) -> bool | None, a stable_baselines3 BaseCallback or a list of "
                f"them, got {type(callback).__name__}"
            )

    def start(self, total_timesteps: int) -> None:
        if self.sb3 is not None:
            self.locals = {"self": self.agent, "total_timesteps": total_timesteps, "callback": self.sb3}
            self.sb3.on_training_start(self.locals, {})
            self.sb3.on_rollout_start()

    def step(self, step: dict[str, Any]) -> bool | None:
        if self.plain is not None:
            return self.plain(self.agent)
        if self.sb3 is not None:
            self.sb3.update_locals(step)
            return bool(self.sb3.on_step())
        return None

    def end(self) -> None:
        if self.sb3 is not None:
            self.sb3.on_rollout_end()
            self.sb3.on_training_end()


def _resolve_learner(learner: str | BehaviourLearner, config: DramaConfig) -> tuple[str, BehaviourLearner]:
    if learner == "actor-critic":
        return "actor-critic", ActorCritic(config.actor_critic)
    if isinstance(learner, str):
        raise ValueError(
            f"unknown learner {learner!r}: use 'actor-critic' or pass a BehaviourLearner instance "
            "(e.g. drama_wm.integrations.sb3.SB3Learner)"
        )
    if not isinstance(learner, BehaviourLearner):
        raise TypeError(f"learner must implement drama_wm.learners.BehaviourLearner, got {type(learner).__name__}")
    return type(learner).__name__, learner


def _with_suffix(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix else path.with_suffix(".pt")


def _try_pickle(env: gym.Env) -> bytes | None:
    """The real env's exact state when it can be pickled (e.g. CartPole); None otherwise (e.g. ALE emulators)."""
    try:
        return pickle.dumps(env)
    except Exception:  # any env may refuse pickling in its own way; then resume starts a new episode
        return None


def _unpickle(blob: bytes | None) -> gym.Env | None:
    return pickle.loads(blob) if blob is not None else None


__all__ = ["Drama", "DramaConfig", "PredictState", "env_recipe", "make_env", "make_env_from_recipe"]
