"""Runs trained on other data are refused naming only the [data] keys that differ."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from diffusiontools.config import Config, DataConfig, differences
from diffusiontools.errors import UserError
from diffusiontools.evaluation.evaluation_data import shared_data_config


def test_differences_names_each_differing_key_with_both_values():
    a, b = DataConfig(), DataConfig(subset=200, split_seed=7)
    assert differences(a, b) == "data.subset = none vs 200; data.split_seed = 42 vs 7"
    assert differences(a, DataConfig()) == ""


def test_runs_on_other_data_are_refused_naming_the_differing_keys_only():
    def run(folder: str, data: DataConfig) -> SimpleNamespace:  # what shared_data_config reads
        return SimpleNamespace(config=Config(data=data), folder=folder, path=Path(folder) / "x.pt")

    models = {
        "a": run("runs/a", DataConfig()),
        "b": run("runs/b", DataConfig(dataset="digits8", val_fraction=0.1)),
    }
    with pytest.raises(UserError) as refused:
        shared_data_config(models, None)
    assert str(refused.value) == (
        "runs/a and runs/b were trained with different [data] settings (data.dataset = mnist "
        "vs digits8; data.val_fraction = 0.2 vs 0.1); evaluate them in separate calls, as all "
        "sets share one test reference and one training split"
    )
