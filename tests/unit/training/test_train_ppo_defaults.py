"""PPO's defaults are written once (core.ppo_defaults): the iteration's settings, a
SelfTrainingRun's spec and a PPO run's config cannot disagree."""

from __future__ import annotations

import dataclasses

import pytest
from codejury.control.spec import PPOSettings
from codejury.core.ppo_defaults import PPO_DEFAULTS
from codejury.core.settings import Settings, TrainingSettings
from codejury.training.iteration import IterationConfig
from codejury.training.ppo_config import PPOConfig

# the spec names the KL coefficient kl_coef, the others init_kl_coef
_SPEC_NAMES = {"init_kl_coef": "kl_coef"}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(PPO_DEFAULTS)])
def test_every_ppo_default_comes_from_one_place(name: str) -> None:
    expected = getattr(PPO_DEFAULTS, name)
    assert getattr(PPOConfig(), name) == expected
    assert getattr(PPOSettings(), _SPEC_NAMES.get(name, name)) == expected
    assert TrainingSettings.model_fields[f"ppo_{name}"].default == expected


def test_an_iteration_built_from_default_settings_runs_the_default_ppo(
    settings: Settings,
) -> None:
    ppo = IterationConfig.from_settings(settings, 1).ppo
    for field in dataclasses.fields(PPO_DEFAULTS):
        assert getattr(ppo, field.name) == getattr(PPO_DEFAULTS, field.name), field.name
