"""DreamEnv: the world model's imagination as a Gymnasium 1.x vector environment (paper Sec. 2.3-2.4).

Each sub-environment starts from a context of ``context_length`` real steps drawn from the replay buffer with the
imagination sampler (DFS by default, so its counters move), runs the world model over that context in parallel, and
then dreams one O(1) recurrent step per ``step`` call:

- observation: ``"latent"`` gives float32 features [z_t, d_{t-1}] of shape (latent_dim + d_model,) (1536 at XS), the
  same features :class:`~drama_wm.LatentObservation` gives in the real environment; ``"image"`` gives the frame
  decoded from z_t, uint8 (H, W, C), for CNN policies (image world models only).
- reward: the reward head's prediction from d_t; terminated: predicted termination probability > 0.5
  (``termination="threshold"``, the authors' choice) or a Bernoulli draw (``termination="sample"``);
  truncated: ``horizon`` imagined steps were taken since the sub-environment's reset.
- autoreset: ``NEXT_STEP`` (Gymnasium's default; the step after an episode end resets that sub-env, returns its first
  observation with reward 0 and ignores its action), ``SAME_STEP`` (reset at once; the final observation is in
  ``infos["final_obs"]`` with mask ``infos["_final_obs"]``), or ``DISABLED`` (no automatic reset: sub-envs whose
  predicted termination fired keep being imagined, and the caller resets with ``reset(options={"reset_mask": m})``
  or a full ``reset()``; the built-in actor-critic uses this, treating terminated as continuation 0 as the paper does).
- ``array_type="numpy"`` returns numpy arrays (Gymnasium's convention; float32 rewards, bool flags);
  ``array_type="torch"`` keeps everything as tensors on the world model's device, for learners living in torch.

Call ``reset()`` after the world model has been updated: carried recurrent states belong to the weights that made them.

Speed on CUDA (``cuda_graph=True``): at b_img = 1024 one imagined step is about a hundred small kernels, so it is
bound by their launches, not by arithmetic. The step's world-model transition is captured once as a CUDA graph and
replayed: one launch per step. Its noise is drawn before the replay from the same generator in the same order, so
graph and eager steps give the same dream. The graph reads the world model's parameters and the carried state in
place (resets write into them), sees weight updates made in place (optimiser steps, ``load_state_dict``), and is
captured again whenever a parameter or the carried state is re-allocated (``.to(...)``, ``load_state_dict`` here).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from drama_wm.carry import Carry
from drama_wm.checks import positive_int
from drama_wm.names import DREAM_TERMINATIONS
from drama_wm.replay import ReplayBuffer
from drama_wm.world_model import WorldModel


class DreamEnv(gym.vector.VectorEnv):
    """``num_envs`` imagined environments stepped together by one recurrent world-model step.

    Args:
        world_model: the trained :class:`~drama_wm.WorldModel`.
        replay: a :class:`~drama_wm.ReplayBuffer` over the same observation and action spaces.
        num_envs: b_img, number of parallel dreams (paper Table 8: 1024).
        context_length: l_img, real steps the world model reads before dreaming (paper: 8).
        horizon: h, imagined steps before truncation (paper: 16).
        observation: "latent" or "image".
        array_type: "numpy" or "torch".
        device: where dreams run; the world model's device by default.
        autoreset_mode: an :class:`gymnasium.vector.AutoresetMode`.
        termination: "threshold" (terminated when the predicted probability exceeds 0.5; the authors' choice) or
            "sample" (a Bernoulli draw of it). A calibrated head fires the threshold less often than terminations
            happen wherever they are uncertain; BENCHMARKS.md measures how much on MinAtar.
        seed: seeds the start draws and latent samples (as ``reset(seed=...)`` does).
        cuda_graph: on a CUDA device, replay the step's world-model transition as a captured CUDA graph (see the
            module docstring); ignored on other devices.
        check_actions: verify that actions lie in [0, n_actions). The check reads the actions back to the host, a
            device sync per step; a learner whose actions are valid by construction may turn it off.
        compile_step: run the step's world-model transition through ``torch.compile`` when no CUDA graph is used
            (opt-in; also settable later as the attribute ``compile_step``). On one CPU thread it made the transition of
            cpu_demo's model 1.6x faster (2.56 -> 1.59 ms at b=256) after 13-18 s of compilation, about what a 3-minute
            run saved; worth it for longer runs. Needs a C++ compiler; a failed compilation falls back to eager with a
            warning.
    """

    def __init__(
        self,
        world_model: WorldModel,
        replay: ReplayBuffer,
        num_envs: int = 1024,
        context_length: int = 8,
        horizon: int = 16,
        observation: str = "latent",
        array_type: str = "numpy",
        device: torch.device | str | None = None,
        autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
        termination: str = "threshold",
        seed: int | None = None,
        cuda_graph: bool = True,
        check_actions: bool = True,
        compile_step: bool = False,
    ) -> None:
        if world_model.observation_space != replay.observation_space or world_model.action_space != replay.action_space:
            raise ValueError(
                "world model and replay buffer disagree on spaces: "
                f"model {world_model.observation_space}, {world_model.action_space}; "
                f"buffer {replay.observation_space}, {replay.action_space}"
            )
        for name, value in (("num_envs", num_envs), ("context_length", context_length), ("horizon", horizon)):
            positive_int(name, value)
        if observation not in ("latent", "image"):
            raise ValueError(f"observation must be 'latent' or 'image', got {observation!r}")
        if observation == "image" and not world_model.is_image:
            raise ValueError("observation='image' needs a world model of image observations; use 'latent'")
        if array_type not in ("numpy", "torch"):
            raise ValueError(f"array_type must be 'numpy' or 'torch', got {array_type!r}")
        if not isinstance(autoreset_mode, AutoresetMode):
            raise TypeError(f"autoreset_mode must be a gymnasium.vector.AutoresetMode, got {autoreset_mode!r}")
        if termination not in DREAM_TERMINATIONS:
            raise ValueError(f"termination must be one of {', '.join(DREAM_TERMINATIONS)}, got {termination!r}")

        self.world_model = world_model
        self.replay = replay
        self.num_envs = num_envs
        self.context_length = context_length
        self.horizon = horizon
        self.observation = observation
        self.array_type = array_type
        self.termination = termination
        self.device = torch.device(device) if device is not None else world_model.prior_head.weight.device
        self.cuda_graph = bool(cuda_graph) and self.device.type == "cuda"
        self.check_actions = bool(check_actions)
        self.compile_step = bool(compile_step)
        self._compiled_transition: Any = None
        render_modes = ["rgb_array"] if world_model.is_image else []
        self.metadata = {"autoreset_mode": autoreset_mode, "render_modes": render_modes}
        self.render_mode = "rgb_array" if world_model.is_image else None

        if observation == "latent":
            dim = world_model.config.feature_dim
            self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        else:
            self.single_observation_space = world_model.observation_space
        self.single_action_space = world_model.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        self._rng = np.random.default_rng(seed)
        self._generator = torch.Generator(device=self.device)
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)
        self._carry: Carry | None = None  # the dreams' (recurrent state, z_t), set by the first reset
        self._elapsed = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._needs_reset = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        # SAME_STEP only: some sub-envs finished in a step with autoreset=False and await reset(). A host-side flag,
        # so that ordinary steps need no device sync to check it.
        self._restart_pending = False
        self._graph: _StepGraph | None = None

    # ----------------------------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Draw new start contexts (all sub-envs, or those in ``options["reset_mask"]``) and return observations.

        ``seed`` seeds both the start-index draws and the latent samples, so the same world model, buffer state
        and seed give the same dream.
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._generator.manual_seed(seed)
        mask = self._reset_mask(options)
        if self._carry is None and not bool(mask.all()):
            raise ValueError("the first reset must reset every sub-environment (no reset_mask)")
        self._restart(mask)
        return self._output(self._observations()), {}

    def step(self, actions: Any, *, autoreset: bool = True) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Advance every dream by one imagined step; see the module docstring for the exact semantics.

        ``autoreset=False`` (SAME_STEP mode only) restarts no finished sub-env in this step: their observation is the
        final one (also in ``infos["final_obs"]``) and no new start is drawn, so DFS counts move only for starts that
        are dreamed from. For a caller that will ``reset()`` next (an SB3 rollout's last step, whose next
        observation SB3 never uses); stepping again before ``reset()`` raises.
        """
        if self._carry is None:
            raise RuntimeError("call reset() before step()")
        mode = self.metadata["autoreset_mode"]
        if not autoreset and mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"autoreset=False is for AutoresetMode.SAME_STEP dreams, this one is {mode}")
        if mode == AutoresetMode.SAME_STEP and self._restart_pending:
            raise RuntimeError("sub-envs finished in a step taken with autoreset=False: call reset() before step()")
        action = self._check_actions(actions)
        noise = self._draw_noise()
        with torch.no_grad():
            if self.cuda_graph:
                if self._graph is None or not self._graph.valid_for(self):
                    self._graph = _StepGraph(self, noise)
                reward, terminated = self._graph.replay(action, noise)
            else:
                transition = self._compiled() if self.compile_step else self._transition
                self._carry, reward, terminated = transition(self._carry, action, noise)
        self._elapsed += 1
        truncated = (self._elapsed >= self.horizon) & ~terminated
        infos: dict[str, Any] = {}

        if mode == AutoresetMode.NEXT_STEP:
            restarting = self._needs_reset
            if bool(restarting.any()):
                self._restart(restarting)
                reward = reward.masked_fill(restarting, 0.0)
                terminated = terminated & ~restarting
                truncated = truncated & ~restarting
            self._needs_reset = terminated | truncated
            obs = self._observations()
        elif mode == AutoresetMode.SAME_STEP:
            done = terminated | truncated
            obs = self._observations()
            if bool(done.any()):
                infos = {"final_obs": self._output(obs), "_final_obs": self._output(done)}
                if autoreset:
                    self._restart(done)
                    obs = self._observations()
                else:
                    self._needs_reset = done
                    self._restart_pending = True
        else:
            obs = self._observations()
        return self._output(obs), self._output(reward), self._output(terminated), self._output(truncated), infos

    # One stacked array rather than VectorEnv's tuple of frames (tests and SB3's tiling rely on it).
    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """Frames decoded from every sub-env's current latent, uint8 [num_envs, H, W, C]."""
        if not self.world_model.is_image or self._carry is None:
            return None
        with torch.no_grad():
            return self.world_model.decode(self._carry.z).cpu().numpy()

    @property
    def carry(self) -> Carry | None:
        """What the dreams carry (recurrent state holding d_{t-1}, current latent z_t [num_envs, latent_dim]); None
        before the first reset. Its tensors are updated in place by resets: read, do not write."""
        return self._carry

    def state_dict(self) -> dict[str, Any]:
        """RNG states and the carried dreams, so a restored driver dreams on exactly as the original would."""
        carried = None
        if self._carry is not None:  # Carry.state_dict()'s keys, with the dreams' step counts and pending resets
            carried = {**self._carry.state_dict(), "elapsed": self._elapsed, "needs_reset": self._needs_reset}
        return {"rng": self._rng.bit_generator.state, "generator": self._generator.get_state(), "carried": carried}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._generator.set_state(state["generator"])
        carried = state["carried"]
        if carried is not None:
            self._carry = Carry.from_state_dict(carried, self.device)
            self._elapsed = carried["elapsed"].to(self.device)
            self._needs_reset = carried["needs_reset"].to(self.device)
            same_step = self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
            self._restart_pending = same_step and bool(self._needs_reset.any())

    # ----------------------------------------------------------------------------------------------------------------
    def _draw_noise(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """U(0, 1) noise of one step: for the latent draw [B, n_latents, n_classes] and, with termination="sample",
        for the termination draw [B]; drawn in that order from the dream's generator."""
        c, dtype = self.world_model.config, self.world_model.dtype
        shape = (self.num_envs, c.n_latents, c.n_classes)
        latent = torch.rand(shape, generator=self._generator, device=self.device, dtype=dtype)
        if self.termination == "threshold":
            return latent, None
        return latent, torch.rand(self.num_envs, generator=self._generator, device=self.device, dtype=dtype)

    def _compiled(self) -> Any:
        """The transition through ``torch.compile`` (built on first use), or the eager one if compilation fails."""
        if self._compiled_transition is None:
            compiled = torch.compile(self._transition, dynamic=False)

            def guarded(*args: Any) -> Any:
                try:
                    return compiled(*args)
                except Exception as err:  # no compiler, unsupported op, ...: never let a speed option break a run
                    warnings.warn(f"DreamEnv compile_step failed, stepping eagerly: {err}", stacklevel=2)
                    self._compiled_transition = self._transition
                    return self._transition(*args)

            self._compiled_transition = guarded
        return self._compiled_transition

    def _transition(
        self, carry: Carry, action: torch.Tensor, noise: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[Carry, torch.Tensor, torch.Tensor]:
        """The world-model part of a step (no host work, so it can be captured): (carry, reward, terminated)."""
        latent_noise, termination_noise = noise
        state, z_next, reward, p_term = self.world_model.imagine_step(
            carry.state, carry.z, action, uniform=latent_noise
        )
        terminated = p_term > 0.5 if termination_noise is None else termination_noise < p_term
        return Carry(state, z_next), reward, terminated

    def _restart(self, mask: torch.Tensor) -> None:
        """Re-draw contexts for the sub-envs in ``mask`` [num_envs] and run the world model over them in parallel."""
        index = mask.nonzero().squeeze(-1)
        count = int(index.numel())
        if count == 0:
            return
        if len(self.replay) < self.context_length:
            raise ValueError(
                f"the replay buffer holds {len(self.replay)} steps, fewer than context_length={self.context_length}"
            )
        batch = self.replay.sample(count, self.context_length, "imagination", device=self.device, rng=self._rng)
        with torch.no_grad():
            carry, _ = self.world_model.start_dreams(batch, generator=self._generator)
        if self._carry is None:
            self._carry = carry
        else:  # in place: a captured step graph reads these very tensors
            self._carry.put_(index, carry)
        self._elapsed = self._elapsed.masked_fill(mask, 0)
        self._needs_reset = self._needs_reset & ~mask
        if self._restart_pending:  # only after a step with autoreset=False: worth the sync
            self._restart_pending = bool(self._needs_reset.any())

    def _observations(self) -> torch.Tensor:
        carry = self._carry
        assert carry is not None  # observed only after the first reset has set it
        with torch.no_grad():
            if self.observation == "latent":
                return self.world_model.features(carry.z, carry.state).float()
            return self.world_model.decode(carry.z)

    def _output(self, value: torch.Tensor) -> Any:
        return value if self.array_type == "torch" else value.cpu().numpy()

    def _reset_mask(self, options: dict[str, Any] | None) -> torch.Tensor:
        if not options or "reset_mask" not in options:
            return torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        mask = torch.as_tensor(options["reset_mask"], device=self.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != (self.num_envs,):
            raise ValueError(
                f"reset_mask must be bool of shape ({self.num_envs},), got {mask.dtype} {tuple(mask.shape)}"
            )
        return mask

    def _check_actions(self, actions: Any) -> torch.Tensor:
        action = torch.as_tensor(actions, device=self.device)
        if tuple(action.shape) != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(action.shape)}")
        if action.dtype.is_floating_point or action.dtype == torch.bool:
            raise TypeError(f"actions must be integers, got {action.dtype}")
        n = self.world_model.n_actions
        if self.check_actions and bool(((action < 0) | (action >= n)).any()):
            raise ValueError(f"actions must be in [0, {n}), got values {action.unique().tolist()}")
        return action.long()


class _StepGraph:
    """``DreamEnv._transition`` captured as a CUDA graph over the dream's carried state, replayed once per step.

    Inputs (action, noise) are copied into static buffers before a replay; the graph writes the new state into the
    carried tensors in place and leaves reward and terminated in static outputs, which :meth:`replay` returns as
    copies (a later replay overwrites the static ones).
    """

    def __init__(self, dream: DreamEnv, noise: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        device = dream.device
        self.action = torch.zeros(dream.num_envs, dtype=torch.long, device=device)
        latent_noise, termination_noise = noise
        self.noise: tuple[torch.Tensor, torch.Tensor | None] = (  # static input buffers
            torch.zeros_like(latent_noise),
            None if termination_noise is None else torch.zeros_like(termination_noise),
        )
        carry = dream._carry
        assert carry is not None  # step() checks that a reset came first
        # Warm up on a side stream first: lazy library initialisation and kernel autotuning must not be captured.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):
                dream._transition(carry, self.action, self.noise)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            new, self.reward, self.terminated = dream._transition(carry, self.action, self.noise)
            for target, value in zip(carry.tensors(), new.tensors(), strict=True):
                target.copy_(value)
        self.key = self._key(dream)

    @staticmethod
    def _key(dream: DreamEnv) -> tuple[int, ...]:
        """Storage addresses the graph was captured on: parameters, buffers and the carried state."""
        assert dream._carry is not None  # step() checks that a reset came first
        tensors = (*dream.world_model.parameters(), *dream.world_model.buffers(), *dream._carry.tensors())
        return tuple(t.data_ptr() for t in tensors)

    def valid_for(self, dream: DreamEnv) -> bool:
        return self._key(dream) == self.key

    def replay(
        self, action: torch.Tensor, noise: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.action.copy_(action)
        static_latent, static_termination = self.noise
        latent_noise, termination_noise = noise
        static_latent.copy_(latent_noise)
        if static_termination is not None:
            assert termination_noise is not None  # a dream draws the same kinds of noise every step
            static_termination.copy_(termination_noise)
        self.graph.replay()
        return self.reward.clone(), self.terminated.clone()


class SingleDreamEnv(gym.Env):
    """One dream as a plain ``gymnasium.Env`` (for single-env tools such as ``check_env`` or DQN-style learners).

    It wraps a one-sub-env :class:`DreamEnv` with autoreset disabled: like any Gymnasium env, the caller resets after
    ``terminated`` or ``truncated``. Keywords are DreamEnv's (``num_envs`` and ``array_type`` are fixed).
    ``render_mode``: "rgb_array" (image world models; the default there) or None.

    Its ``spec`` (id ``drama_wm/SingleDream-v0``) makes another SingleDreamEnv on the same world model and replay, so
    ``gym.make(env.spec)`` and Gymnasium's ``check_env`` work. The latent observation space is unbounded (the
    backbone's output d has no bounds), which ``check_env`` reports as a warning.
    """

    #: frames per second for videos of dreams: Atari's 60 Hz with the protocol's frame skip of 4
    RENDER_FPS = 15

    def __init__(
        self, world_model: WorldModel, replay: ReplayBuffer, render_mode: str | None = "auto", **dream_kwargs: Any
    ) -> None:
        for key in ("num_envs", "array_type", "autoreset_mode"):
            if key in dream_kwargs:
                raise TypeError(f"SingleDreamEnv fixes {key}; do not pass it")
        self.dream = DreamEnv(
            world_model, replay, num_envs=1, array_type="numpy", autoreset_mode=AutoresetMode.DISABLED, **dream_kwargs
        )
        self.observation_space = self.dream.single_observation_space
        self.action_space = self.dream.single_action_space
        self.metadata = {"render_modes": self.dream.metadata["render_modes"], "render_fps": self.RENDER_FPS}
        if render_mode == "auto":
            render_mode = self.dream.render_mode
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None for this world model, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.spec = gym.envs.registration.EnvSpec(
            "drama_wm/SingleDream-v0",
            entry_point=functools.partial(SingleDreamEnv, world_model, replay, **dream_kwargs),
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self.dream.reset(seed=seed, options=options)
        return obs[0], info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, _ = self.dream.step(np.asarray(action).reshape(1))
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        frames = self.dream.render()
        return None if frames is None else frames[0]
