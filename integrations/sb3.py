"""stable-baselines3 learning in the dream: a VecEnv adapter for DreamEnv and a BehaviourLearner around SB3.

Two ways to use it:

- Standalone, with a trained world model and a replay buffer::

      dream = DreamEnv(world_model, replay, num_envs=64, autoreset_mode=AutoresetMode.SAME_STEP)
      model = PPO("MlpPolicy", DreamVecEnv(dream), gamma=0.985).learn(100_000)
      evaluate_policy(model, Monitor(LatentObservation(gym.make("CartPole-v1"), world_model)))

  The real env wrapped in :class:`~drama_wm.LatentObservation` yields the same features [z_t, d_{t-1}] as the dream,
  so the policy acts there unchanged (call ``dream.reset()`` again whenever the world model has been updated).
- With the driver: ``Drama(env, config, learner=SB3Learner.ppo())`` runs paper Algorithm 1 with PPO as the
  behaviour learner, and saves the SB3 model inside Drama's checkpoint.

Why SAME_STEP autoreset: SB3's VecEnv contract restarts a finished sub-env inside the step that finished it, returns
the new episode's first observation and hands the last one over in ``info["terminal_observation"]``. DreamEnv's
SAME_STEP mode does exactly that, so every SB3 transition is a real imagined transition. NEXT_STEP would add one step
per episode whose action is ignored and whose reward is 0, which SB3 would learn from as if it were a transition.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn

from drama_wm import DreamEnv
from drama_wm.checks import positive_int
from drama_wm.config_io import is_plain
from drama_wm.learners import LearnerConfig

try:
    from stable_baselines3 import PPO
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    from stable_baselines3.common.vec_env import VecEnv, VecMonitor
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices
except ImportError as error:  # the core package works without SB3; only this optional module needs it
    raise ImportError(
        "drama_wm.integrations.sb3 needs stable-baselines3, which is not installed: pip install \"drama-wm[sb3]\""
    ) from error

#: parallel dreams per SB3Learner when the caller gives none (64 x horizon 16 = 1024 samples per PPO update)
DEFAULT_NUM_ENVS = 64


class DreamVecEnv(VecEnv):
    """A :class:`~drama_wm.DreamEnv` as a stable-baselines3 ``VecEnv`` (SB3 2.x takes no Gymnasium vector envs).

    The dream must be built with ``array_type="numpy"`` and ``autoreset_mode=AutoresetMode.SAME_STEP``.
    ``step(actions [N] int)`` returns observations [N, *obs_shape] (float32 features or uint8 frames), rewards float32
    [N], dones bool [N] = terminated | truncated, and N info dicts. A done sub-env has already restarted from a new
    DFS-drawn context, so its observation is the new dream's first; ``info["terminal_observation"]`` holds the last
    observation of the finished dream. ``info["TimeLimit.truncated"]`` (in every info, as in SB3's DummyVecEnv) is True
    exactly when the horizon, not a predicted termination, ended the dream, so SB3's on-policy algorithms bootstrap
    from V(terminal_observation) after a truncation and not after a termination.

    The N sub-envs are rows of one DreamEnv driven by one generator: ``seed(s)`` makes the next ``reset()`` seed that
    generator (start draws and latent samples), ``get_attr`` returns the dream's attribute once per index, and
    ``set_attr`` / ``env_method`` act on the whole dream, so they accept only all indices.

    ``rollout_length``: when set, the caller promises to ``reset()`` after that many steps (SB3Learner does, before
    every ``learn()``). The step that reaches it restarts no finished dream: SB3 uses the observation after a
    rollout's last step only for sub-envs that did not finish there, so a restart would draw DFS starts (and move
    their imagination counts) that nobody dreams from. Stepping past it without a ``reset()`` raises.
    """

    def __init__(self, dream_env: DreamEnv, rollout_length: int | None = None) -> None:
        if not isinstance(dream_env, DreamEnv):
            raise TypeError(f"DreamVecEnv wraps a drama_wm.DreamEnv, got {type(dream_env).__name__}")
        if dream_env.array_type != "numpy":
            raise ValueError(f"DreamVecEnv needs a DreamEnv with array_type='numpy', got {dream_env.array_type!r}")
        mode = dream_env.metadata["autoreset_mode"]
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "DreamVecEnv needs a DreamEnv with autoreset_mode=AutoresetMode.SAME_STEP (SB3 restarts finished "
                f"sub-envs within the step and reports terminal_observation), got {mode}"
            )
        if rollout_length is not None:  # None: no limit
            positive_int("rollout_length", rollout_length)
        self.dream = dream_env
        self.rollout_length = rollout_length
        self._steps_since_reset = 0
        self._actions: np.ndarray | None = None
        # The base constructor reads render_mode through get_attr, which needs self.dream.
        super().__init__(dream_env.num_envs, dream_env.single_observation_space, dream_env.single_action_space)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next ``reset()``; every sub-env shares the dream's one generator, so each entry is ``seed``."""
        self._seeds = [seed] * self.num_envs
        return self._seeds

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """DreamEnv resets take no options through SB3 (``reset()`` always restarts every dream)."""
        given: list[dict | None] = list(options) if isinstance(options, list) else [options]
        if any(given):
            raise ValueError(f"DreamVecEnv.reset() restarts every dream and takes no options, got {options!r}")

    def reset(self) -> np.ndarray:
        """Restart every dream from new contexts; returns observations [N, *obs_shape]."""
        obs, _ = self.dream.reset(seed=self._seeds[0])
        self._steps_since_reset = 0
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        actions, self._actions = self._actions, None
        self._steps_since_reset += 1
        limit = self.rollout_length
        last = limit is not None and self._steps_since_reset >= limit
        if limit is not None and self._steps_since_reset > limit:
            raise RuntimeError(f"stepped past rollout_length={self.rollout_length} without reset()")
        obs, reward, terminated, truncated, info = self.dream.step(actions, autoreset=not last)
        # DreamEnv's truncated already excludes sub-envs whose predicted termination fired on the same step.
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": bool(t)} for t in truncated]
        if "final_obs" in info:  # SAME_STEP puts it there only on steps where some sub-env finished
            for i in np.flatnonzero(info["_final_obs"]):
                infos[i]["terminal_observation"] = info["final_obs"][i]
        return obs, reward.astype(np.float32, copy=False), terminated | truncated, infos

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.dream, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._require_all(indices, "set_attr")
        setattr(self.dream, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call the dream's method once (it serves every sub-env); its result is repeated for each index."""
        self._require_all(indices, "env_method")
        result = getattr(self.dream, method_name)(*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        # Sub-envs are rows of one imagined batch, not gym.Env instances: no gym.Wrapper can wrap them.
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Frames decoded from every dream's current latent, N arrays uint8 [H, W, C] (image world models only)."""
        if self.dream.render_mode is None:
            return [None] * self.num_envs
        frames = self.dream.render()
        if frames is None:
            raise RuntimeError("call reset() before render()")
        return list(frames)

    def close(self) -> None:
        self.dream.close()

    def _require_all(self, indices: VecEnvIndices, what: str) -> None:
        chosen = sorted(set(self._get_indices(indices)))
        if chosen != list(range(self.num_envs)):
            raise ValueError(
                f"{what} acts on the one DreamEnv behind all {self.num_envs} sub-envs: pass indices=None, got {indices}"
            )


@dataclass
class SB3PPOConfig(LearnerConfig, kind="sb3-ppo"):
    """stable-baselines3 PPO in the dream as plain data: :meth:`SB3Learner.ppo`'s arguments. ``DramaConfig(learner=
    SB3PPOConfig())`` trains with it, and its checkpoints load without passing the learner again."""

    rollouts_per_learn: int = 1
    num_envs: int = 64  #: parallel dreams (DEFAULT_NUM_ENVS)
    observation: str = "latent"  #: "latent" (MLP policy on features) or "image" (CNN policy on decoded frames)
    #: further ``PPO(...)`` keywords; plain data only (numbers, strings, lists, dicts), as checkpoints store them
    ppo_kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self) -> SB3Learner:
        return SB3Learner.ppo(self.rollouts_per_learn, self.num_envs, self.observation, **self.ppo_kwargs)


class SB3Learner:
    """Any stable-baselines3 on-policy algorithm (PPO, A2C) with Discrete actions as a Drama behaviour learner.

    Implements :class:`drama_wm.learners.BehaviourLearner`. Each ``learn()`` restarts the dreams from fresh DFS
    contexts (the driver updates the world model between calls, and carried recurrent states belong to the weights
    that made them) and runs ``rollouts_per_learn`` SB3 rollouts of ``n_steps`` steps per dream, each followed by the
    algorithm's update. With ``n_steps`` equal to the dream's horizon (``SB3Learner.ppo``'s default), one rollout is
    exactly one imagined trajectory per dream, as in the paper's imagination (Sec. 2.3).

    Args:
        model_or_factory: ``factory(vec_env) -> OnPolicyAlgorithm``, called once by the first ``bind`` with the dream
            as a ``VecMonitor(DreamVecEnv(dream))``, or a prebuilt on-policy model whose spaces and ``n_envs`` match
            the dream (e.g. from ``PPO.load``).
        rollouts_per_learn: SB3 rollouts (and updates) per ``learn()`` call.
        num_envs: parallel dreams; the prebuilt model's ``n_envs`` or :data:`DEFAULT_NUM_ENVS` when None.
        observation: "latent" (features [z_t, d_{t-1}], MLP policies) or "image" (frames decoded from z_t, CNN
            policies; image world models only). In "image" mode ``act`` decodes z_t from the features it is given, so
            the policy sees reconstructions in the real env just as in the dream.

    Learning-rate or clip-range schedules see SB3's progress over the cumulative timesteps of all calls, so constant
    values are the meaningful choice. The model's logger is replaced by a silent one unless the factory set its own
    (``model.set_logger``); ``learn`` returns SB3's last training metrics instead, prefixed "behaviour/".
    """

    def __init__(
        self,
        model_or_factory: OnPolicyAlgorithm | Callable[[VecEnv], OnPolicyAlgorithm],
        rollouts_per_learn: int = 1,
        num_envs: int | None = None,
        observation: str = "latent",
    ) -> None:
        self.model: OnPolicyAlgorithm | None = None
        self._factory: Callable[[VecEnv], OnPolicyAlgorithm] | None = None
        if isinstance(model_or_factory, BaseAlgorithm):
            self.model = _check_on_policy(model_or_factory)
            if num_envs is None:
                num_envs = self.model.n_envs
            elif num_envs != self.model.n_envs:
                raise ValueError(f"num_envs={num_envs} differs from the prebuilt model's n_envs={self.model.n_envs}")
        elif callable(model_or_factory):
            self._factory = model_or_factory
        else:
            raise TypeError(
                "model_or_factory must be an SB3 on-policy model or a callable vec_env -> model, "
                f"got {type(model_or_factory).__name__}"
            )
        num_envs = DEFAULT_NUM_ENVS if num_envs is None else num_envs
        for name, value in (("rollouts_per_learn", rollouts_per_learn), ("num_envs", num_envs)):
            positive_int(name, value)
        if observation not in ("latent", "image"):
            raise ValueError(f"observation must be 'latent' or 'image', got {observation!r}")
        self.rollouts_per_learn = rollouts_per_learn
        self.observation = observation
        self.dream_options: dict[str, Any] = {
            "num_envs": num_envs,
            "array_type": "numpy",
            "observation": observation,
            "autoreset_mode": AutoresetMode.SAME_STEP,
        }
        self.dream: DreamEnv | None = None
        self.vec_env: VecMonitor | None = None
        #: the plain-data config this learner was built from (``SB3Learner.ppo`` with plain keywords), else None
        self.config: SB3PPOConfig | None = None

    @classmethod
    def ppo(
        cls,
        rollouts_per_learn: int = 1,
        num_envs: int = DEFAULT_NUM_ENVS,
        observation: str = "latent",
        **ppo_kwargs: Any,
    ) -> SB3Learner:
        """PPO with defaults for short dreams; any ``PPO(...)`` keyword (``policy`` too) overrides them.

        - ``n_steps`` = the dream's horizon (16 in the paper): one rollout is one whole imagined trajectory per dream
          from fresh contexts; at the horizon SB3 bootstraps from V(terminal_observation), so the value function
          carries returns past the 16 dreamed steps.
        - ``gamma`` 0.985, ``gae_lambda`` 0.95: the paper's discount and lambda (Table 8).
        - ``batch_size`` = a quarter of the rollout (4 minibatches) and ``n_epochs`` 4: the driver calls learn()
          every ``behaviour_every`` real steps with new dreams each time, so PPO's usual 10 epochs over one rollout
          would mostly refit data that the next call replaces anyway, at 2.5 times the cost.
        - ``ent_coef`` 0.01: SB3 normalises advantages per minibatch, so the usual PPO entropy bonus applies.
        - MLP policy with the paper's actor (2 x 256) and critic (2 x 512) widths and SiLU activations (Table 8);
          "image" observations get SB3's CnnPolicy instead.
        - ``device``: the dream's device (the rollout batches, num_envs x horizon, are large enough for a GPU).
        """
        given = dict(ppo_kwargs)
        cnn = observation == "image"
        policy = ppo_kwargs.pop("policy", "CnnPolicy" if cnn else "MlpPolicy")

        def factory(vec_env: VecEnv) -> PPO:
            adapter = vec_env.unwrapped
            assert isinstance(adapter, DreamVecEnv)  # bind() calls the factory with its wrapped DreamVecEnv
            dream = adapter.dream
            n_steps = ppo_kwargs.get("n_steps", dream.horizon)
            kwargs: dict[str, Any] = {
                "n_steps": n_steps,
                "batch_size": max(n_steps * vec_env.num_envs // 4, 2),
                "n_epochs": 4,
                "gamma": 0.985,
                "gae_lambda": 0.95,
                "ent_coef": 0.01,
                "learning_rate": 3e-4,
                "device": dream.device,
                "verbose": 0,
            }
            if not cnn:
                kwargs["policy_kwargs"] = {"net_arch": {"pi": [256, 256], "vf": [512, 512]}, "activation_fn": nn.SiLU}
            kwargs.update(ppo_kwargs)
            with warnings.catch_warnings():
                # SB3 advises CPU for MLP policies; dream batches are large, so the dream's device is kept on purpose.
                warnings.filterwarnings("ignore", message="You are trying to run PPO on the GPU")
                return PPO(policy, vec_env, **kwargs)

        learner = cls(factory, rollouts_per_learn, num_envs, observation)
        if is_plain(given):
            learner.config = SB3PPOConfig(rollouts_per_learn, num_envs, observation, given)
        return learner

    # ----------------------------------------------------------------------------------------------------------------
    def bind(self, dream: DreamEnv) -> None:
        """Build the SB3 model on ``VecMonitor(DreamVecEnv(dream))`` (first call) or re-attach it to a new dream."""
        given = {
            "num_envs": dream.num_envs,
            "array_type": dream.array_type,
            "observation": dream.observation,
            "autoreset_mode": dream.metadata["autoreset_mode"],
        }
        if given != self.dream_options:
            raise ValueError(
                f"SB3Learner needs a DreamEnv built with its dream_options {self.dream_options}, got {given}"
            )
        adapter = DreamVecEnv(dream)
        vec_env = VecMonitor(adapter)  # adds info["episode"], so SB3 tracks imagined returns
        if self.model is None:  # first bind of a factory-built learner
            assert self._factory is not None  # __init__ took either a model or a factory
            self.model = _check_on_policy(self._factory(vec_env))
        model = self.model
        # learn() resets the dream before every call: its last step need not restart finished dreams.
        adapter.rollout_length = self.rollouts_per_learn * model.n_steps
        if model.n_envs != vec_env.num_envs:
            raise ValueError(f"the SB3 model has n_envs={model.n_envs}, the dream has num_envs={vec_env.num_envs}")
        current = model.get_env()
        try:
            # A model the factory just built on vec_env is attached already (SB3 may have wrapped it, e.g. in
            # VecTransposeImage for CNN policies); anything else is attached and checked by SB3 here.
            if current is None or current.unwrapped is not vec_env.unwrapped:
                model.set_env(vec_env, force_reset=True)
        except ValueError as error:
            raise ValueError(
                f"the SB3 model's spaces ({model.observation_space}, {model.action_space}) do not match the dream's "
                f"({vec_env.observation_space}, {vec_env.action_space}): {error}"
            ) from error
        # A silent logger: the default one would print (verbose >= 1) and make a temp folder on every learn() call.
        if not getattr(model, "_custom_logger", False):
            model.set_logger(Logger(folder=None, output_formats=[]))
        self.dream, self.vec_env = dream, vec_env

    def learn(self) -> dict[str, float]:
        """``rollouts_per_learn`` rollouts + updates from fresh dreams; returns SB3's metrics prefixed "behaviour/"."""
        model, _ = self._require_bound()
        bound_env = model.get_env()
        assert bound_env is not None  # bind() attached one
        model.set_env(bound_env, force_reset=True)  # fresh contexts for the (possibly updated) world model
        model.learn(
            total_timesteps=self.rollouts_per_learn * model.n_steps * model.n_envs,
            reset_num_timesteps=False,
            progress_bar=False,
        )
        # SB3 dumps (and clears) its logger after each rollout, before the update: what is left is the last update's.
        metrics = {
            f"behaviour/{key}": float(value)
            for key, value in model.logger.name_to_value.items()
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        }
        if model.ep_info_buffer:  # the last (up to 100) finished dreams
            metrics["behaviour/rollout/ep_rew_mean"] = float(np.mean([ep["r"] for ep in model.ep_info_buffer]))
            metrics["behaviour/rollout/ep_len_mean"] = float(np.mean([ep["l"] for ep in model.ep_info_buffer]))
        return metrics

    def act(self, features: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """features [B, feature_dim] (world-model features [z_t, d_{t-1}]) -> actions [B] int64."""
        model, dream = self._require_bound()
        x = np.asarray(features)
        dim = dream.world_model.config.feature_dim
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"features must have shape [B, {dim}], got {x.shape}")
        obs = x if self.observation == "latent" else self._decode(x)
        actions, _ = model.predict(obs, deterministic=deterministic)
        return np.asarray(actions, dtype=np.int64).reshape(x.shape[0])

    def state_dict(self) -> dict[str, Any]:
        """The SB3 model as tensors and plain data: its class path, the policy's weights and optimiser state and the
        counters that drive SB3's schedules (no pickled objects, unlike SB3's own zip files, so checkpoints load
        with ``weights_only=True``)."""
        model, _ = self._require_bound()
        return {
            "algorithm": _class_path(model),
            "observation": self.observation,
            "policy": model.policy.state_dict(),
            "optimizer": model.policy.optimizer.state_dict(),
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(getattr(model, "_n_updates", 0)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into this learner's model (built by ``bind`` with the same algorithm and
        policy architecture; the driver binds before loading)."""
        model, _ = self._require_bound()
        if state["algorithm"] != _class_path(model) or state["observation"] != self.observation:
            raise ValueError(
                f"the checkpoint holds a {state['algorithm']} model on {state['observation']!r} observations; this "
                f"learner has a {_class_path(model)} model on {self.observation!r} observations"
            )
        try:
            model.policy.load_state_dict(state["policy"])
        except RuntimeError as error:
            raise ValueError(
                f"the checkpoint's {state['algorithm']} policy has another architecture than this learner's: {error}"
            ) from None
        model.policy.optimizer.load_state_dict(state["optimizer"])
        model.num_timesteps = int(state["num_timesteps"])
        model._n_updates = int(state["n_updates"])

    # ----------------------------------------------------------------------------------------------------------------
    def _require_bound(self) -> tuple[OnPolicyAlgorithm, DreamEnv]:
        """The model and the dream once ``bind`` has attached them."""
        if self.dream is None or self.model is None:
            raise RuntimeError("call bind(dream) first")
        return self.model, self.dream

    def _decode(self, features: np.ndarray) -> np.ndarray:
        """features [B, feature_dim] -> frames uint8 [B, H, W, C] decoded from their z_t part."""
        _, dream = self._require_bound()
        wm = dream.world_model
        z = torch.as_tensor(features[:, : wm.config.latent_dim], dtype=torch.float32, device=dream.device)
        with torch.no_grad():
            return wm.decode(z).cpu().numpy()


def _check_on_policy(model: Any) -> OnPolicyAlgorithm:
    if not isinstance(model, OnPolicyAlgorithm):
        raise TypeError(
            "SB3Learner runs stable-baselines3 on-policy algorithms (PPO, A2C, ...), got "
            f"{type(model).__name__}; off-policy algorithms need their own replay and update schedule"
        )
    if not isinstance(model.action_space, gym.spaces.Discrete):
        raise TypeError(f"SB3Learner needs a Discrete action space, the model has {model.action_space}")
    return model


def _class_path(model: BaseAlgorithm) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


__all__ = ["DEFAULT_NUM_ENVS", "DreamVecEnv", "SB3Learner", "SB3PPOConfig"]
