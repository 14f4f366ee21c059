"""Checkpoint files: a damaged byte is an error naming the file, a hostile pickle never runs, versions are checked."""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest
import torch

from drama_wm import Drama, DramaConfig
from drama_wm.checkpoint import FORMAT_VERSION, MAGIC, CheckpointError, load, save


@pytest.fixture(scope="module")
def saved_agent(tmp_path_factory) -> pathlib.Path:
    agent = Drama("CartPole-v1", DramaConfig.tiny(), seed=0, device="cpu")
    agent.learn(70, progress_bar=False)
    return agent.save(tmp_path_factory.mktemp("ckpt") / "agent.pt")


def _framed(body: bytes, version: int = FORMAT_VERSION) -> bytes:
    """A file with valid framing and a valid digest around ``body``: what an attacker can always produce."""
    import hashlib

    header = json.dumps({"format_version": version}).encode() + b"\n"
    return MAGIC + header + body + b"sha256 " + hashlib.sha256(body).hexdigest().encode() + b"\n"


def test_round_trip_keeps_arrays_tensors_and_plain_data(tmp_path):
    payload = {
        "array": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "bools": np.array([True, False]),
        "tensor": torch.arange(3.0),
        "plain": {"a": (1, 2.5, "x", None, True), "b": [np.float32(1.5), np.int64(7)]},
        "rng": np.random.default_rng(3).bit_generator.state,
    }
    loaded = load(save(payload, tmp_path / "c.pt"))
    np.testing.assert_array_equal(loaded["array"], payload["array"])
    assert loaded["array"].dtype == np.uint8 and isinstance(loaded["bools"], np.ndarray)
    torch.testing.assert_close(loaded["tensor"], payload["tensor"])
    assert loaded["plain"] == {"a": (1, 2.5, "x", None, True), "b": [1.5, 7]}
    rng = np.random.default_rng()
    rng.bit_generator.state = loaded["rng"]
    assert rng.integers(1 << 30) == np.random.default_rng(3).integers(1 << 30)


def test_objects_that_only_pickle_could_store_are_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match=r"payload\['config'\] is a .*only tensors, numpy arrays and plain data"):
        save({"config": DramaConfig.tiny()}, tmp_path / "c.pt")
    with pytest.raises(TypeError, match="numpy array of Python objects"):
        save({"x": np.array([object()])}, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("where", ["magic", "header", "start of payload", "middle", "end of payload", "digest"])
def test_a_flipped_byte_anywhere_is_an_error_naming_the_file(saved_agent, tmp_path, where):
    data = bytearray(saved_agent.read_bytes())
    header_end = data.index(b"\n", len(MAGIC))
    position = {
        "magic": 3,
        "header": len(MAGIC) + 2,
        "start of payload": header_end + 5,
        "middle": len(data) // 2,
        "end of payload": len(data) - 80,
        "digest": len(data) - 10,
    }[where]
    data[position] ^= 0x01
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=str(damaged)):
        Drama.load(damaged)


def test_many_flipped_bytes_and_truncation_are_errors(saved_agent, tmp_path):
    data = bytearray(saved_agent.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 2000):  # the report's case: 2000 bytes flipped in the middle
        data[i] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        Drama.load(tmp_path / "flipped.pt")
    (tmp_path / "short.pt").write_bytes(saved_agent.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="damaged"):
        Drama.load(tmp_path / "short.pt")


class _CreatesAFile:
    """Unpickling this calls pathlib.Path.touch: code a checkpoint must never run on load."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_a_hostile_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"meta": {}, "parts": {"world_model": _CreatesAFile(marker)}}, buffer)
    hostile = tmp_path / "hostile.pt"
    hostile.write_bytes(_framed(buffer.getvalue()))  # correct framing and digest: only the content is hostile
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)  # the payload does run code when unpickled ...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="refusing to load"):  # ... but load never unpickles it
        Drama.load(hostile)
    assert not marker.exists()


def test_format_versions_are_checked(saved_agent, tmp_path):
    newer = tmp_path / "newer.pt"
    body = saved_agent.read_bytes()
    header_end = body.index(b"\n", len(MAGIC)) + 1
    newer.write_bytes(_framed(body[header_end:-72], version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match=r"format version 3; this drama_wm reads version 2: upgrade"):
        Drama.load(newer)
    old = tmp_path / "old.pt"
    torch.save({"format": "drama_wm", "config": {}}, old)  # how drama_wm 0.1.0 wrote checkpoints
    with pytest.raises(CheckpointError, match=r"format version 1 .* cannot be loaded safely"):
        Drama.load(old)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(CheckpointError, match="not a drama_wm checkpoint"):
        Drama.load(foreign)
