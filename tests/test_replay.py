"""Tests for drama_wm.replay: storage convention, ring wrap-around, DFS/uniform sampling, persistence, errors."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drama_wm.replay import Batch, ReplayBuffer, SamplerConfig

IMAGE_SPACE = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
VECTOR_SPACE = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACTIONS = gym.spaces.Discrete(5)
WITH_REPLACEMENT = SamplerConfig(replacement=True)


def vector_buffer(capacity: int = 50, steps: int = 0, sampler: str | SamplerConfig = "dfs", seed: int = 0):
    """Buffer whose step k has reward k and observation [k, k, k, k], so tests can read back time indices."""
    buffer = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity, sampler=sampler, seed=seed)
    for k in range(steps):
        buffer.add(np.full(4, k, np.float32), k % 5, float(k), terminated=False, first=k == 0)
    return buffer


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


# ----------------------------------------------------------------------------- DFS probabilities and counters
def test_world_model_probabilities_follow_softmax_of_negative_counts():
    buffer = vector_buffer(steps=20, sampler=SamplerConfig(tau=2.0))
    buffer.train_counts[:20] = np.arange(20) % 7
    starts = buffer.valid_starts(4)
    np.testing.assert_array_equal(starts, np.arange(17))
    v = (np.arange(20) % 7)[:17].astype(float)
    expected = np.exp(-v / 2.0) / np.exp(-v / 2.0).sum()
    np.testing.assert_allclose(buffer.sampling_probabilities(4, "world_model"), expected, rtol=1e-12)


def test_imagination_probabilities_follow_min_zero_v_minus_scaled_b():
    buffer = vector_buffer(steps=6, sampler=SamplerConfig(tau_img=10.0, imagine_scale=64.0))
    buffer.train_counts[:6] = [3, 0, 5, 2, 1, 0]
    buffer.imagine_counts[:6] = [64, 128, 0, 640, 64, 0]
    # b / 64 = [1, 2, 0, 10, 1, 0]; f = min(0, v - b/64) = [0, -2, 0, -8, 0, 0]
    f = np.array([0.0, -2.0, 0.0, -8.0, 0.0, 0.0])
    expected = np.exp(f / 10.0) / np.exp(f / 10.0).sum()
    np.testing.assert_allclose(buffer.sampling_probabilities(1, "imagination"), expected, rtol=1e-12)
    # Starts trained at least as often as (scaled) imagined are equally likely (paper Sec. 2.4, case 1).
    p = buffer.sampling_probabilities(1, "imagination")
    assert p[0] == p[2] == p[4] == p[5] > p[1] > p[3]


def test_softmax_is_numerically_stable_for_huge_counts():
    buffer = vector_buffer(steps=4)
    buffer.train_counts[:4] = [10**9, 10**9 + 10, 10**9, 10**9 + 20]
    p = buffer.sampling_probabilities(1, "world_model")
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, softmax(-np.array([0.0, 10.0, 0.0, 20.0]) / 10.0), rtol=1e-12)


@pytest.mark.parametrize("purpose", ["world_model", "imagination"])
def test_draws_match_probabilities(purpose):
    buffer = vector_buffer(steps=12, sampler=WITH_REPLACEMENT, seed=123)
    buffer.train_counts[:12] = [0, 5, 10, 20, 30, 0, 2, 40, 0, 1, 15, 8]
    buffer.imagine_counts[:12] = [0, 640, 0, 2000, 0, 3000, 64, 0, 999, 0, 0, 128]
    p = buffer.sampling_probabilities(2, purpose)
    n = 60_000
    # One call draws n i.i.d. starts from p (the counters change only after the draw).
    starts = buffer.sample(n, 2, purpose).start.numpy()
    observed = np.bincount(starts, minlength=len(p))[: len(p)]
    chi2 = np.sum((observed - n * p) ** 2 / (n * p))
    df = len(p) - 1
    assert chi2 < df + 6 * np.sqrt(2 * df), chi2  # far beyond the 99.99th percentile of chi2(df=10) is ~35
    assert 0.5 * np.abs(observed / n - p).sum() < 0.01


def test_world_model_sample_increments_exactly_the_drawn_starts():
    buffer = vector_buffer(steps=30, seed=1)
    buffer.train_counts[:30] = np.arange(30) % 3
    before_v, before_b = buffer.train_counts.copy(), buffer.imagine_counts.copy()
    batch = buffer.sample(5, 4, "world_model")
    drawn = batch.start.numpy()
    assert buffer.train_counts.sum() == before_v.sum() + 5
    np.testing.assert_array_equal(buffer.train_counts - before_v, np.bincount(drawn, minlength=50))
    np.testing.assert_array_equal(buffer.imagine_counts, before_b)


def test_imagination_sample_increments_imagine_counts_with_multiplicity():
    buffer = vector_buffer(steps=3, sampler=WITH_REPLACEMENT, seed=2)  # 3 starts and 40 draws: repeats are certain
    batch = buffer.sample(40, 1, "imagination")
    drawn = batch.start.numpy()
    np.testing.assert_array_equal(buffer.imagine_counts, np.bincount(drawn, minlength=50))
    assert buffer.imagine_counts.sum() == 40
    assert buffer.train_counts.sum() == 0


def test_dfs_world_model_spreads_draws_over_starts():
    # Each draw lowers the start's probability, so repeated small batches cover the buffer far more evenly than
    # uniform sampling would: after 100 draws on 10 starts with tau=1 the counts stay within a narrow band.
    buffer = vector_buffer(steps=10, sampler=SamplerConfig(tau=1.0), seed=3)
    for _ in range(50):
        buffer.sample(2, 1, "world_model")
    counts = buffer.train_counts[:10]
    assert counts.sum() == 100
    assert counts.max() - counts.min() <= 5


def test_uniform_sampler_is_uniform_and_still_counts():
    buffer = vector_buffer(steps=10, sampler=SamplerConfig(kind="uniform", replacement=True), seed=4)
    buffer.train_counts[:10] = np.arange(10) * 100
    buffer.imagine_counts[:10] = np.arange(10)[::-1] * 1000
    for purpose in ("world_model", "imagination"):
        np.testing.assert_allclose(buffer.sampling_probabilities(3, purpose), np.full(8, 1 / 8))
    n = 40_000
    starts = buffer.sample(n, 3, "world_model").start.numpy()
    assert 0.5 * np.abs(np.bincount(starts, minlength=8)[:8] / n - 1 / 8).sum() < 0.01
    assert buffer.train_counts.sum() == 100 * 45 + n


def test_sampling_without_replacement_draws_distinct_starts():
    buffer = vector_buffer(steps=12, sampler=SamplerConfig(replacement=False), seed=5)
    batch = buffer.sample(9, 4, "imagination")
    drawn = batch.start.numpy()
    assert len(set(drawn.tolist())) == 9
    np.testing.assert_array_equal(buffer.imagine_counts, np.bincount(drawn, minlength=50))
    with pytest.raises(ValueError, match="distinct starts"):
        buffer.sample(10, 4, "world_model")


def test_distinct_starts_are_the_default_as_in_the_authors_code():
    buffer = vector_buffer(steps=40, seed=6)
    assert SamplerConfig().replacement is False
    for _ in range(30):
        drawn = buffer.sample(30, 4, "world_model").start.numpy()
        assert len(set(drawn.tolist())) == 30  # 37 starts, 30 draws: with replacement repeats would be near certain
    assert buffer.can_sample(37, 4, "world_model") and not buffer.can_sample(38, 4, "world_model")
    assert WITH_REPLACEMENT.replacement and vector_buffer(steps=40, sampler=WITH_REPLACEMENT).can_sample(
        38, 4, "world_model"
    )


def test_imagination_never_starts_from_a_context_that_ends_on_a_terminal():
    """Windows whose last step terminated are not imagination starts: never drawn, their b_i never move; the world
    model still trains on them. Steps 4 and 9 terminate (9 is a life loss: no episode start follows)."""
    buffer = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity=20, sampler=WITH_REPLACEMENT, seed=0)
    for k in range(14):
        buffer.add(np.full(4, k, np.float32), 0, float(k), terminated=k in (4, 9), first=k in (0, 5))
    length = 3  # windows ending on step 4 start at 2, ending on step 9 start at 7
    np.testing.assert_array_equal(buffer.valid_starts(length), np.arange(12))
    np.testing.assert_array_equal(buffer.valid_starts(length, "imagination"), [0, 1, 3, 4, 5, 6, 8, 9, 10, 11])
    p = buffer.sampling_probabilities(length, "imagination")
    np.testing.assert_allclose(p, np.full(10, 0.1))
    drawn = buffer.sample(5000, length, "imagination").start.numpy()
    assert not np.isin(drawn, [2, 7]).any()
    assert buffer.imagine_counts[2] == 0 and buffer.imagine_counts[7] == 0
    assert buffer.imagine_counts.sum() == 5000
    assert {2, 7} <= set(buffer.sample(2000, length, "world_model").start.tolist())
    # A buffer whose every window ends on a terminal has nothing to dream from.
    ends = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity=4, seed=0)
    for _ in range(2):
        ends.add(np.zeros(4, np.float32), 0, 0.0, terminated=True, first=True)
    assert not ends.can_sample(1, 1, "imagination")
    with pytest.raises(ValueError, match="imagination sequences of length 1 that do not end on a terminated step"):
        ends.sample(1, 1, "imagination")


# ----------------------------------------------------------------------------- ring buffer and boundaries
def test_wrap_around_overwrites_oldest_and_windows_never_cross_the_head():
    buffer = vector_buffer(capacity=10, steps=25, sampler=WITH_REPLACEMENT)
    assert len(buffer) == 10 and buffer.capacity == 10 and buffer.total_added == 25
    # Steps 15..24 remain; step k lives in slot k % 10, the write head is at slot 5 (oldest data).
    starts = buffer.valid_starts(3)
    np.testing.assert_array_equal(starts, [5, 6, 7, 8, 9, 0, 1, 2])
    for _ in range(20):
        batch = buffer.sample(16, 3, "world_model")
        rewards = batch.reward.numpy()
        assert rewards.min() >= 15
        np.testing.assert_array_equal(np.diff(rewards, axis=1), 1.0)  # consecutive in time: no jump at the head
        np.testing.assert_array_equal(batch.start.numpy(), rewards[:, 0].astype(int) % 10)
    np.testing.assert_array_equal(buffer.valid_starts(10), [5])
    assert len(buffer.valid_starts(11)) == 0


def test_gather_returns_the_windows_sample_would_and_moves_no_counter():
    buffer = vector_buffer(capacity=10, steps=25, sampler=WITH_REPLACEMENT)
    drawn = buffer.sample(6, 3, "imagination")
    counts = (buffer.train_counts.copy(), buffer.imagine_counts.copy())
    state = buffer.state_dict()["meta"]["rng"]
    gathered = buffer.gather(drawn.start.numpy(), 3)
    for name in ("observation", "action", "reward", "terminated", "first", "start"):
        assert torch.equal(getattr(gathered, name), getattr(drawn, name)), name
    assert np.array_equal(buffer.train_counts, counts[0]) and np.array_equal(buffer.imagine_counts, counts[1])
    assert buffer.state_dict()["meta"]["rng"] == state  # nothing drawn either
    # Step k (reward k) lives in slot k % 10; the window at slot 8 runs 18, 19, 20 across the end of the ring.
    np.testing.assert_array_equal(buffer.gather(np.array([8]), 3).reward.numpy(), [[18.0, 19.0, 20.0]])


def test_gather_rejects_starts_of_windows_that_are_not_stored():
    buffer = vector_buffer(capacity=10, steps=25)
    with pytest.raises(ValueError, match=r"\[3\] are not starts of stored windows of 3 steps.*valid_starts\(3\)"):
        buffer.gather(np.array([5, 3]), 3)  # slot 3's window would cross the write head at slot 5
    with pytest.raises(ValueError, match="1-D integer array"):
        buffer.gather(np.array([5.0]), 3)
    with pytest.raises(ValueError, match=r"length must be an int >= 1, got 0"):
        buffer.gather(np.array([5]), 0)


def test_field_is_a_read_only_view_of_every_slot():
    buffer = vector_buffer(capacity=10, steps=7)
    rewards = buffer.field("reward")
    assert rewards.shape == (10,) and rewards.dtype == np.float32 and not rewards.flags.writeable
    np.testing.assert_array_equal(rewards, [0, 1, 2, 3, 4, 5, 6, 0, 0, 0])  # unwritten slots hold zeros
    np.testing.assert_array_equal(buffer.field("first")[buffer.valid_starts(1)], [True] + [False] * 6)
    assert buffer.field("observation").shape == (10, 4)
    buffer.add(np.full(4, 7, np.float32), 2, 7.0, terminated=True, first=False)
    assert rewards[7] == 7.0 and buffer.field("terminated")[7]  # a view: it sees new steps
    with pytest.raises(ValueError, match="read-only"):
        rewards[0] = 1.0
    with pytest.raises(ValueError, match="field must be one of"):
        buffer.field("train_counts")


def test_overwritten_slots_have_their_counters_reset():
    buffer = vector_buffer(capacity=8, steps=8)
    buffer.train_counts[:] = 7
    buffer.imagine_counts[:] = 9
    for k in range(8, 11):  # overwrite slots 0, 1, 2
        buffer.add(np.full(4, k, np.float32), 0, float(k), False, False)
    np.testing.assert_array_equal(buffer.train_counts, [0, 0, 0, 7, 7, 7, 7, 7])
    np.testing.assert_array_equal(buffer.imagine_counts, [0, 0, 0, 9, 9, 9, 9, 9])


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(1, 12),
    chunks=st.lists(st.integers(1, 15), min_size=1, max_size=6),
    length=st.integers(1, 6),
)
def test_add_and_add_batch_match_a_list_model(capacity, chunks, length):
    one, many = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity), ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity)
    total = 0
    for chunk in chunks:
        ids = np.arange(total, total + chunk)
        obs = np.repeat(ids[:, None], 4, axis=1).astype(np.float32)
        many.add_batch(obs, ids % 5, ids.astype(np.float32), ids % 3 == 0, ids % 4 == 0)
        for k in ids:
            one.add(obs[k - total], int(k % 5), float(k), bool(k % 3 == 0), bool(k % 4 == 0))
        total += chunk
    a, b = one.state_dict(), many.state_dict()
    for key in ("observation", "action", "reward", "terminated", "first"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["meta"]["position"] == b["meta"]["position"]
    kept = list(range(max(0, total - capacity), total))  # the reference: the newest `capacity` steps
    assert len(many) == len(kept) and many.total_added == total
    expected_windows = [kept[i : i + length] for i in range(len(kept) - length + 1)]
    rewards = many.field("reward")
    windows = [[rewards[(s + j) % capacity] for j in range(length)] for s in many.valid_starts(length)]
    assert windows == expected_windows


def test_first_and_terminated_flags_come_out_at_episode_boundaries():
    buffer = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity=20, sampler=WITH_REPLACEMENT, seed=0)
    # Episode A: 3 steps ending in termination; episode B: 4 steps ending in truncation; episode C: 2 steps.
    flags = [(True, False), (False, False), (False, True)]  # (first, terminated)
    flags += [(True, False), (False, False), (False, False), (False, False)]
    flags += [(True, False), (False, False)]
    for k, (first, terminated) in enumerate(flags):
        buffer.add(np.full(4, k, np.float32), 1, float(k), terminated, first)
    batch = buffer.sample(32, 9, "world_model")  # only start 0 is valid: the whole history
    assert torch.equal(batch.start, torch.zeros(32, dtype=torch.int64))
    expected_first = torch.tensor([f for f, _ in flags])
    expected_terminated = torch.tensor([t for _, t in flags])
    assert torch.equal(batch.first[0], expected_first)
    assert torch.equal(batch.terminated[0], expected_terminated)
    batch = buffer.sample(64, 4, "world_model")
    ids = batch.reward.long()
    assert torch.equal(batch.first, expected_first[ids])
    assert torch.equal(batch.terminated, expected_terminated[ids])


# ----------------------------------------------------------------------------- batch contents
def test_image_batch_dtypes_and_shapes():
    buffer = ReplayBuffer(IMAGE_SPACE, ACTIONS, capacity=16, seed=0)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    for k, frame in enumerate(frames):
        buffer.add(frame, k % 5, 0.5 * k, k == 9, k == 0)
    batch = buffer.sample(3, 4, "imagination", device="cpu")
    assert isinstance(batch, Batch)
    assert batch.observation.shape == (3, 4, 8, 8, 3) and batch.observation.dtype == torch.uint8
    assert batch.action.shape == (3, 4) and batch.action.dtype == torch.int64
    assert batch.reward.shape == (3, 4) and batch.reward.dtype == torch.float32
    assert batch.terminated.dtype == torch.bool and batch.first.dtype == torch.bool
    assert batch.start.shape == (3,) and batch.start.dtype == torch.int64
    for row, start in enumerate(batch.start.tolist()):
        np.testing.assert_array_equal(batch.observation[row].numpy(), frames[start : start + 4])
        np.testing.assert_array_equal(batch.action[row].numpy(), np.arange(start, start + 4) % 5)


def test_vector_batch_dtypes_shapes_and_device():
    space64 = gym.spaces.Box(-1.0, 1.0, (4,), np.float64)  # stored as float32
    buffer = ReplayBuffer(space64, ACTIONS, capacity=16, seed=0)
    for k in range(6):
        buffer.add(np.full(4, k / 10), 2, 1.0, False, k == 0)
    batch = buffer.sample(2, 5, "world_model", device=torch.device("cpu"))
    assert batch.observation.shape == (2, 5, 4) and batch.observation.dtype == torch.float32
    for name in ("observation", "action", "reward", "terminated", "first", "start"):
        assert getattr(batch, name).device == torch.device("cpu")


def test_device_copy_of_observations_gives_the_same_batches(tmp_path):
    """Observations kept on a device (here "cpu": the torch gather path) come out exactly as the host arrays give
    them, through single adds, an over-long add_batch that wraps, state_dict restores and load()."""
    rng = np.random.default_rng(3)
    plain = ReplayBuffer(IMAGE_SPACE, ACTIONS, capacity=12, sampler=WITH_REPLACEMENT, seed=5)
    mirrored = ReplayBuffer(IMAGE_SPACE, ACTIONS, capacity=12, sampler=WITH_REPLACEMENT, seed=5, device="cpu")
    assert plain.device is None and mirrored.device == torch.device("cpu")

    def add(buffers, n):
        frames = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        fields = (rng.integers(0, 5, n), rng.random(n), rng.random(n) < 0.2, rng.random(n) < 0.2)
        for buffer in buffers:
            buffer.add_batch(frames, *fields)

    def assert_same(a, b, device=None):
        for purpose, size, length in (("world_model", 4, 3), ("imagination", 7, 2)):
            x, y = a.sample(size, length, purpose), b.sample(size, length, purpose, device=device)
            for name in ("observation", "action", "reward", "terminated", "first", "start"):
                assert torch.equal(getattr(x, name), getattr(y, name)), name
        if b.device is not None:  # the device copy is the one sampled from: it must equal the host arrays
            assert torch.equal(b._device_observations, torch.from_numpy(b._data["observation"]))

    add((plain, mirrored), 7)
    assert_same(plain, mirrored, device="cpu")
    add((plain, mirrored), 20)  # longer than the capacity: only the newest 12 stay, written across the wrap
    assert_same(plain, mirrored, device="cpu")
    mirrored_copy = ReplayBuffer(IMAGE_SPACE, ACTIONS, capacity=12, device="cpu")
    mirrored_copy.load_state_dict(mirrored.state_dict())
    assert_same(mirrored, mirrored_copy, device="cpu")
    plain.save(tmp_path / "replay.npz")
    loaded = ReplayBuffer.load(tmp_path / "replay.npz", device="cpu")
    assert loaded.device == torch.device("cpu")
    assert_same(plain, loaded, device="cpu")
    # Asked for no device (host tensors), the mirrored buffer gathers on the host as before.
    assert_same(plain, loaded, device=None)


# ----------------------------------------------------------------------------- persistence
def test_save_load_round_trip_continues_sampling_identically(tmp_path):
    buffer = ReplayBuffer(IMAGE_SPACE, ACTIONS, capacity=12, sampler=SamplerConfig(tau=3.0, replacement=True), seed=7)
    rng = np.random.default_rng(1)
    for k in range(17):  # wraps
        buffer.add(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), k % 5, float(k), k % 6 == 5, k % 6 == 0)
    buffer.sample(4, 3, "world_model")
    buffer.sample(8, 2, "imagination")
    path = tmp_path / "replay.npz"
    buffer.save(path)
    assert sorted(os.listdir(tmp_path)) == ["replay.npz"]  # no temporary file left behind
    restored = ReplayBuffer.load(path)
    assert len(restored) == len(buffer) and restored.total_added == buffer.total_added
    assert restored.sampler == buffer.sampler and restored.observation_space == buffer.observation_space
    for purpose, size, length in (("world_model", 5, 4), ("imagination", 6, 2), ("world_model", 3, 12)):
        a, b = buffer.sample(size, length, purpose), restored.sample(size, length, purpose)
        for name in ("observation", "action", "reward", "terminated", "first", "start"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    np.testing.assert_array_equal(buffer.train_counts, restored.train_counts)
    np.testing.assert_array_equal(buffer.imagine_counts, restored.imagine_counts)
    buffer.add(np.zeros((8, 8, 3), np.uint8), 0, 0.0, False, True)  # write position restored too
    restored.add(np.zeros((8, 8, 3), np.uint8), 0, 0.0, False, True)
    np.testing.assert_array_equal(buffer.valid_starts(3), restored.valid_starts(3))


def test_load_state_dict_copies_and_validates():
    source = vector_buffer(capacity=10, steps=13, seed=3)
    source.sample(4, 2, "world_model")
    target = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity=10, sampler="uniform", seed=99)
    target.load_state_dict(source.state_dict())
    assert target.sampler == source.sampler
    assert torch.equal(source.sample(6, 3, "imagination").start, target.sample(6, 3, "imagination").start)
    target.train_counts[:] = 0  # independent copies
    assert source.train_counts.sum() == 4
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity=11).load_state_dict(source.state_dict())
    with pytest.raises(ValueError, match="observation"):
        ReplayBuffer(gym.spaces.Box(0, 1, (5,), np.float32), ACTIONS, 10).load_state_dict(source.state_dict())


# ----------------------------------------------------------------------------- errors
def test_bad_observations_are_rejected():
    images = ReplayBuffer(IMAGE_SPACE, ACTIONS, capacity=4)
    with pytest.raises(ValueError, match="uint8"):
        images.add(np.zeros((8, 8, 3), np.float32), 0, 0.0, False, True)
    with pytest.raises(ValueError, match=r"\(8, 8, 3\)"):
        images.add(np.zeros((8, 8, 4), np.uint8), 0, 0.0, False, True)
    with pytest.raises(ValueError, match="shape"):
        images.add(np.zeros((8, 8), np.uint8), 0, 0.0, False, True)
    vectors = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity=4)
    with pytest.raises(ValueError, match="floating"):
        vectors.add(np.zeros(4, np.int64), 0, 0.0, False, True)
    assert len(images) == 0 and len(vectors) == 0  # nothing half-written


def test_bad_step_fields_are_rejected():
    buffer = ReplayBuffer(VECTOR_SPACE, ACTIONS, capacity=4)
    obs = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        buffer.add(obs, 5, 0.0, False, True)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        buffer.add(obs, -1, 0.0, False, True)
    with pytest.raises(ValueError, match="integer"):
        buffer.add(obs, 1.0, 0.0, False, True)
    with pytest.raises(ValueError, match="bool"):
        buffer.add(obs, 1, 0.0, 0, True)
    with pytest.raises(ValueError, match="finite"):
        buffer.add(obs, 1, float("nan"), False, True)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        buffer.add_batch(np.zeros((2, 4), np.float32), [0, 1, 2], [0.0, 0.0], [False, False], [True, False])


def test_bad_sampling_requests_are_rejected():
    buffer = vector_buffer(steps=3)
    with pytest.raises(ValueError, match="length 4: 3 steps are stored"):
        buffer.sample(1, 4, "world_model")
    with pytest.raises(ValueError, match="length 4: 3 steps are stored"):
        buffer.sampling_probabilities(4, "world_model")
    with pytest.raises(ValueError, match="batch_size"):
        buffer.sample(0, 2, "world_model")
    with pytest.raises(ValueError, match="length"):
        buffer.sample(1, 0, "world_model")
    with pytest.raises(ValueError, match=r"world_model.*imagination"):
        buffer.sample(1, 2, "actor")
    assert buffer.train_counts.sum() == 0


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="dfs"):
        ReplayBuffer(VECTOR_SPACE, ACTIONS, 4, sampler="prioritised")
    with pytest.raises(TypeError, match="SamplerConfig"):
        ReplayBuffer(VECTOR_SPACE, ACTIONS, 4, sampler=3)
    with pytest.raises(ValueError, match="tau"):
        SamplerConfig(tau=0.0)
    with pytest.raises(ValueError, match="imagine_scale"):
        SamplerConfig(imagine_scale=float("nan"))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(VECTOR_SPACE, ACTIONS, 0)


@pytest.mark.parametrize(
    ("observation_space", "action_space", "named"),
    [
        (gym.spaces.Dict({"x": VECTOR_SPACE}), ACTIONS, "Dict"),
        (gym.spaces.Discrete(4), ACTIONS, "Discrete"),
        (gym.spaces.Box(0.0, 1.0, (8, 8, 3), np.float32), ACTIONS, "uint8 Box"),
        (gym.spaces.Box(0, 255, (4,), np.uint8), ACTIONS, "floating-point Box"),
        (VECTOR_SPACE, gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "Discrete"),
        (VECTOR_SPACE, gym.spaces.Discrete(3, start=1), "starting at 0"),
    ],
)
def test_unsupported_spaces_raise_type_error(observation_space, action_space, named):
    with pytest.raises(TypeError, match=named):
        ReplayBuffer(observation_space, action_space, capacity=4)


def test_collect_marks_every_episode_start_and_wraps_at_capacity():
    from drama_wm.replay import collect

    env = gym.make("CartPole-v1")
    replay = collect(env, 200, seed=3, capacity=150)
    assert len(replay) == 150 and replay.total_added == 200
    first, terminated = replay.field("first"), replay.field("terminated")
    # Rows are in storage order; the ring's oldest row sits at the write position. A row after a terminated one
    # starts an episode, and no other row does (CartPole under 500 steps ends only by termination).
    order = np.roll(np.arange(150), -(200 % 150))
    assert np.array_equal(first[order][1:], terminated[order][:-1])
    again = collect(gym.make("CartPole-v1"), 200, seed=3, capacity=150)
    assert np.array_equal(again.field("observation"), replay.field("observation"))  # seeded: the same steps
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        collect(env, 0)
