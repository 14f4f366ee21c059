"""The Drama agent: paper Algorithm 1 as a driver with a stable-baselines3-style API.

Each real step: act through :class:`~drama_wm.LatentObservation` (O(1) per step; random actions during warm-up),
store the transition, then, once warm, update the world model on a DFS batch every ``world_model_every`` steps and
let the behaviour learner learn in :class:`~drama_wm.DreamEnv` every ``behaviour_every`` steps (the train ratio).

This module assembles the parts and runs the loop. Each part that has state saves and loads itself
(``state_dict`` / ``load_state_dict``); a checkpoint is the run's plain-data description (config, seed, env
recipe) plus the state of every part by name, and ``save`` and ``load`` walk the same parts (:meth:`Drama._parts`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from drama_wm import __version__, checkpoint, env_state
from drama_wm.allocator import keep_freed_memory
from drama_wm.callbacks import CallbackHooks, LearnCallback
from drama_wm.carry import Carry
from drama_wm.config import DramaConfig
from drama_wm.dream_env import DreamEnv
from drama_wm.env_checks import CheckEnvData
from drama_wm.env_recipes import EnvSpec, env_recipe, make_env, make_env_from_recipe, recipe_name
from drama_wm.envs.scores import human_normalized_score, is_atari_100k_game
from drama_wm.evaluation import evaluate_policy
from drama_wm.health import UpdateHealth
from drama_wm.latent_observation import LatentObservation
from drama_wm.learners import BehaviourLearner, LearnerConfig
from drama_wm.logger import RunLogger, next_run_dir, open_scalars
from drama_wm.observations import AdaptObservation, observation_adapter
from drama_wm.progress import RunProgress
from drama_wm.replay import ReplayBuffer
from drama_wm.world_model import WorldModel

_log = logging.getLogger("drama_wm")


class Stateful(Protocol):
    """A part of a run that saves and loads its own state (tensors, arrays and plain data only)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class _Part:
    """A part whose state is read and written by two functions (for objects whose own ``state_dict`` means less)."""

    state_dict: Callable[[], dict[str, Any]]
    load_state_dict: Callable[[dict[str, Any]], Any]


