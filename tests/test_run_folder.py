"""RunFolder: every path of a run folder and of an export folder, written out here as the files
that runs of earlier versions hold (tests/fixtures/old_runs), and the run folder found from a
checkpoint's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffusiontools.errors import UserError
from diffusiontools.training.run_folder import RunFolder

OLD_RUNS = Path(__file__).parent / "fixtures" / "old_runs"


def test_paths_of_a_run():
    run = RunFolder("runs/model1")
    assert run.path == Path("runs/model1")
    assert run.config == Path("runs/model1/config.ini")
    assert run.data_record == Path("runs/model1/data.json")
    assert run.metrics == Path("runs/model1/metrics.csv")
    assert run.learning_curve == Path("runs/model1/learning_curve.png")
    assert run.tensorboard == Path("runs/model1/tensorboard")
    assert run.lock == Path("runs/model1/.lock")
    assert run.previous == Path("runs/model1/.previous")
    assert run.checkpoints == Path("runs/model1/checkpoints")
    assert run.latest == Path("runs/model1/checkpoints/latest.pt")
    assert run.epoch(3) == Path("runs/model1/checkpoints/epoch_0003.pt")
    assert run.samples == Path("runs/model1/samples")
    assert run.reconstruction == Path("runs/model1/reconstruction")
    assert run.exports == Path("runs/model1/exports")
    assert run.export("safetensors") == Path("runs/model1/exports/safetensors")
    assert run.export("diffusers", 7) == Path("runs/model1/exports/diffusers_epoch_0007")


def test_a_run_on_disk():
    run = RunFolder(OLD_RUNS / "5f319a7_gaussian")
    assert not run.is_export
    assert run.epochs() == [0]
    assert run.checkpoint(None) == OLD_RUNS / "5f319a7_gaussian/checkpoints/latest.pt"
    assert run.checkpoint(0) == OLD_RUNS / "5f319a7_gaussian/checkpoints/epoch_0000.pt"
    with pytest.raises(UserError, match="epoch=4 has no checkpoint in .*; epochs with one: 0$"):
        run.checkpoint(4)


def test_an_export_on_disk():
    export = RunFolder(OLD_RUNS / "1154fb5_cold_export")
    assert export.is_export
    assert export.description == OLD_RUNS / "1154fb5_cold_export/diffusiontools.json"
    assert export.samples == OLD_RUNS / "1154fb5_cold_export/samples"
    assert export.epochs() == []
    with pytest.raises(UserError, match="is an export, which holds no checkpoints"):
        export.checkpoint(None)


@pytest.mark.parametrize(
    "checkpoint, run",
    [
        ("runs/model1/checkpoints/latest.pt", "runs/model1"),
        ("runs/model1/checkpoints/epoch_0003.pt", "runs/model1"),
        ("/abs/run/checkpoints/epoch_0000.pt", "/abs/run"),
        ("runs/model1/latest.pt", None),  # a checkpoint copied out of its run
        ("saved/epoch_0003.pt", None),
        ("exports/safetensors/model.safetensors", None),  # an export's weights
        ("checkpoints/model.safetensors", None),  # an export into a folder named checkpoints
        ("runs/model1/checkpoints/notes.txt", None),
    ],
)
def test_the_run_holding_a_checkpoint(checkpoint, run):
    found = RunFolder.holding(Path(checkpoint))
    assert found == (None if run is None else RunFolder(run))


def test_equal_whatever_the_path_type():
    assert RunFolder("runs/model1") == RunFolder(Path("runs/model1"))
    assert isinstance(RunFolder("runs/model1").path, Path)
