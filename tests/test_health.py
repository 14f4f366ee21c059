"""Skipped updates: a non-finite loss skips the update and is counted (health/<component>_skipped_updates); a run
whose updates keep being skipped stops with SkippedUpdatesError instead of training on without learning."""

from __future__ import annotations

import csv

import pytest
import torch

from drama_wm import Drama, DramaConfig
from drama_wm.health import SkippedUpdatesError, UpdateHealth


def _poison_world_model_loss(agent: Drama, every: int = 1) -> list[bool]:
    """Make every ``every``-th world-model loss NaN (from the first); returns the list of calls (True: poisoned)."""
    original, calls = agent.world_model.loss, []

    def loss(batch):
        total, metrics = original(batch)
        poisoned = len(calls) % every == 0
        calls.append(poisoned)
        return (total * float("nan"), metrics) if poisoned else (total, metrics)

    agent.world_model.loss = loss
    return calls


def test_a_world_model_whose_updates_keep_being_skipped_stops_after_exactly_n():
    config = DramaConfig.tiny(warmup_steps=32, max_consecutive_skipped_updates=5)
    agent = Drama("CartPole-v1", config, seed=0)
    before = [p.detach().clone() for p in agent.world_model.parameters()]
    calls = _poison_world_model_loss(agent)
    with pytest.raises(SkippedUpdatesError) as caught:
        agent.learn(200)
    # updates at steps 32, 33, ... (world_model_every=1): the 5th skip in a row is at step 36
    assert str(caught.value).startswith(
        "the world model skipped its last 5 updates in a row at real step 36 (5 skipped in all): its loss or "
        "gradient is not finite"
    )
    assert "DramaConfig.max_consecutive_skipped_updates (now 5; 0 disables this stop)" in str(caught.value)
    assert caught.value.component == "world model" and caught.value.count == 5
    assert len(calls) == 5 and agent.num_timesteps == 36 and agent.world_model.updates == 0
    assert all(torch.equal(p, q) for p, q in zip(agent.world_model.parameters(), before, strict=True))


def test_occasional_skips_are_counted_and_logged_but_do_not_stop_the_run(tmp_path):
    config = DramaConfig.tiny(warmup_steps=32, log_every=20, max_consecutive_skipped_updates=2)
    agent = Drama("CartPole-v1", config, seed=0, logdir=tmp_path)
    calls = _poison_world_model_loss(agent, every=3)  # skips 1, 4, 7, ...: never 2 in a row
    agent.learn(100)
    skipped = sum(calls)
    assert len(calls) == 69 and skipped == 23 and agent.world_model.updates == 69 - 23
    assert agent.health.scalars()["health/wm_skipped_updates"] == skipped
    with open(tmp_path / "scalars.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] == "health/wm_skipped_updates"]
    # cumulative counts at the log rows 40, 60, 80, 100 (updates at steps 32..step; every third skipped from the first)
    assert [(int(r["step"]), float(r["value"])) for r in rows] == [(40, 3.0), (60, 10.0), (80, 17.0), (100, 23.0)]
    assert {r["name"] for r in csv.DictReader(open(tmp_path / "scalars.csv"))} >= {"health/behaviour_skipped_updates"}
    resumed = Drama.load(tmp_path / "checkpoint.pt")
    counts = {"wm": 23, "behaviour": 0}
    assert resumed.health.state_dict() == {"skipped": counts, "consecutive": {"wm": 0, "behaviour": 0}}


def test_zero_disables_the_stop_but_still_counts():
    agent = Drama("CartPole-v1", DramaConfig.tiny(warmup_steps=32, max_consecutive_skipped_updates=0), seed=0)
    calls = _poison_world_model_loss(agent)
    agent.learn(150)
    assert len(calls) == 119 and agent.world_model.updates == 0
    assert agent.health.skipped["wm"] == 119 and agent.health.consecutive["wm"] == 119


def test_behaviour_learner_skips_are_named_and_a_good_update_resets_the_run():
    health = UpdateHealth(max_consecutive=3)
    for flag in (1.0, 1.0, 0.0, 1.0, 1.0):
        health.observe({"behaviour/skipped_update": flag, "behaviour/actor_loss": 0.1}, step=7)
    health.observe({"other/metric": 1.0}, step=8)  # an external learner's metrics count nothing
    assert health.scalars() == {"health/behaviour_skipped_updates": 4.0}
    with pytest.raises(SkippedUpdatesError, match=r"^the behaviour learner skipped its last 3 updates in a row at real "
                       r"step 9 \(5 skipped in all\)"):
        health.observe({"behaviour/skipped_update": 1.0}, step=9)


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), (2.5, ValueError), (True, ValueError)])
def test_the_option_is_validated(value, error):
    with pytest.raises(error, match="max_consecutive_skipped_updates"):
        DramaConfig.tiny(max_consecutive_skipped_updates=value)
