"""Carry: what acting and dreaming carry between steps, its state_dict, and the state of its two users."""

from __future__ import annotations

import copy
import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from helpers import fill_replay

from drama_wm import Carry, DreamEnv, LatentObservation, RecurrentState, WorldModel, WorldModelConfig


def _world(backbone: str = "mamba2") -> tuple[WorldModel, object]:
    env = gym.make("CartPole-v1")
    replay = fill_replay(env, 120)
    tiny = WorldModelConfig.tiny()
    config = WorldModelConfig.tiny(backbone=tiny.backbone.as_kind(backbone))
    model = WorldModel(env.observation_space, env.action_space, config)
    return model, replay


def _started(backbone: str = "mamba2", rows: int = 5) -> Carry:
    model, replay = _world(backbone)
    with torch.no_grad():
        carry, _ = model.start_dreams(replay.sample(rows, 6, "imagination"), torch.Generator().manual_seed(0))
    return carry


def _weights_only_round_trip(value: object) -> object:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_plain(value: object, where: str = "state") -> None:
    """Only tensors, numpy arrays and plain Python values, as checkpoints loaded with weights_only=True need."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where}: key {key!r}"
            _assert_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        assert type(value) in (list, tuple), f"{where}: {type(value).__name__}"
        for i, item in enumerate(value):
            _assert_plain(item, f"{where}[{i}]")
    else:
        plain = (torch.Tensor, np.ndarray, int, float, str, bool, type(None))
        assert isinstance(value, plain), f"{where}: {type(value).__name__}"


@pytest.mark.parametrize("backbone", ["mamba2", "gru"])
def test_state_dict_round_trips_through_a_weights_only_load(backbone):
    carry = _started(backbone)
    state = carry.state_dict()
    assert set(state) == {"backbone", "d", "z"}
    _assert_plain(state)
    restored = Carry.from_state_dict(_weights_only_round_trip(state), "cpu")
    assert restored.batch_size == carry.batch_size == 5
    for a, b in zip(restored.tensors(), carry.tensors(), strict=True):
        assert torch.equal(a, b) and a.dtype == b.dtype


def test_from_state_dict_copies_so_in_place_updates_do_not_leak_back():
    carry = _started()
    before = [t.clone() for t in carry.tensors()]
    restored = Carry.from_state_dict(carry.state_dict(), "cpu")
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(restored.tensors(), carry.tensors(), strict=True))
    rows = torch.tensor([1, 2])
    restored.put_(torch.tensor([0, 3]), Carry(restored.state.select(rows), restored.z[rows] + 1))
    for a, b in zip(carry.tensors(), before, strict=True):
        assert torch.equal(a, b)


def test_to_keeps_values_dtypes_and_shares_storage_on_the_same_device():
    carry = _started()
    moved = carry.to(torch.device("cpu"))
    for a, b in zip(moved.tensors(), carry.tensors(), strict=True):
        assert torch.equal(a, b) and a.dtype == b.dtype and a.device.type == "cpu"
        assert a.data_ptr() == b.data_ptr()  # as torch.Tensor.to: no copy when nothing moves
    double = Carry(RecurrentState(tuple(s.double() for s in carry.state.backbone), carry.state.d.double()), carry.z)
    assert double.to("cpu").state.d.dtype == torch.float64


def test_put_overwrites_only_the_given_rows_in_place():
    carry = _started()
    other = Carry.from_state_dict(carry.state_dict(), "cpu")
    for t in other.tensors():
        t.add_(1.0)
    pointers = [t.data_ptr() for t in carry.tensors()]
    expected = [t.clone() for t in carry.tensors()]
    index = torch.tensor([4, 1])
    rows = Carry(other.state.select(index), other.z[index])
    carry.put_(index, rows)
    assert [t.data_ptr() for t in carry.tensors()] == pointers
    for got, want, new in zip(carry.tensors(), expected, other.tensors(), strict=True):
        want[index] = new[index]
        assert torch.equal(got, want)


def test_from_state_dict_names_what_is_missing_or_inconsistent():
    state = _started().state_dict()
    with pytest.raises(KeyError, match="missing \\['z'\\]"):
        Carry.from_state_dict({k: v for k, v in state.items() if k != "z"}, "cpu")
    with pytest.raises(ValueError, match="batch size of z"):
        Carry.from_state_dict({**state, "z": state["z"][:2]}, "cpu")
    with pytest.raises(TypeError, match="tuple of tensors"):
        Carry.from_state_dict({**state, "d": state["d"].numpy()}, "cpu")


def test_dream_state_dict_is_plain_data_and_resumes_the_same_dream():
    """DreamEnv.state_dict survives torch.load(weights_only=True), and a twin that loads it dreams on exactly as the
    original (DISABLED autoreset: no restart, so the replay's counters play no part)."""
    model, replay = _world()

    def make(seed):
        return DreamEnv(
            model, replay, num_envs=4, context_length=4, horizon=50, seed=seed, autoreset_mode=AutoresetMode.DISABLED
        )

    dream = make(1)
    dream.reset(seed=1)
    for t in range(2):
        dream.step(np.array([t % 2, 1, 0, 1]))
    state = dream.state_dict()
    assert set(state["carried"]) == {"backbone", "d", "z", "elapsed", "needs_reset"}
    _assert_plain(state)
    state = _weights_only_round_trip(state)
    twin = make(7)
    twin.reset(seed=7)
    twin.load_state_dict(state)
    shared = {t.data_ptr() for t in dream.carry.tensors()}
    assert not shared & {t.data_ptr() for t in twin.carry.tensors()}
    for t in range(3):
        action = np.array([1, t % 2, 1, 0])
        for a, b in zip(dream.step(action)[:4], twin.step(action)[:4], strict=True):
            np.testing.assert_array_equal(a, b)


def test_latent_observation_state_dict_is_plain_data_and_resumes_the_same_features():
    model, _ = _world()
    wrapped = LatentObservation(gym.make("CartPole-v1"), model)
    wrapped.reset(seed=3)
    wrapped.step(1)
    state = wrapped.state_dict()
    _assert_plain(state)
    assert set(state["carried"]) == {"backbone", "d", "z"}
    twin = LatentObservation(copy.deepcopy(wrapped.env), model)  # the real env where the original stands
    expected = [wrapped.step(action)[0] for action in (0, 1, 1)]
    twin.load_state_dict(state)
    for action, features in zip((0, 1, 1), expected, strict=True):
        np.testing.assert_array_equal(twin.step(action)[0], features)
    for a, b in zip(twin.carry.tensors(), wrapped.carry.tensors(), strict=True):
        assert torch.equal(a, b)
