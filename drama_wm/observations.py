"""The one place where a real env's image observations are adapted to what the world model takes.

The world model takes uint8 ``image_size x image_size x C`` images (channels last) or float vectors. Common Atari
pipelines give other layouts; :func:`observation_adapter` recognises them and :class:`AdaptObservation` converts:

=====================================================  ============================================================
real observation                                       adaptation
=====================================================  ============================================================
``H x W x C`` uint8, C <= 4 (``gym.make("ALE/Pong-v5")``  resized to ``image_size`` (OpenCV area interpolation)
gives 210x160x3)
``H x W`` uint8 (``AtariPreprocessing``: 84x84 gray)       a channel axis is added (C = 1), then resized
``S x H x W`` uint8, S <= 4 < H, W (``FrameStackObservation``  the stack becomes the channels (H x W x S), then resized
over grayscale frames: 4x84x84)
``S x H x W x C`` uint8 (``FrameStackObservation`` over RGB)  stack and colour become channels (H x W x S*C), resized
=====================================================  ============================================================

Float vectors, images that already fit and ``H x W x C`` grids of at most ``MAX_GRID_SIDE`` cells a side (MinAtar's
10x10 frames, which the world model's grid encoder takes as they are) are left alone (no wrapper).
:class:`~drama_wm.Drama` applies the adapter to the env it trains on, to every env it evaluates in and to the raw
observations ``predict`` receives, and stores its description in checkpoints so a loaded agent sees the same view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from drama_wm.grid import MAX_GRID_SIDE

#: the most channels (or stacked frames) an axis may hold to count as channels rather than as an image side
MAX_CHANNELS = 4


@dataclass(frozen=True)
class ObservationAdapter:
    """How raw image observations of shape ``source_shape`` become ``image_size x image_size x channels`` images.

    ``layout`` is one of "hwc" (height, width, channels), "hw" (one grey channel), "chw" (a channel-first stack) or
    "shwc" (a stack of channels-last frames).
    """

    source_shape: tuple[int, ...]
    layout: str
    image_size: int

    @property
    def channels(self) -> int:
        s, layout = self.source_shape, self.layout
        return s[-1] if layout == "hwc" else 1 if layout == "hw" else s[0] if layout == "chw" else s[0] * s[-1]

    @property
    def target_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    @property
    def observation_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0, 255, self.target_shape, np.uint8)

    def describe(self) -> str:
        """One line saying what is changed, e.g. ``4x84x84 (frame stack, channels first) -> 64x64x4: ...``."""
        source = "x".join(map(str, self.source_shape))
        steps = {
            "hwc": [],
            "hw": ["grey frames get a channel axis"],
            "chw": ["the stack axis becomes the channels"],
            "shwc": ["stacked frames and colours become the channels"],
        }[self.layout]
        h, w = self.channels_last_size
        if (h, w) != (self.image_size, self.image_size):
            steps.append(f"resized {h}x{w} -> {self.image_size}x{self.image_size} (area interpolation)")
        target = "x".join(map(str, self.target_shape))
        return f"observations {source} -> {target}: " + ", ".join(steps)

    @property
    def channels_last_size(self) -> tuple[int, int]:
        s = self.source_shape
        return (s[0], s[1]) if self.layout in ("hwc", "hw") else (s[1], s[2])

    def __call__(self, observation: Any) -> np.ndarray:
        """One raw observation -> the world model's view (uint8 ``image_size x image_size x channels``)."""
        obs = np.asarray(observation)
        if obs.shape != self.source_shape:
            raise ValueError(f"expected an observation of shape {self.source_shape}, got {obs.shape}")
        if self.layout == "hw":
            obs = obs[..., None]
        elif self.layout == "chw":
            obs = np.moveaxis(obs, 0, -1)
        elif self.layout == "shwc":
            s, h, w, c = obs.shape
            obs = np.moveaxis(obs, 0, 2).reshape(h, w, s * c)
        if obs.shape[:2] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            resized = cv2.resize(np.ascontiguousarray(obs), size, interpolation=cv2.INTER_AREA)
            obs = resized.reshape(*size, obs.shape[-1])  # OpenCV drops a single channel axis
        return np.ascontiguousarray(obs, dtype=np.uint8)

    def batch(self, observations: np.ndarray) -> np.ndarray:
        """[B, *source_shape] -> [B, image_size, image_size, channels]."""
        return np.stack([self(o) for o in observations])

    def to_dict(self) -> dict[str, Any]:
        return {"source_shape": list(self.source_shape), "layout": self.layout, "image_size": self.image_size}


def observation_adapter(space: gym.spaces.Space, image_size: int) -> ObservationAdapter | None:
    """The adapter for ``space``, or None when the world model takes it as it is (or it is not a uint8 image).

    Spaces the world model cannot take either way (e.g. float images) are left to its own checks and errors.
    """
    if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8:
        return None
    shape = tuple(int(n) for n in space.shape)
    if len(shape) == 2:
        layout = "hw"
    elif len(shape) == 3 and shape[-1] <= MAX_CHANNELS:
        layout = "hwc"
        if shape[:2] == (image_size, image_size) or max(shape[:2]) <= MAX_GRID_SIDE:
            return None  # fits as it is, or a small grid (MinAtar) that the world model's grid encoder takes
    elif len(shape) == 3 and shape[0] <= MAX_CHANNELS:
        layout = "chw"
    elif len(shape) == 4 and shape[0] <= MAX_CHANNELS and shape[-1] <= MAX_CHANNELS:
        layout = "shwc"
    else:
        return None
    return ObservationAdapter(shape, layout, image_size)


class AdaptObservation(gym.ObservationWrapper):
    """Applies an :class:`ObservationAdapter` to every observation of ``env``."""

    def __init__(self, env: gym.Env, adapter: ObservationAdapter) -> None:
        super().__init__(env)
        self.adapter = adapter
        self.observation_space = adapter.observation_space

    def observation(self, observation: Any) -> np.ndarray:
        return self.adapter(observation)


__all__ = ["AdaptObservation", "ObservationAdapter", "observation_adapter"]
