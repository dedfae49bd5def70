"""An empty override unsets a key: a packaged config moves to a data set (a network, a process)
its keys do not apply to, from the command line and from Python, and its record says so."""

from __future__ import annotations

import dataclasses

import pytest

from diffusiontools import cli
from diffusiontools.errors import UserError
from diffusiontools.training.run_config import load_config, to_ini

SOURCE_REFUSED = (
    "data.source=mnist applies to MNIST (data.dataset = mnist) only; another data set would "
    "ignore it: remove it, or unset it with an empty override: {'data.source': ''}"
)


@pytest.mark.parametrize(
    "name, dataset",
    [
        ("custom1", "digits8"),
        ("custom2", "digits8"),
        ("blur", "digits8"),
        ("mask", "digits8"),
        ("model1", "digits8"),
        ("model2", "kmnist"),
        ("pixelate", "fashion_mnist"),  # its level_max 14 needs images of 28 pixels
    ],
)
def test_a_packaged_mnist_config_moves_to_another_data_set_once_its_source_is_unset(name, dataset):
    with pytest.raises(UserError) as refused:
        load_config(name, {"data.dataset": dataset})
    assert str(refused.value) == SOURCE_REFUSED
    moved = load_config(name, {"data.dataset": dataset, "data.source": ""})
    assert moved.data.dataset == dataset
    assert moved.data.source == "auto"  # the default: what a config of now says for "no effect"
    # only the data set changed: every other section is the packaged config's
    faithful = load_config(name)
    assert dataclasses.replace(moved, data=faithful.data) == faithful
    assert "# source = auto  (unused: applies to MNIST (data.dataset = mnist) only)" in (
        to_ini(moved).splitlines()
    )


def test_setting_the_default_is_still_writing_it():
    """A key written at its default is refused where it cannot take effect (Config.check): the
    way to take it out is the empty override, which the message names."""
    with pytest.raises(UserError) as refused:
        load_config("custom1", ["data.dataset=digits8", "data.source=auto"])
    assert str(refused.value) == SOURCE_REFUSED.replace("source=mnist", "source=auto", 1)
    with pytest.raises(UserError) as refused:  # quickstart writes source = auto itself
        load_config("quickstart", ["data.dataset=digits8"])
    assert str(refused.value) == SOURCE_REFUSED.replace("source=mnist", "source=auto", 1)
    assert load_config("quickstart", ["data.dataset=digits8", "data.source="]).data.source == (
        "auto"
    )


def test_an_empty_override_unsets_whatever_wrote_the_key(tmp_path):
    ini = tmp_path / "run.ini"
    ini.write_text("[data]\nsubset = 64\n\n[training]\nepochs = 3\n")
    assert load_config(ini, ["data.subset="]).data.subset is None  # the file's key
    assert load_config(ini, ["training.epochs=7", "training.epochs= "]).training.epochs == 100
    assert load_config(ini, ["model.n_hidden="]).model.n_hidden == (16, 32, 32, 16)  # unwritten
    assert load_config(ini, ["data.subset=", "data.subset=8"]).data.subset == 8  # in order
    with pytest.raises(UserError) as refused:
        load_config(ini, ["data.sorce="])
    assert str(refused.value) == "unknown key data.sorce; did you mean 'source'? allowed: " + (
        "dataset, dir, source, channels, image_size, test_fraction, subset, val_fraction, "
        "split_seed"
    )
    with pytest.raises(UserError) as refused:
        load_config(ini, ["daat.source="])
    assert str(refused.value) == (
        "unknown config section [daat]; did you mean 'data'? allowed: data, model, diffusion, "
        "training, sampling"
    )


def test_the_command_line_names_and_takes_the_unset(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["train", "custom1", "--out", out, "--set", "data.dataset=digits8"]
    assert cli.main(argv) == 2
    cli_words = SOURCE_REFUSED.replace("{'data.source': ''}", "--set data.source=")
    assert capsys.readouterr().err == f"error: {cli_words}\n"  # the flag that unsets it
    short = ["training.max_steps=1", "training.epochs=1", "training.device=cpu"]
    assert (
        cli.main([*argv, "--set", "data.source=", *(x for o in short for x in ("--set", o))]) == 0
    )
    written = (tmp_path / "run" / "config.ini").read_text()
    assert "dataset = digits8" in written.splitlines()
    assert "# source = auto  (unused: applies to MNIST (data.dataset = mnist) only)" in written