class Drama:
    """Drama: learn a world model from real data and a behaviour policy inside it.

    Args:
        env: the real environment (instance, id such as "CartPole-v1" / "ALE/Pong-v5" / "Pong", or factory).
            Observations: uint8 HxWxC images or float vectors; actions: Discrete.
        config: a :class:`DramaConfig` (``DramaConfig.xs()`` by default); ``config.learner`` chooses the behaviour
            learner (the built-in actor-critic by default).
        learner: None (build ``config.learner``) or any :class:`~drama_wm.learners.BehaviourLearner` instance; an
            instance with a :class:`~drama_wm.learners.LearnerConfig` as ``learner.config`` replaces
            ``config.learner`` (and checkpoints rebuild it), one without is a custom learner that ``load`` must be
            given again.
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
        learner: BehaviourLearner | None = None,
        seed: int | None = None,
        device: str | torch.device = "auto",
        logdir: str | Path | None = None,
        tensorboard_log: str | Path | None = None,
        verbose: int = 0,
    ) -> None:
        config = config or DramaConfig.xs()
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
        self._real_env = real_env  # the env as given, before any adaptation
        self.env_recipe = env_recipe(env, real_env)
        self.observation_adapter = observation_adapter(real_env.observation_space, config.world_model.image_size)
        if self.observation_adapter is not None:
            _log.info("drama_wm: %s", self.observation_adapter.describe())
            if verbose >= 1:
                print(f"drama_wm: {self.observation_adapter.describe()}")
        raw_env = self._adapt(CheckEnvData(real_env, lambda: self.num_timesteps), config)  # bad data: EnvDataError
        self.world_model = WorldModel(raw_env.observation_space, raw_env.action_space, config.world_model).to(
            self.device
        )
        self.replay = ReplayBuffer(
            self.world_model.observation_space,  # raw_env's spaces, checked (and typed) by the world model
            self.world_model.action_space,
            config.replay_capacity,
            sampler=config.sampler,
            seed=seed,
            device=self.device if config.replay_on_device and self.device.type == "cuda" else None,
        )
        self.learner_kind, self.learner, learner_config = _resolve_learner(learner, config.learner)
        self.config = config = replace(config, learner=learner_config) if learner_config is not None else config
        asked = self.learner.dream_options.get("termination", config.dream_termination)
        if asked != config.dream_termination:
            raise ValueError(
                f"the learner's dream_options ask for termination={asked!r} but DramaConfig.dream_termination is "
                f"{config.dream_termination!r}: set the config to match"
            )
        dream_options = {**self.learner.dream_options, "termination": config.dream_termination}
        self.dream = DreamEnv(
            self.world_model,
            self.replay,
            context_length=config.context_length,
            horizon=config.horizon,
            device=self.device,
            seed=None if seed is None else seed + 1,
            **dream_options,
        )
        self.learner.bind(self.dream)
        self.env = LatentObservation(raw_env, self.world_model, continue_on_life_loss=not config.life_loss_resets)
        self.logdir = Path(logdir) if logdir is not None else None
        if self.logdir is not None:
            open_scalars(self.logdir).close()  # an unwritable logdir fails here, before any training
        self.tensorboard_log = Path(tensorboard_log) if tensorboard_log is not None else None
        self.logger = RunLogger(None)  #: writes to the logdir (and tensorboard_log) while learn() runs
        self.run_dir: Path | None = None  #: the numbered folder of the last learn() under tensorboard_log
        self.verbose = verbose
        self.progress = RunProgress(seed)
        self.health = UpdateHealth(config.max_consecutive_skipped_updates)  #: counts skipped updates, stops a run
        self._predict_generator = torch.Generator(device=self.device)
        if seed is not None:
            self._predict_generator.manual_seed(seed + 2)
        self._features: np.ndarray | None = None  # the real env is reset lazily, so load() can restore an episode
        self._first = True
        self._episode_restorable = False  # load() sets it when the env was rebuilt from the checkpoint
        self._trainable = False  # set once the replay can give a world-model batch and the imagination starts
        self._last_log = (time.perf_counter(), 0)  # (wall time, real steps) at the previous log row

    # ----------------------------------------------------------------------------------------------------------------
    @property
    def num_timesteps(self) -> int:
        """Real steps since the last ``learn(reset_num_timesteps=True)`` (all of them by default)."""
        return self.progress.num_timesteps

    @property
    def episodes(self) -> list[dict[str, float]]:
        """Finished real games: ``{"return", "length", "step"}`` each (Atari: all lives of a game)."""
        return self.progress.games.finished

    @property
    def env_name(self) -> str | None:
        """The env's id or game name (None for envs that cannot be rebuilt)."""
        return recipe_name(self.env_recipe)

    @property
    def _atari_game(self) -> str | None:
        """The Atari 100k game played, whose human-normalised score is logged too (paper Table 1), or None."""
        game = self.env_name
        return game if game is not None and is_atari_100k_game(game) else None

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
        self._features, self._first = None, True
        self.progress.games.new_game()

    def get_parameters(self) -> dict[str, dict[str, Any]]:
        """The networks' and optimisers' states by component: ``{"world_model": ..., "learner": ...}``."""
        return {"world_model": self.world_model.training_state(), "learner": self.learner.state_dict()}

    def set_parameters(self, load_path_or_dict: str | Path | dict[str, dict[str, Any]]) -> None:
        """Load :meth:`get_parameters` output, or the parameters of a checkpoint file, into this agent."""
        params = load_path_or_dict
        if not isinstance(params, dict):
            params = checkpoint.load(_with_suffix(params))["parts"]
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
        progress = self.progress
        if reset_num_timesteps:
            progress.steps_before_reset += progress.num_timesteps
            progress.num_timesteps = 0
        folders = [self.logdir] if self.logdir is not None else []
        if self.tensorboard_log is not None:
            self.run_dir = next_run_dir(self.tensorboard_log, tb_log_name)
            folders.append(self.run_dir)
        self.logger = RunLogger(folders)  # before the callbacks, which keep a reference to it
        try:
            hooks = CallbackHooks(self, callback)
            self._loop(self.num_timesteps + total_timesteps, hooks, progress_bar)
            hooks.end()
            self._checkpoint()
        finally:
            self.logger.close()
            self.logger = RunLogger(None)
        return self

    def _loop(self, target: int, hooks: CallbackHooks, progress_bar: bool) -> None:
        """Real steps until ``num_timesteps`` reaches ``target`` or a callback stops training."""
        # Random warm-up steps cost a fraction of a training step: they get their own bar phase, so the rate and
        # the ETA shown while training are those of training steps.
        warmup_end = min(target, self.num_timesteps + max(0, self.config.warmup_steps - self.progress.schedule_step))

        def new_bar(desc: str, end: int) -> tqdm:
            total = end - self.num_timesteps
            return tqdm(total=total, desc=desc, disable=not progress_bar, unit="step", dynamic_ncols=True)

        in_warmup = self.num_timesteps < warmup_end
        bar = new_bar("warm-up", warmup_end) if in_warmup else new_bar("train", target)
        hooks.start(target - self.num_timesteps)
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

    def _real_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        progress = self.progress
        if self._features is None:
            # A fresh run starts from the seed; a resumed run that starts a new episode from seed + steps taken.
            seed = None if self.seed is None else self.seed + progress.schedule_step
            self._features, _ = self.env.reset(seed=seed)
            self._first = self.env.episode_start
        raw_obs = self.env.raw_observation
        if progress.schedule_step < self.config.warmup_steps:
            action = int(progress.rng.integers(self.world_model.n_actions))
        else:
            action = int(self.learner.act(self._features[None], deterministic=False)[0])
        features, reward, terminated, truncated, info = self.env.step(action)
        self.replay.add(raw_obs, action, float(reward), bool(terminated), self._first)
        progress.num_timesteps += 1
        self._first = False
        done = bool(terminated or truncated)
        # Atari life losses end the learner's episode but not the game: games are what is reported.
        game_return = progress.games.step(float(reward), done, info, self.num_timesteps)
        # terminations (Atari life losses included) per real step: the rate behaviour/imagined_termination_rate dreams
        self._record({"env/termination_rate": float(bool(terminated))})
        if game_return is not None:
            length = float(progress.games.finished[-1]["length"])
            self._record({"episode/return": game_return, "episode/length": length})
            if self._atari_game is not None:
                self._record({"episode/human_normalized_score": human_normalized_score(self._atari_game, game_return)})
        if done:
            features, _ = self.env.reset()  # after a life loss this may continue the game (see LatentObservation)
            self._first = self.env.episode_start
        self._features = features
        progress.timers["env"] += time.perf_counter() - start
        # The step as SB3 callbacks see it in ``locals`` (batched over one env, like a VecEnv's).
        return {
            "new_obs": features[None],
            "rewards": np.array([float(reward)], np.float32),
            "dones": np.array([done]),
            "infos": [info],
            "actions": np.array([action]),
        }

    def _train(self) -> None:
        c, timers = self.config, self.progress.timers
        since_warmup = self.progress.schedule_step - c.warmup_steps
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
            self.health.observe(metrics, self.num_timesteps)
            timers["world_model"] += time.perf_counter() - start
        if since_warmup % c.behaviour_every == 0:
            start = time.perf_counter()
            metrics = self.learner.learn()
            self._record(metrics)
            self.health.observe(metrics, self.num_timesteps)
            timers["behaviour"] += time.perf_counter() - start

    def _can_train(self) -> bool:
        """Whether the replay holds enough for a world-model batch and the learner's imagination starts (False right
        after warm-up only if too few windows are valid, and after resuming without the replay)."""
        c, replay = self.config, self.replay
        return replay.can_sample(c.batch_size, c.sequence_length, "world_model") and replay.can_sample(
            self.dream.num_envs, c.context_length, "imagination"
        )

    def _record(self, metrics: dict[str, float]) -> None:
        pending = self.progress.pending
        for key, value in metrics.items():
            pending.setdefault(key, []).append(value)

    def _log(self, bar: tqdm) -> None:
        scalars = {k: float(np.mean(v)) for k, v in self.progress.pending.items()}
        scalars.update({f"time/{k}_seconds": v for k, v in self.progress.timers.items()})
        scalars.update(self.health.scalars())
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
        self.progress.pending = {}

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
        real_shape = self._real_env.observation_space.shape
        assert real_shape is not None  # a Box: the world model rejected every other space at construction
        raw_shape = tuple(real_shape)
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
                recurrent = wm.advance(state.carry.state, state.carry.z, state.action)
                if episode_start is not None:
                    starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(n), device=self.device)
                    recurrent = recurrent.merge(starts, fresh)
            z = wm.encode(torch.as_tensor(batch, device=self.device), sample=True, generator=self._predict_generator)
            features = wm.features(z, recurrent).float().cpu().numpy()
        actions = self.learner.act(features, deterministic=deterministic)
        taken = torch.as_tensor(np.asarray(actions).reshape(n), device=self.device).long()
        return (actions[0] if single else actions), PredictState(Carry(recurrent, z), taken)

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

    def _adapt(self, env: gym.Env, config: DramaConfig | None = None) -> gym.Env:
        """``env`` with the observation adaptation this agent was built with (see :mod:`drama_wm.observations`)."""
        adapter = observation_adapter(env.observation_space, (config or self.config).world_model.image_size)
        if adapter != self.observation_adapter:
            trained = self.observation_adapter.describe() if self.observation_adapter else "used as they are"
            raise ValueError(
                f"the env's observations {env.observation_space} differ from those the agent was built with "
                f"({trained}): pass an env with the same observations"
            )
        return env if adapter is None else AdaptObservation(env, adapter)

    def evaluate(self, n_episodes: int = 10, deterministic: bool = False, env: EnvSpec | None = None) -> dict[str, Any]:
        """Play ``n_episodes`` whole games in a fresh env and return ``{"returns", "lengths", "mean", "std"}``
        (Atari: all lives per game), through :func:`drama_wm.evaluation.evaluate_policy`.

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

        def policy(features: np.ndarray) -> int:
            return int(self.learner.act(features[None], deterministic=deterministic)[0])

        try:
            seed = None if self.seed is None else self.seed + 10_000
            return evaluate_policy(policy, wrapped, n_episodes, seed=seed).as_dict()
        finally:
            wrapped.close()

    def close(self) -> None:
        """Close the real env, the dream and the logger (an agent can still be saved afterwards)."""
        self.env.close()
        self.dream.close()
        self.logger.close()

    # ----------------------------------------------------------------------------------------------------------------
    # Checkpoints
    def _parts(self) -> dict[str, Stateful]:
        """Every part with state, by name, in load order (progress before the episode, which may restart a game)."""
        wm = self.world_model
        parts: dict[str, Stateful] = {
            "world_model": _Part(wm.training_state, wm.load_training_state),  # weights, BatchNorm, optimiser
            "learner": self.learner,
            "dream": self.dream,
            "progress": self.progress,
            "health": self.health,
            "episode": _Part(self._episode_state, self._load_episode_state),
            "predict": _Part(
                lambda: {"generator": self._predict_generator.get_state()},
                lambda state: self._predict_generator.set_state(state["generator"]),
            ),
        }
        if self.config.checkpoint_replay:
            parts["replay"] = self.replay
        return parts

    def _episode_state(self) -> dict[str, Any]:
        """The unfinished real episode: the env's own state (when :mod:`drama_wm.env_state` can capture it), the
        acting wrapper's carried recurrent state and the features the next action is chosen from."""
        return {
            "env": env_state.capture(self._real_env),
            "acting": self.env.state_dict(),
            "features": self._features,
            "first": self._first,
        }

    def _load_episode_state(self, state: dict[str, Any]) -> None:
        """Continue the saved episode when the env was rebuilt from the checkpoint and its state was captured; else
        the next step starts a new episode (and the unfinished game's return is dropped)."""
        if not self._episode_restorable or state["env"] is None:
            self._features, self._first = None, True
            self.progress.games.new_game()
            return
        env_state.restore(self._real_env, state["env"])
        self.env.load_state_dict(state["acting"])
        self._features, self._first = state["features"], bool(state["first"])

    def _meta(self) -> dict[str, Any]:
        """What the run is, as plain data: enough to build the same agent again before its parts are loaded."""
        adapter = self.observation_adapter
        return {
            "drama_wm_version": __version__,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "learner_kind": self.learner_kind,
            "env_spec": self.env_spec,
            "env_recipe": self.env_recipe,
            "observation_adapter": None if adapter is None else adapter.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint of everything that shapes behaviour, atomically and with a digest (see
        :mod:`drama_wm.checkpoint`): the run's description and the state of every part.

        A path without a suffix gets ``.pt`` (as stable-baselines3 adds ``.zip``; ``EvalCallback`` saves
        ``best_model`` so); returns the path written.
        """
        parts = {name: part.state_dict() for name, part in self._parts().items()}
        return checkpoint.save({"meta": self._meta(), "parts": parts}, _with_suffix(path))

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
        """Restore a saved agent.

        The env defaults to one rebuilt from the checkpoint (its id, ``make_atari`` arguments or Gymnasium spec),
        which also continues the interrupted episode where :mod:`drama_wm.env_state` captured it (ALE games,
        classic-control envs); pass ``env`` when it cannot be rebuilt (its first episode then starts afresh). A
        custom learner (one without a :class:`~drama_wm.learners.LearnerConfig`) must be passed as ``learner``, an
        unbound instance. Loading builds only tensors and plain data (no unpickling of objects), and a damaged file
        is an error (see :mod:`drama_wm.checkpoint`).
        """
        path = Path(path)
        payload = checkpoint.load(path if path.exists() else _with_suffix(path))
        meta, parts = payload["meta"], payload["parts"]
        if meta["learner_kind"] is None and learner is None:
            raise ValueError("the checkpoint was trained with a custom learner (no LearnerConfig): pass learner=")
        recipe = meta["env_recipe"]
        if env is None and recipe is None:
            raise ValueError(
                "the checkpoint's env cannot be rebuilt (it was not made from an id, make_atari or a Gymnasium spec): "
                "pass env="
            )
        real_env = env if env is not None else make_env_from_recipe(recipe)
        data = meta["config"]
        if "dream_termination" not in data and learner is not None and "termination" in learner.dream_options:
            # saved before DramaConfig.dream_termination existed, when the learner's dream_options alone chose it
            data = {**data, "dream_termination": learner.dream_options["termination"]}
        config = DramaConfig.from_dict(data)
        agent = cls(
            real_env, config, learner, seed=None, device=device, logdir=logdir, tensorboard_log=tensorboard_log
        )
        view = None if agent.observation_adapter is None else agent.observation_adapter.to_dict()
        if meta["observation_adapter"] != view:
            raise ValueError(
                f"the env's observations are adapted as {view}, but the checkpoint was trained on "
                f"{meta['observation_adapter']}: pass an env with the observations it was trained on"
            )
        agent.seed, agent.env_spec = meta["seed"], meta["env_spec"]
        agent.env_recipe = recipe if recipe is not None else agent.env_recipe
        agent._episode_restorable = env is None
        for name, part in agent._parts().items():
            if name in parts:  # a checkpoint without the replay leaves the buffer empty
                part.load_state_dict(parts[name])
        return agent


@dataclass
class PredictState:
    """What :meth:`Drama.predict` carries between calls for B rows: the world model's carry after the last
    observation (recurrent state with d_{t-1}, latent z_t) and the action a_t taken (the next call advances the
    backbone on them)."""

    carry: Carry
    action: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.carry.batch_size


def _resolve_learner(
    learner: BehaviourLearner | None, config: LearnerConfig
) -> tuple[str | None, BehaviourLearner, LearnerConfig | None]:
    """(kind, learner, its config): a new learner from ``config`` when ``learner`` is None, else the given instance,
    with its own :class:`LearnerConfig` (``learner.config``) if it has one, and kind None if not (a custom learner)."""
    if learner is None:
        return config.kind, config.make(), config
    if isinstance(learner, str):
        raise TypeError(
            f"learner={learner!r}: the kind ({', '.join(LearnerConfig.kinds())}) is chosen by DramaConfig.learner,"
            " e.g. DramaConfig(learner=ActorCriticConfig()); learner= takes a BehaviourLearner instance"
        )
    if not isinstance(learner, BehaviourLearner):
        raise TypeError(f"learner must implement drama_wm.learners.BehaviourLearner, got {type(learner).__name__}")
    own = getattr(learner, "config", None)
    return (own.kind, learner, own) if isinstance(own, LearnerConfig) else (None, learner, None)


def _with_suffix(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix else path.with_suffix(".pt")


__all__ = ["Drama", "PredictState", "Stateful"]

