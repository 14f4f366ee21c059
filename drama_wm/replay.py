"""Sequence replay buffer with dynamic frequency-based sampling (DFS, paper Sec. 2.4).

Storage convention (the world model relies on it). Row ``t`` holds observation o_t, the action a_t taken at o_t,
the reward r_t and ``terminated`` flag received after taking a_t (so ``terminated[t]`` True means o_{t+1} would be
terminal / the episode ended after a_t), and ``first[t]`` True when o_t is the first observation of an episode (a
truncation ends an episode without a termination: the next step simply has first=True). The last step of an
episode is stored with the action taken and the reward received; the terminal observation itself is not stored --
that is the STORM/Drama convention. ``terminated`` need not be followed by ``first`` (Atari life losses are stored
as terminations while the game goes on), so the buffer does not enforce any relation between the two flags.

Storage is a ring of preallocated numpy arrays; a sampled sequence is ``length`` consecutive steps in time that may
cross episode boundaries (``first`` tells the world model where to reset) but never the write head. Sampling
gathers only the drawn windows with one fancy index of shape [batch, length].

DFS keeps two counters per start index i: v_i (world-model draws) and b_i (imagination draws).

* world model: p = softmax(-v / tau), then v_i += 1 per drawn start (paper: softmax(-v), i.e. tau = 1; the
  authors' code uses tau = 10, a softer preference for rarely drawn starts).
* imagination: p = softmax(min(0, v - b / imagine_scale) / tau_img), then b_i += 1 per drawn start. The paper's
  f(v, b) = v - b - max(0, v - b) = min(0, v - b): starts the world model has trained on at least as often as
  they were imagined from are equally likely, over-imagined ones are down-weighted exponentially. An imagination
  batch (1024 starts) is 64x larger than a world-model batch (16), so the authors' code (``replay_buffer.py``)
  divides b by ImagineBatchSize / BatchSize = 64 before comparing it with v; ``imagine_scale`` is that ratio.

Observations can also be kept on an accelerator (``device="cuda"``): a copy of the observation ring lives there and
batches sampled for that device are gathered on it. At paper scale an imagination start gathers 1024 x 8 frames
(100 MB); gathering them on the host and copying them over cost about 37 ms per start on an H100 machine. The
numpy arrays stay the source of truth (saving, ``state_dict``).

Imagination never starts from a context whose last step is terminated (a termination or an Atari life loss): the
dream's first latent is drawn from the prior at d of that step, and after a terminal there is no successor in the
episode to imagine (at a real termination the loss never trains the prior there either). Such windows are not
valid imagination starts at all, so they are never drawn and their b_i never move.

Counters of a slot are reset to 0 when the slot is overwritten, since it then holds new data. The uniform sampler
(the paper's Table 4 ablation) ignores the counters but still updates them.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drama_wm.checkpoint import atomic_write
from drama_wm.checks import positive_int
from drama_wm.names import SAMPLER_KINDS

PURPOSES = ("world_model", "imagination")
_STEP_KEYS = ("observation", "action", "reward", "terminated", "first")
_COUNT_KEYS = ("train_counts", "imagine_counts")


@dataclass(frozen=True)
class SamplerConfig:
    """How sequence starts are drawn (formulas in the module docstring).

    kind: "dfs" or "uniform". tau: world-model temperature. tau_img: imagination temperature. imagine_scale: b is
    divided by this (imagination batch / world-model batch, 1024 / 16) before it is compared with v.
    replacement: False (default, the authors' code) draws distinct starts within a batch, so a batch needs at least
    ``batch_size`` valid starts (:meth:`ReplayBuffer.can_sample`); True draws with replacement and counts a repeated
    start with multiplicity.
    """

    kind: str = "dfs"
    tau: float = 10.0
    tau_img: float = 10.0
    imagine_scale: float = 64.0
    replacement: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SAMPLER_KINDS:
            raise ValueError(f"sampler kind must be one of {SAMPLER_KINDS}, got {self.kind!r}")
        for name in ("tau", "tau_img", "imagine_scale"):
            value = getattr(self, name)
            # `not value > 0` rejects NaN too; typeshed's numbers.Real declares no __gt__
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:  # type: ignore[operator]
                raise ValueError(f"SamplerConfig.{name} must be a positive number, got {value!r}")
        if not isinstance(self.replacement, bool):
            raise TypeError(f"SamplerConfig.replacement must be a bool, got {self.replacement!r}")


@dataclass(frozen=True)
class Batch:
    """Sampled sequences; B = batch size, T = sequence length. Row convention: see the module docstring."""

    observation: torch.Tensor  # [B, T, H, W, C] uint8 (images) or [B, T, D] float32 (vectors)
    action: torch.Tensor  # [B, T] int64
    reward: torch.Tensor  # [B, T] float32
    terminated: torch.Tensor  # [B, T] bool
    first: torch.Tensor  # [B, T] bool
    start: torch.Tensor  # [B] int64, storage index of each sequence's first step


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())  # subtracting the max keeps exp() from overflowing
    return z / z.sum()


def _resolve(device: torch.device) -> torch.device:
    """The device with its index filled in (CUDA's current one), so that "cuda" and "cuda:0" compare equal."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")


def _check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    box = observation_space if isinstance(observation_space, gym.spaces.Box) else None
    image = box is not None and len(box.shape) == 3 and box.dtype == np.uint8
    vector = box is not None and len(box.shape) == 1 and np.issubdtype(box.dtype, np.floating)
    if not (image or vector):
        raise TypeError(
            f"unsupported observation space {observation_space}: expected a uint8 Box of shape (H, W, C) "
            "(images) or a floating-point Box of shape (D,) (vectors)"
        )
    if not (isinstance(action_space, gym.spaces.Discrete) and int(action_space.start) == 0):
        raise TypeError(f"unsupported action space {action_space}: expected gymnasium.spaces.Discrete(n) starting at 0")


class ReplayBuffer:
    """Ring buffer of steps with per-start DFS counters; see the module docstring for conventions.

    Image observations are stored as uint8 [capacity, H, W, C], vectors as float32 [capacity, D]. With ``device``,
    a copy of the observations is also kept on that device (``capacity`` x frame bytes of its memory, 1.2 GB for
    100k Atari frames) and :meth:`sample` gathers observations there when asked for that device.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Discrete,
        capacity: int,
        sampler: str | SamplerConfig = "dfs",
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        _check_spaces(observation_space, action_space)
        if isinstance(sampler, str):
            sampler = SamplerConfig(kind=sampler)
        if not isinstance(sampler, SamplerConfig):
            raise TypeError(f"sampler must be one of {SAMPLER_KINDS} or a SamplerConfig, got {sampler!r}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.capacity = positive_int("capacity", capacity)
        self.sampler = sampler
        self.total_added = 0
        self._pos = 0  # next slot to write
        self._size = 0  # steps currently stored
        self._rng = np.random.default_rng(seed)
        self._image = len(observation_space.shape) == 3
        obs_dtype = np.uint8 if self._image else np.float32
        # np.zeros maps untouched pages lazily, so a 100k-frame buffer costs memory only as it fills.
        self._data = {
            "observation": np.zeros((self.capacity, *observation_space.shape), dtype=obs_dtype),
            "action": np.zeros(self.capacity, dtype=np.int64),
            "reward": np.zeros(self.capacity, dtype=np.float32),
            "terminated": np.zeros(self.capacity, dtype=bool),
            "first": np.zeros(self.capacity, dtype=bool),
        }
        self.train_counts = np.zeros(self.capacity, dtype=np.int64)  # v_i
        self.imagine_counts = np.zeros(self.capacity, dtype=np.int64)  # b_i
        self.device = None if device is None else _resolve(torch.device(device))
        self._device_observations = (
            None if self.device is None else torch.from_numpy(self._data["observation"]).to(self.device, copy=True)
        )

    def __len__(self) -> int:
        return self._size

    # ------------------------------------------------------------------ writing
    def add(self, observation: np.ndarray, action: int, reward: float, terminated: bool, first: bool) -> None:
        """Store one step (o_t, a_t, r_t, terminated_t, first_t); observation has the space's shape."""
        self.add_batch(
            np.asarray(observation)[None],
            np.asarray([action]),
            np.asarray([reward]),
            np.asarray([terminated]),
            np.asarray([first]),
        )

    def add_batch(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        first: np.ndarray,
    ) -> None:
        """Store N consecutive steps in time order: observations [N, *obs_shape], the others [N].

        Same result as N calls of :meth:`add`; if N exceeds the capacity only the newest ``capacity`` steps remain.
        """
        obs = np.asarray(observations)
        shape = self.observation_space.shape
        if obs.ndim != len(shape) + 1 or obs.shape[1:] != shape:
            raise ValueError(
                f"observation shape {obs.shape[1:]} (after the leading step axis) does not match the "
                f"observation space shape {shape}"
            )
        if self._image and obs.dtype != np.uint8:
            raise ValueError(f"image observations must be uint8 like the observation space, got {obs.dtype}")
        if not self._image and not np.issubdtype(obs.dtype, np.floating):
            raise ValueError(f"vector observations must be floating point, got {obs.dtype}")
        n = obs.shape[0]
        steps = {"observation": obs}
        # numpy dtype kinds: i/u integer, f floating, b bool. Nothing is cast silently from another kind.
        checks = (
            ("action", actions, "iu", "integer"),
            ("reward", rewards, "iuf", "real"),
            ("terminated", terminated, "b", "bool"),
            ("first", first, "b", "bool"),
        )
        for name, value, kinds, description in checks:
            array = np.asarray(value)
            if array.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) to match the observations, got {array.shape}")
            if array.dtype.kind not in kinds:
                raise ValueError(f"{name} must be {description}, got dtype {array.dtype}")
            steps[name] = array
        n_actions = int(self.action_space.n)
        if n and (steps["action"].min() < 0 or steps["action"].max() >= n_actions):
            raise ValueError(f"actions must lie in [0, {n_actions}), got {steps['action'].tolist()}")
        if not np.all(np.isfinite(steps["reward"])):
            raise ValueError(f"rewards must be finite, got {steps['reward'].tolist()}")

        keep = min(n, self.capacity)  # older steps of an over-long batch would be overwritten within it anyway
        slots = (self._pos + (n - keep) + np.arange(keep)) % self.capacity
        for name, array in steps.items():
            self._data[name][slots] = array[n - keep :]
        if self._device_observations is not None:
            where = torch.as_tensor(slots, device=self.device)
            self._device_observations[where] = torch.as_tensor(obs[n - keep :], device=self.device)
        self.train_counts[slots] = 0  # overwritten slots hold new data: forget how often the old data was drawn
        self.imagine_counts[slots] = 0
        self._pos = (self._pos + n) % self.capacity
        self._size = min(self._size + n, self.capacity)
        self.total_added += n

    # ----------------------------------------------------------------- sampling
    def valid_starts(self, length: int, purpose: str = "world_model") -> np.ndarray:
        """Storage indices i whose steps i..i+length-1 (mod capacity) are stored and consecutive in time, oldest
        first; windows never cross the write head. For ``purpose="imagination"`` windows whose last step is
        terminated are left out: a dream starts from its context's last real transition, and after a terminal
        there is nothing to imagine. Shape [at most max(0, len - length + 1)], int64."""
        length = positive_int("length", length)
        _check_purpose(purpose)
        count = max(0, self._size - length + 1)
        oldest = (self._pos - self._size) % self.capacity
        starts = (oldest + np.arange(count, dtype=np.int64)) % self.capacity
        if purpose == "imagination":
            starts = starts[~self._data["terminated"][(starts + length - 1) % self.capacity]]
        return starts

    def can_sample(self, batch_size: int, length: int, purpose: str) -> bool:
        """Whether :meth:`sample` can draw ``batch_size`` windows of ``length`` steps for ``purpose`` now."""
        available = len(self.valid_starts(length, purpose))
        return available > 0 and (self.sampler.replacement or available >= batch_size)

    def sampling_probabilities(self, length: int, purpose: str) -> np.ndarray:
        """Probability of each start in ``valid_starts(length, purpose)`` (same order) for the next draw; float64."""
        _check_purpose(purpose)
        return self._probabilities(self._starts_or_raise(length, purpose), purpose)

    def sample(
        self,
        batch_size: int,
        length: int,
        purpose: str,
        device: torch.device | str | None = None,
        rng: np.random.Generator | None = None,
    ) -> Batch:
        """Draw ``batch_size`` sequences of ``length`` steps for ``purpose`` and update that purpose's counters.

        ``rng`` draws the starts instead of the buffer's own generator (DreamEnv passes its seeded one, so a seeded
        dream is reproducible without disturbing the world model's sampling stream).
        """
        _check_purpose(purpose)
        batch_size = positive_int("batch_size", batch_size)
        starts = self._starts_or_raise(length, purpose)
        if not self.sampler.replacement and batch_size > len(starts):
            raise ValueError(
                f"cannot draw {batch_size} distinct starts without replacement: only {len(starts)} valid starts"
            )
        p = self._probabilities(starts, purpose)
        rng = self._rng if rng is None else rng
        drawn = starts[rng.choice(len(starts), size=batch_size, replace=self.sampler.replacement, p=p)]
        counts = self.train_counts if purpose == "world_model" else self.imagine_counts
        np.add.at(counts, drawn, 1)  # unbuffered, so a start drawn k times is counted k times
        return self._gather(drawn, length, device)

    def gather(self, starts: np.ndarray, length: int, device: torch.device | str | None = None) -> Batch:
        """The windows of ``length`` steps at the storage indices ``starts`` [B] (each one of
        ``valid_starts(length)``), as :meth:`sample` returns them, but chosen by the caller: nothing is drawn and no
        counter moves."""
        length = positive_int("length", length)
        starts = np.asarray(starts)
        if starts.ndim != 1 or starts.dtype.kind not in "iu":
            raise ValueError(
                f"starts must be a 1-D integer array of storage indices, got {starts.dtype} of shape {starts.shape}"
            )
        invalid = starts[~np.isin(starts, self.valid_starts(length))]
        if len(invalid):
            raise ValueError(
                f"starts {invalid[:8].tolist()} are not starts of stored windows of {length} steps; "
                f"take them from valid_starts({length})"
            )
        return self._gather(starts.astype(np.int64), length, device)

    def field(self, name: str) -> np.ndarray:
        """One stored step field over every storage slot, a read-only view [capacity, ...] of the live buffer:
        ``observation`` (uint8 images or float32 vectors), ``action`` (int64), ``reward`` (float32), ``terminated``,
        ``first`` (bool). Index it with storage indices such as :meth:`valid_starts`'s; slots not yet written hold
        zeros. A view of the storage as it is now: read it again after :meth:`load_state_dict`. Row convention: see
        the module docstring."""
        if name not in _STEP_KEYS:
            raise ValueError(f"field must be one of {_STEP_KEYS}, got {name!r}")
        view = self._data[name].view()
        view.flags.writeable = False
        return view

    def _gather(self, drawn: np.ndarray, length: int, device: torch.device | str | None) -> Batch:
        """The windows at the (already checked) storage indices ``drawn`` [B], with observations gathered on the
        buffer's device copy when ``device`` is that device."""
        index = (drawn[:, None] + np.arange(length)) % self.capacity  # [B, T]: gathers only the drawn windows
        device_observations = self._device_observations
        if device is None or device_observations is None or _resolve(torch.device(device)) != self.device:
            device_observations = None  # gather the observations on the host
        fields = {
            name: torch.as_tensor(array[index], device=device)
            for name, array in self._data.items()
            if not (device_observations is not None and name == "observation")
        }
        if device_observations is not None:
            fields["observation"] = device_observations[torch.as_tensor(index, device=self.device)]
        return Batch(**fields, start=torch.as_tensor(drawn, device=device))

    def _starts_or_raise(self, length: int, purpose: str) -> np.ndarray:
        starts = self.valid_starts(length, purpose)
        if len(starts) == 0:
            ending = " that do not end on a terminated step" if purpose == "imagination" else ""
            raise ValueError(
                f"cannot sample {purpose} sequences of length {length}{ending}: {self._size} steps are stored"
            )
        return starts

    def _probabilities(self, starts: np.ndarray, purpose: str) -> np.ndarray:
        if self.sampler.kind == "uniform":
            return np.full(len(starts), 1.0 / len(starts))
        v = self.train_counts[starts].astype(np.float64)
        if purpose == "world_model":
            return _softmax(-v / self.sampler.tau)
        b = self.imagine_counts[starts] / self.sampler.imagine_scale  # b in units of world-model batches
        return _softmax(np.minimum(0.0, v - b) / self.sampler.tau_img)

    # --------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Storage, counters, write position and RNG state. Step arrays hold only the filled slots (a fresh 100k
        buffer with 2k steps saves 2k frames) and are views of the live buffers (not copied, to avoid duplicating a
        1.2 GB frame store): copy them before mutating the buffer if you need a snapshot. ``meta`` is JSON-able."""
        filled = {key: array[: self._size] for key, array in self._data.items()}
        state: dict[str, Any] = {**filled, "train_counts": self.train_counts}
        state["imagine_counts"] = self.imagine_counts
        state["observation_low"] = self.observation_space.low
        state["observation_high"] = self.observation_space.high
        state["meta"] = {
            "capacity": self.capacity,
            "n_actions": int(self.action_space.n),
            "position": self._pos,
            "size": self._size,
            "total_added": self.total_added,
            "sampler": asdict(self.sampler),
            "rng": self._rng.bit_generator.state,
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore everything from :meth:`state_dict` (arrays are copied); the sampler config is restored too."""
        self._restore(state, copy=True)

    def _restore(self, state: dict[str, Any], copy: bool) -> None:
        meta = state["meta"]
        mine = self.state_dict()
        for key in ("capacity", "n_actions"):
            if meta[key] != mine["meta"][key]:
                raise ValueError(f"state has {key}={meta[key]}, this buffer has {key}={mine['meta'][key]}")
        size = int(meta["size"])
        for key in (*_STEP_KEYS, *_COUNT_KEYS):
            given = np.asarray(state[key])
            expected = (size, *self._data[key].shape[1:]) if key in _STEP_KEYS else mine[key].shape
            if given.shape != expected or given.dtype != mine[key].dtype:
                raise ValueError(
                    f"state[{key!r}] has shape {given.shape} and dtype {given.dtype}, expected "
                    f"{expected} and {mine[key].dtype}"
                )
        if meta["rng"]["bit_generator"] != "PCG64":
            raise ValueError(f"expected a PCG64 RNG state, got {meta['rng']['bit_generator']!r}")
        for key in _STEP_KEYS:
            if size == self.capacity:
                self._data[key] = np.array(state[key], copy=True) if copy else np.asarray(state[key])
            else:
                self._data[key][:size] = state[key]
        if self._device_observations is not None:
            self._device_observations.copy_(torch.from_numpy(self._data["observation"]))
        self.train_counts = np.array(state["train_counts"], copy=True)
        self.imagine_counts = np.array(state["imagine_counts"], copy=True)
        self._pos, self._size, self.total_added = int(meta["position"]), int(meta["size"]), int(meta["total_added"])
        self.sampler = SamplerConfig(**meta["sampler"])
        self._rng.bit_generator.state = meta["rng"]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an uncompressed .npz at exactly ``path``, atomically (temporary file, fsync, os.replace)."""
        path = Path(path)
        state = self.state_dict()
        arrays = {key: value for key, value in state.items() if key != "meta"}
        arrays["meta"] = np.array(json.dumps(state["meta"]))  # a unicode array: loads without pickle
        # A file object (not a name) stops np.savez from appending ".npz" to the path.
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device | str | None = None) -> ReplayBuffer:
        """Rebuild a buffer written by :meth:`save` (observations also kept on ``device`` if given); sampling
        continues exactly as it would have on the original."""
        with np.load(path, allow_pickle=False) as data:
            state: dict[str, Any] = {key: data[key] for key in data.files}
        state["meta"] = json.loads(str(state["meta"]))
        low, high = state["observation_low"], state["observation_high"]
        observation_space = gym.spaces.Box(low=low, high=high, dtype=low.dtype)
        meta = state["meta"]
        buffer = cls(observation_space, gym.spaces.Discrete(meta["n_actions"]), meta["capacity"], device=device)
        buffer._restore(state, copy=False)  # adopt the freshly loaded arrays instead of holding two copies
        return buffer


def collect(
    env: gym.Env,
    steps: int,
    seed: int = 0,
    capacity: int | None = None,
    policy: Callable[[gym.Env], int] | None = None,
) -> ReplayBuffer:
    """A new buffer holding ``steps`` real steps of ``env``: uniformly random actions drawn from ``seed``, or
    ``policy(env) -> action``. The env is reset with ``seed`` first and again after every episode end, each reset
    marking the next row ``first``; ``capacity`` defaults to ``steps`` (smaller: the buffer wraps around)."""
    steps = positive_int("steps", steps)
    observation_space, action_space = env.observation_space, env.action_space
    if not isinstance(observation_space, gym.spaces.Box) or not isinstance(action_space, gym.spaces.Discrete):
        raise TypeError(f"collect needs Box observations and Discrete actions, got {observation_space}, {action_space}")
    replay = ReplayBuffer(observation_space, action_space, capacity or steps, seed=seed)
    n_actions = int(replay.action_space.n)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    first = True
    for _ in range(steps):
        action = int(rng.integers(n_actions)) if policy is None else policy(env)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, float(reward), bool(terminated), first)
        first = False
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            first = True
    return replay
