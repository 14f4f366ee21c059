"""The Drama agent: paper Algorithm 1 as a driver with a stable-baselines3-style API.

Each real step: act through :class:`~drama_wm.LatentObservation` (O(1) per step; random actions during warm-up),
store the transition, then, once warm, update the world model on a DFS batch every ``world_model_every`` steps and
let the behaviour learner learn in :class:`~drama_wm.DreamEnv` every ``behaviour_every`` steps (the train ratio).
"""

from __future__ import annotations

import pickle
import time
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
from drama_wm.envs.scores import human_normalized_score, is_atari_100k_game
from drama_wm.latent_observation import LatentObservation
from drama_wm.learners import BehaviourLearner
from drama_wm.learners.actor_critic import ActorCritic, ActorCriticConfig
from drama_wm.logger import RunLogger
from drama_wm.replay import ReplayBuffer, SamplerConfig
from drama_wm.world_model import WorldModel, WorldModelConfig

EnvSpec = gym.Env | str | Callable[[], gym.Env]


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
    checkpoint_replay: bool = True  #: include the replay buffer in checkpoints (needed for exact resume)
    #: on a CUDA device, also keep the replay's observations there so batches are gathered on the GPU (saves about
    #: 37 ms per imagination start at XS on an H100; costs capacity x frame bytes of GPU memory, 1.2 GB for Atari)
    replay_on_device: bool = True

    def __post_init__(self) -> None:
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
    """An env instance from an instance, a factory, or an id (ALE ids and Atari game names go through make_atari)."""
    if isinstance(env, gym.Env):
        return env
    if callable(env):
        return env()
    if isinstance(env, str):
        from drama_wm.envs import make_atari  # also registers drama_wm/GridWorld-v0 and drama_wm/Catch-v0

        # ALE ids, legacy NoFrameskip ids and bare game names ("Pong") get the Atari 100k protocol.
        if env.startswith("ALE/") or "NoFrameskip" in env or env not in gym.registry:
            return make_atari(env, seed=seed)
        return gym.make(env)
    raise TypeError(f"env must be a gymnasium.Env, an env id or a zero-argument factory, got {type(env).__name__}")


