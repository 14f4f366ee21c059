"""Configs as plain data: every preset survives JSON, and bad dicts give errors that name the field."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from drama_wm import DramaConfig
from drama_wm.config_io import Variant, from_dict, to_dict
from drama_wm.learners import ActorCriticConfig, LearnerConfig
from drama_wm.names import PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_round_trip_through_json(preset):
    config = DramaConfig.preset(preset, dream_termination="sample")  # a str field off its default, too
    data = json.loads(json.dumps(to_dict(config)))  # tuples become lists on the way
    rebuilt = DramaConfig.from_dict(data)
    assert rebuilt == config
    assert isinstance(rebuilt.world_model.encoder_channels, tuple)
    assert isinstance(rebuilt.learner, ActorCriticConfig)
    assert data["learner"]["kind"] == "actor-critic"


def test_missing_fields_take_defaults_and_unknown_fields_are_errors():
    data = to_dict(DramaConfig.tiny())
    del data["horizon"]
    assert DramaConfig.from_dict(data).horizon == DramaConfig().horizon
    data["horizn"] = 3
    with pytest.raises(ValueError, match=r"DramaConfig has no field 'horizn'; known fields: .*horizon"):
        DramaConfig.from_dict(data)


def test_wrong_types_name_the_field():
    data = to_dict(DramaConfig.tiny())
    data["batch_size"] = "4"
    with pytest.raises(TypeError, match=r"DramaConfig.batch_size must be an int, got '4'"):
        DramaConfig.from_dict(data)
    data = to_dict(DramaConfig.tiny())
    data["world_model"]["reward_range"] = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"world_model.reward_range must have 2 entries"):
        DramaConfig.from_dict(data)
    data = to_dict(DramaConfig.tiny())
    data["checkpoint_replay"] = 1  # an int is not a bool: nothing is coerced
    with pytest.raises(TypeError, match="checkpoint_replay must be a bool"):
        DramaConfig.from_dict(data)


def test_variant_members_are_picked_by_kind():
    data = to_dict(ActorCriticConfig.tiny())
    assert from_dict(LearnerConfig, data) == ActorCriticConfig.tiny()
    with pytest.raises(ValueError, match=r"unknown LearnerConfig kind 'dqn'; known kinds: actor-critic, sb3-ppo"):
        from_dict(LearnerConfig, {**data, "kind": "dqn"})
    del data["kind"]
    with pytest.raises(ValueError, match="must name its kind"):
        from_dict(LearnerConfig, data)


def test_lazy_members_import_their_module():
    pytest.importorskip("stable_baselines3")
    config = from_dict(LearnerConfig, {"kind": "sb3-ppo", "num_envs": 8})
    assert type(config).__name__ == "SB3PPOConfig" and config.num_envs == 8
    assert to_dict(config)["kind"] == "sb3-ppo"


def test_a_family_keeps_its_kinds_apart():
    class Shape(Variant):
        pass

    @dataclass
    class Square(Shape, kind="square"):
        side: float = 1.0

    assert from_dict(Shape, {"kind": "square", "side": 2}) == Square(2.0)
    with pytest.raises(ValueError, match="already taken"):

        @dataclass
        class Other(Shape, kind="square"):
            pass
