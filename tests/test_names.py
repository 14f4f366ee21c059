"""drama_wm.names: the torch-free name lists equal the registries they stand for."""

from __future__ import annotations

import inspect

import pytest

from drama_wm import DramaConfig
from drama_wm.learners import LearnerConfig
from drama_wm.names import BACKBONE_KINDS, LEARNER_KINDS, PRESETS
from drama_wm.sequence import KINDS


def test_backbone_and_learner_names_are_the_registered_kinds() -> None:
    assert BACKBONE_KINDS == KINDS
    assert sorted(LEARNER_KINDS) == LearnerConfig.kinds()


def test_presets_are_exactly_the_config_builders_of_drama_config() -> None:
    builders = {
        name
        for name, member in inspect.getmembers(DramaConfig, inspect.ismethod)
        if name not in ("preset", "from_dict") and not name.startswith("_")
    }
    assert builders == set(PRESETS)
    for name in PRESETS:
        assert DramaConfig.preset(name) == getattr(DramaConfig, name)()
    assert DramaConfig.preset("tiny", horizon=3).horizon == 3


def test_an_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown preset 'big': expected one of xs, s, tiny, cpu_demo"):
        DramaConfig.preset("big")