class Drama:
    """Drama: learn a world model from real data and a behaviour policy inside it.

    Args:
        env: the real environment (instance, id such as "CartPole-v1" / "ALE/Pong-v5" / "Pong", or factory).
            Observations: uint8 HxWxC images or float vectors; actions: Discrete.
        config: a :class:`DramaConfig` (``DramaConfig.xs()`` by default).
        learner: "actor-critic" (built in) or any :class:`~drama_wm.learners.BehaviourLearner` instance.
        seed: seeds torch, the action sampler, the replay buffer, the env and the dreams.
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        logdir: TensorBoard events, ``scalars.csv`` and ``checkpoint.pt`` go here (nothing is written without it).
    """

    def __init__(
        self,
        env: EnvSpec,
        config: DramaConfig | None = None,
        learner: str | BehaviourLearner = "actor-critic",
        seed: int | None = None,
        device: str | torch.device = "auto",
        logdir: str | Path | None = None,
    ) -> None:
        self.config = config = config or DramaConfig.xs()
        self.seed = seed
        self.device = (
            torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
        )
        if self.device.type == "cpu":
            keep_freed_memory()  # page faults on fresh tensor memory cost as much as the arithmetic on CPU
        self.env_spec = env if isinstance(env, str) else None
        # Atari 100k games also log the human-normalised score (paper Table 1's random and human scores).
        self._atari_game = env if isinstance(env, str) and is_atari_100k_game(env) else None
        if seed is not None:
            torch.manual_seed(seed)
        raw_env = make_env(env, seed)
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
        self.env = LatentObservation(raw_env, self.world_model)
        self.logdir = Path(logdir) if logdir is not None else None
        self.logger = RunLogger(self.logdir)
        self.num_timesteps = 0
        self.episodes: list[dict[str, float]] = []  # finished real games: return, length, step
        self._rng = np.random.default_rng(seed)
        self._features: np.ndarray | None = None  # the real env is reset lazily, so load() can restore an episode
        self._first = True
        self._episode_return = 0.0
        self._metrics: dict[str, list[float]] = {}
        self._timers = {"env": 0.0, "world_model": 0.0, "behaviour": 0.0}
        self._last_log = (time.perf_counter(), 0)  # (wall time, real steps) at the previous log row

    # ----------------------------------------------------------------------------------------------------------------
    def learn(
        self,
        total_timesteps: int,
        callback: Callable[[Drama], bool | None] | None = None,
        progress_bar: bool = True,
    ) -> Drama:
        """Run ``total_timesteps`` more real steps of Algorithm 1.

        ``callback(self)`` is called after every real step; returning False stops training early.
        """
        if not isinstance(total_timesteps, int) or total_timesteps < 0:
            raise ValueError(f"total_timesteps must be a non-negative int, got {total_timesteps!r}")
        target = self.num_timesteps + total_timesteps
        bar = tqdm(total=total_timesteps, disable=not progress_bar, unit="step", dynamic_ncols=True)
        try:
            while self.num_timesteps < target:
                self._real_step()
                self._train()
                bar.update(1)
                if self.num_timesteps % self.config.log_every == 0:
                    self._log(bar)
                if self.config.checkpoint_every and self.num_timesteps % self.config.checkpoint_every == 0:
                    self._checkpoint()
                if callback is not None and callback(self) is False:
                    break
        finally:
            bar.close()
        self._checkpoint()
        return self

    def _real_step(self) -> None:
        start = time.perf_counter()
        if self._features is None:
            self._features, _ = self.env.reset(seed=self.seed)
            self._first = True
        raw_obs = self.env.raw_observation
        if self.num_timesteps < self.config.warmup_steps:
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
            features, _ = self.env.reset()
            self._first = True
        self._features = features
        self._timers["env"] += time.perf_counter() - start

    def _train(self) -> None:
        c = self.config
        since_warmup = self.num_timesteps - c.warmup_steps
        if since_warmup < 0:
            return
        if since_warmup % c.world_model_every == 0:
            start = time.perf_counter()
            batch = self.replay.sample(c.batch_size, c.sequence_length, "world_model", device=self.device)
            self._record(self.world_model.update(batch))
            self._timers["world_model"] += time.perf_counter() - start
        if since_warmup % c.behaviour_every == 0:
            start = time.perf_counter()
            self._record(self.learner.learn())
            self._timers["behaviour"] += time.perf_counter() - start

    def _record(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._metrics.setdefault(key, []).append(value)

    def _log(self, bar: tqdm) -> None:
        scalars = {k: float(np.mean(v)) for k, v in self._metrics.items()}
        scalars.update({f"time/{k}_seconds": v for k, v in self._timers.items()})
        now, steps = time.perf_counter(), self.num_timesteps
        scalars["time/steps_per_second"] = (steps - self._last_log[1]) / max(now - self._last_log[0], 1e-9)
        self._last_log = (now, steps)
        self.logger.log(self.num_timesteps, scalars)
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
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Actions for world-model features (observations of an env wrapped in :class:`LatentObservation`).

        Features carry the recurrent state already, so ``state`` is unused and returned as None (SB3's signature).
        Shapes: observation [feature_dim] or [B, feature_dim] -> action [] or [B].
        """
        obs = np.asarray(observation, dtype=np.float32)
        dim = self.world_model.config.feature_dim
        if obs.shape[-1] != dim or obs.ndim not in (1, 2):
            raise ValueError(
                f"observation must be features of shape [{dim}] or [B, {dim}], got {obs.shape}; "
                "wrap the real env in LatentObservation"
            )
        actions = self.learner.act(obs.reshape(-1, dim), deterministic=deterministic)
        return (actions[0] if obs.ndim == 1 else actions), None

    def evaluate(self, n_episodes: int = 10, deterministic: bool = False, env: EnvSpec | None = None) -> dict[str, Any]:
        """Play ``n_episodes`` whole games in a fresh env and return their returns (Atari: all lives per game).

        The env defaults to a new one made from the id Drama was created with; pass ``env`` otherwise.
        """
        if env is None and self.env_spec is None:
            raise ValueError("Drama was built from an env instance: pass env= (a fresh env or factory) to evaluate")
        wrapped = LatentObservation(make_env(env if env is not None else self.env_spec), self.world_model)
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
        """Write a checkpoint of everything that shapes behaviour, atomically (temp file + rename)."""
        state = {
            "format": "drama_wm",
            "config": self.config.to_dict(),
            "env_spec": self.env_spec,
            "seed": self.seed,
            "learner_name": self.learner_name,
            "world_model": self.world_model.training_state(),
            "learner": self.learner.state_dict(),
            "replay": self.replay.state_dict() if self.config.checkpoint_replay else None,
            "dream": self.dream.state_dict(),
            "acting": self.env.state_dict(),
            "env_pickle": _try_pickle(self.env.env),
            "driver": {
                "num_timesteps": self.num_timesteps,
                "episodes": self.episodes,
                "features": self._features,
                "first": self._first,
                "episode_return": self._episode_return,
                "rng": self._rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "timers": self._timers,
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
    ) -> Drama:
        """Restore a saved agent. The env defaults to the pickled env of the checkpoint (exact continuation) or a
        fresh one from the saved id; external learners must be passed as ``learner`` (an unbound instance)."""
        state = checkpoint.load(path)
        if state["learner_name"] != "actor-critic" and learner is None:
            raise ValueError(f"checkpoint was trained with learner {state['learner_name']!r}: pass learner=")
        restored_env = env if env is not None else _unpickle(state["env_pickle"])
        if restored_env is None and state["env_spec"] is None:
            raise ValueError("the checkpoint's env could not be restored: pass env=")
        config = DramaConfig.from_dict(state["config"])
        agent = cls(
            restored_env if restored_env is not None else state["env_spec"],
            config,
            learner if learner is not None else "actor-critic",
            seed=None,
            device=device,
            logdir=logdir,
        )
        agent.seed, agent.env_spec = state["seed"], state["env_spec"]
        agent.world_model.load_training_state(state["world_model"])
        agent.learner.load_state_dict(state["learner"])
        if state["replay"] is not None:
            agent.replay.load_state_dict(state["replay"])
        agent.dream.load_state_dict(state["dream"])
        driver = state["driver"]
        agent.num_timesteps, agent.episodes = driver["num_timesteps"], driver["episodes"]
        agent._episode_return, agent._timers = driver["episode_return"], driver["timers"]
        agent._rng.bit_generator.state = driver["rng"]
        if state["env_pickle"] is not None and env is None:
            # The pickled env continues the interrupted episode: restore the carried recurrent state too.
            agent.env.load_state_dict(state["acting"])
            agent._features, agent._first = driver["features"], driver["first"]
        torch.set_rng_state(driver["torch_rng"])
        return agent


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


def _try_pickle(env: gym.Env) -> bytes | None:
    """The real env's exact state when it can be pickled (e.g. CartPole); None otherwise (e.g. ALE emulators)."""
    try:
        return pickle.dumps(env)
    except Exception:  # any env may refuse pickling in its own way; then resume starts a new episode
        return None


def _unpickle(blob: bytes | None) -> gym.Env | None:
    return pickle.loads(blob) if blob is not None else None


__all__ = ["Drama", "DramaConfig", "make_env"]
