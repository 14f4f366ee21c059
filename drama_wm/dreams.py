"""Imagined rollouts rendered as video frames: real frames above, the world model's dream below (paper Figs. 7-9).

Each rollout starts from a real context of ``context_length`` consecutive steps in the agent's replay buffer. The
world model starts a dream from it (:meth:`~drama_wm.WorldModel.start_dreams`, as :class:`~drama_wm.DreamEnv`
does), then dreams ``horizon`` steps with the agent's own policy choosing every action from the dream's features
[z_t, d_{t-1}] through :meth:`~drama_wm.WorldModel.imagine_step`. Every z is decoded to a frame.

Time axis of the video (T = context_length + horizon frames), with C = context_length:

- frames 0 .. C-1 (context): top = the real frame o_t, bottom = its reconstruction decode(z_t ~ posterior(o_t)),
  which shows what the autoencoder keeps (the paper's point about Breakout's ball, Figs. 7-8);
- frames C .. T-1 (dream): bottom = the k-th dreamed frame, top = the real frame o_{C+k} that followed the context
  in the buffer, or black where the buffer has none (its episode ended, or the context is the newest data).
  The real continuation followed the actions of the policy that collected the data, the dream follows the current
  policy, so the two rows agree only where those actions (or their effects) agree.

Each cell has a coloured border saying what it shows (:data:`BORDER_COLOURS`); rollouts sit side by side. A
timeline strip under the grid fills up frame by frame, in the reconstruction colour over the context and in the dream
colour over the dream, so a viewer sees where the dream starts (and no two consecutive frames are identical, which keeps
GIF writers from merging frames).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from drama_wm.checks import positive_int

if TYPE_CHECKING:
    from drama_wm.driver import Drama

#: Width in pixels of the border drawn around every cell of the grid.
BORDER = 2
#: Height in pixels of the timeline strip under the grid (even, so even-sided observations give even-sided video
#: frames, which H.264's yuv420p pixel format needs).
TIMELINE = 4
#: Border colour (RGB) per cell kind: a real frame, a missing real frame, a reconstruction, a dreamed frame.
BORDER_COLOURS: dict[str, tuple[int, int, int]] = {
    "real": (128, 128, 128),
    "missing": (40, 40, 40),
    "reconstruction": (0, 170, 0),
    "dream": (220, 0, 0),
}


def grid_shape(frame_height: int, frame_width: int, n_rollouts: int) -> tuple[int, int]:
    """(height, width) in pixels of one video frame: 2 rows (real, model) x ``n_rollouts`` bordered cells, then
    the timeline strip."""
    return 2 * (frame_height + 2 * BORDER) + TIMELINE, n_rollouts * (frame_width + 2 * BORDER)


def dream_frames(
    agent: Drama,
    n_rollouts: int = 4,
    context_length: int = 8,
    horizon: int = 32,
    seed: int = 0,
    deterministic: bool = False,
) -> np.ndarray:
    """Render ``n_rollouts`` imagined rollouts of ``agent`` beside the real frames they started from.

    Args:
        agent: a :class:`~drama_wm.Drama` agent with an image world model and a replay buffer holding at least
            ``context_length`` steps (a checkpoint saved with ``DramaConfig.checkpoint_replay=True``).
        n_rollouts: rollouts shown side by side.
        context_length: real steps the world model observes before dreaming (l_img).
        horizon: dreamed steps.
        seed: seeds the choice of contexts, the latent samples and the policy's action samples; the agent's own
            random streams (and torch's global one) are left untouched.
        deterministic: act with the policy's mode instead of sampling.

    Returns:
        uint8 [context_length + horizon, *grid_shape(H, W, n_rollouts), 3] =
        [T, 2 * (H + 2 * BORDER) + TIMELINE, n_rollouts * (W + 2 * BORDER), 3], H x W the observation size; grey
        observations are repeated to RGB; of a frame stack (other channel counts, see drama_wm.observations) the
        newest frame is shown: the last 3 channels when their number is a multiple of 3, else the last one.
    """
    for name, value in (("n_rollouts", n_rollouts), ("context_length", context_length), ("horizon", horizon)):
        positive_int(name, value)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    wm = agent.world_model
    if not wm.is_image:
        raise ValueError(
            f"only world models of image observations can be dreamed as video; this agent's observations are "
            f"vectors of shape {wm.observation_space.shape}"
        )
    replay = agent.replay
    if len(replay) < context_length:
        raise ValueError(
            f"the agent's replay buffer holds {len(replay)} steps, fewer than context_length={context_length}; "
            "dreams start from real contexts, so save checkpoints with DramaConfig.checkpoint_replay=True"
        )

    rng = np.random.default_rng(seed)
    stored = replay.valid_starts(1)
    starts = _choose_starts(replay.field("first"), stored, context_length, horizon, n_rollouts, rng)
    device = agent.device
    context = replay.gather(starts, context_length, device=device)

    generator = torch.Generator(device=device).manual_seed(seed)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)  # the policy samples actions from torch's global stream, forked here
        carry, context_z = wm.start_dreams(context, generator=generator)
        reconstructions = wm.decode(context_z)  # [R, C, H, W, channels]
        state, z = carry.state, carry.z
        dreamed = []
        for k in range(horizon):
            dreamed.append(wm.decode(z))
            if k + 1 < horizon:  # the last frame needs no action
                actions = agent.predict_features(wm.features(z, state).cpu().numpy(), deterministic=deterministic)
                state, z, _, _ = wm.imagine_step(state, z, torch.as_tensor(actions, device=device), generator)
    model_rows = torch.cat([reconstructions, torch.stack(dreamed, dim=1)], dim=1).cpu().numpy()  # [R, T, H, W, ch]

    real_rows, available = _real_frames(
        replay.field("observation"), replay.field("first"), stored, starts, context_length, horizon
    )
    total = context_length + horizon
    kinds_top = np.where(available, "real", "missing")  # [R, T]
    kinds_bottom = np.array(["reconstruction"] * context_length + ["dream"] * horizon)
    height, width = wm.observation_space.shape[:2]
    video = np.zeros((total, *grid_shape(height, width, n_rollouts), 3), dtype=np.uint8)
    for r in range(n_rollouts):
        for t in range(total):
            _paste(video[t], 0, r, real_rows[r, t], kinds_top[r, t])
            _paste(video[t], 1, r, model_rows[r, t], kinds_bottom[t])
    # Timeline: column x stands for frame x * T // width; frame t shows the columns of frames 0..t.
    frame_of_column = np.arange(video.shape[2]) * total // video.shape[2]
    colours = np.array([BORDER_COLOURS[kinds_bottom[f]] for f in frame_of_column], dtype=np.uint8)  # [width, 3]
    for t in range(total):
        shown = frame_of_column <= t
        strip = video[t, -TIMELINE:]  # a view [TIMELINE, width, 3]
        strip[:, shown] = colours[shown]
    return video


def _choose_starts(
    first: np.ndarray, stored: np.ndarray, context_length: int, horizon: int, n_rollouts: int, rng: np.random.Generator
) -> np.ndarray:
    """Storage indices of ``n_rollouts`` context starts, drawn uniformly from the best tier available.

    Tiers, best first: the context and a full real continuation lie in one episode; the context lies in one
    episode; any stored window (the world model resets at episode starts inside it). Drawn with replacement only
    when the tier has fewer windows than rollouts. ``stored`` holds the stored indices oldest first.
    """

    def draw(positions: np.ndarray) -> np.ndarray:
        return stored[rng.choice(positions, size=n_rollouts, replace=len(positions) < n_rollouts)]

    first_by_age = first[stored]
    for window in (context_length + horizon, context_length):
        count = len(stored) - window + 1
        if count < 1:
            continue
        # A window at age position p lies in one episode when no step after its first starts a new one.
        inside = first_by_age[np.arange(count)[:, None] + np.arange(1, window)]
        positions = np.flatnonzero(~inside.any(axis=1))
        if len(positions):
            return draw(positions)
    return draw(np.arange(len(stored) - context_length + 1))


def _real_frames(
    observations: np.ndarray,
    first: np.ndarray,
    stored: np.ndarray,
    starts: np.ndarray,
    context_length: int,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Real frames [R, C + H, H_img, W_img, ch] from each start on, and which of them exist [R, C + H] (bool).

    ``observations`` [capacity, ...] and ``first`` [capacity] are the replay's stored fields; ``stored`` holds the
    stored indices oldest first. The context always exists; its continuation runs until the buffer's newest step or
    the next episode start.
    """
    total = context_length + horizon
    frames = np.zeros((len(starts), total, *observations.shape[1:]), dtype=np.uint8)
    available = np.zeros((len(starts), total), dtype=bool)
    for r, start in enumerate(starts):
        p0 = int((start - stored[0]) % len(observations))  # age position: stored[p0] == start
        for t in range(total):
            p = p0 + t
            if p >= len(stored) or (t >= context_length and first[stored[p]]):
                break
            frames[r, t] = observations[stored[p]]
            available[r, t] = True
    return frames, available


def _paste(canvas: np.ndarray, row: int, column: int, frame: np.ndarray, kind: str) -> None:
    """Draw ``frame`` [H, W, 1 or 3] with a ``kind``-coloured border into cell (row, column) of ``canvas``."""
    height, width = frame.shape[:2]
    top, left = row * (height + 2 * BORDER), column * (width + 2 * BORDER)
    canvas[top : top + height + 2 * BORDER, left : left + width + 2 * BORDER] = BORDER_COLOURS[kind]
    channels = frame.shape[-1]
    if channels not in (1, 3):  # a frame stack: its newest frame
        frame = frame[..., -3:] if channels % 3 == 0 else frame[..., -1:]
    rgb = np.broadcast_to(frame, (height, width, 3))  # grey frames: one channel repeated
    canvas[top + BORDER : top + BORDER + height, left + BORDER : left + BORDER + width] = rgb


__all__ = ["BORDER", "BORDER_COLOURS", "TIMELINE", "dream_frames", "grid_shape"]
