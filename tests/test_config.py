"""Config parsing and validation: defaults, overrides, and one-line errors naming key and value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from diffusiontools.config import (
    Config,
    DataConfig,
    DiffusionConfig,
    ModelConfig,
    TrainingConfig,
    config_from_dict,
)
from diffusiontools.diffusion import make_process
from diffusiontools.errors import UserError
from diffusiontools.models import make_network
from diffusiontools.training.resume_rules import resumed_config
from diffusiontools.training.run_config import load_config, to_ini


def test_report_configs_resolve_to_the_reference_settings():
    m1 = load_config("configs/model1.ini")
    assert (m1.diffusion.T, m1.diffusion.beta1, m1.diffusion.beta2) == (1000, 1e-4, 0.02)
    assert m1.model.n_hidden == (16, 32, 32, 16) and m1.training.batch_size == 128
    assert m1.training.lr == 2e-4 and m1.training.ema_decay == 0 and m1.name == "model1"
    m2 = load_config("configs/model2.ini")
    assert (m2.diffusion.T, m2.diffusion.beta1, m2.diffusion.beta2) == (100, 1e-3, 0.2)


def test_set_overrides_any_key(tiny_ini):
    config = load_config(tiny_ini, ["training.lr=0.5", "model.n_hidden=4,5,6", "data.subset=none"])
    assert config.training.lr == 0.5
    assert config.model.n_hidden == (4, 5, 6)
    assert config.data.subset is None


def test_resolved_ini_round_trips(tiny_ini, tmp_path):
    config = load_config(tiny_ini, ["training.ema_decay=0.99"])
    path = tmp_path / "tiny.ini"
    path.write_text(to_ini(config))
    assert load_config(path) == config
    assert config_from_dict(config.to_dict()) == config


def test_resolved_ini_writes_unused_keys_as_comments(tiny_ini, tmp_path):
    """A key that did not take effect is a comment in the run's config.ini (it reads back as the
    same config, which a written key whose switch is off would not: it is refused)."""
    plain = to_ini(load_config(tiny_ini)).splitlines()
    assert (
        "# min_snr_gamma = 5.0  (unused: applies to diffusion.loss_weighting = min_snr only)"
        in (plain)
    )
    assert "# eta = 0.0  (unused: applies to the ddim sampler only)" in plain
    unconditional = "class-conditional models (model.num_classes > 0)"
    assert f"# guidance = 1.0  (unused: applies to {unconditional} only)" in plain
    assert "clip_x0 = false" in plain  # a Gaussian model: it applies, and is said
    switched = load_config(tiny_ini, ["diffusion.loss_weighting=min_snr", "sampling.sampler=ddim"])
    lines = to_ini(switched).splitlines()
    assert "min_snr_gamma = 5.0" in lines and "eta = 0.0" in lines
    path = tmp_path / "resolved.ini"
    path.write_text(to_ini(switched))
    assert load_config(path) == dataclasses.replace(switched, name="resolved")


def test_data_dir_is_kept_absolute(tiny_ini, tmp_path, monkeypatch):
    """config.ini, checkpoints and metrics.json record it: relative, it would name another
    folder (or none) when read from elsewhere."""
    monkeypatch.chdir(tmp_path)
    config = load_config(tiny_ini, ["data.dir=data/../mnist"])
    assert config.data.dir == str(tmp_path.resolve() / "mnist")
    assert f"dir = {tmp_path.resolve() / 'mnist'}" in to_ini(config).splitlines()


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("training.lrr=1", "unknown key training.lrr; did you mean 'lr'?"),
        ("training.bogus=1", "unknown key training.bogus; allowed: "),  # no "did you mean 'log'"
        ("trainin.lr=1", "unknown config section [trainin]; did you mean 'training'?"),
        ("training.lr=fast", "training.lr='fast' is not valid: expected float"),
        ("training.lr=0", "training.lr=0.0 is out of range: must be > 0.0"),
        ("training.epochs=1.5", "training.epochs='1.5' is not valid: expected int"),
        ("diffusion.T=1", "diffusion.T=1 is out of range: must be >= 2"),
        ("diffusion.kind=hot", "diffusion.kind='hot' is not allowed: choose one of gaussian, cold"),
        ("diffusion.beta1=0.3", "must satisfy 0 < beta1 < beta2 < 1"),
        ("model.n_hidden=,", "model.n_hidden is empty"),
        ("model.n_hidden=a,b", "expected a comma-separated list of integers"),
        (
            "training.channels_last=maybe",
            "training.channels_last='maybe' is not valid: expected bool",
        ),
        (
            "training.log=wandb",
            "training.log='wandb' is not allowed: choose one of csv, tensorboard",
        ),
        ("training", "is not of the form section.key=value"),
        (
            "training.lr\n=1",
            "override='training.lr\\n=1' holds the non-printing character '\\n'; write "
            "section.key=value on one line without one",
        ),
        ("data.source=mnist\t", "holds the non-printing character '\\t'"),
        ("training.lr=1\u2028", "holds the non-printing character '\\u2028'"),
        (
            "sampling.timestep_spacing=diffusers",
            "sampling.timestep_spacing='diffusers' is not allowed: choose one of ours, trailing, "
            "leading, linspace",
        ),
    ],
)
def test_bad_values_name_key_value_and_allowed(tiny_ini, override, fragment):
    with pytest.raises(UserError) as info:
        load_config(tiny_ini, [override])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.ini")
    bad = tmp_path / "bad.ini"
    bad.write_text("no section header\n")
    with pytest.raises(UserError, match="cannot be parsed"):
        load_config(bad)


def test_defaults_are_the_notebook():
    config = Config().check()
    assert config.model.n_hidden == (16, 32, 32, 16)
    assert (config.diffusion.T, config.diffusion.beta1, config.diffusion.beta2) == (
        1000,
        1e-4,
        0.02,
    )


def test_a_resumed_run_may_change_its_timestep_spacing(tiny_ini):
    """sampling.* only says how to sample, so a resume may change it (resume_rules)."""
    stored = load_config(tiny_ini, ["sampling.sampler=ddim"])
    requested = load_config(
        tiny_ini, ["sampling.sampler=ddim", "sampling.timestep_spacing=leading"]
    )
    assert resumed_config(stored, requested, "run").sampling.timestep_spacing == "leading"
    assert Config().sampling.timestep_spacing == "ours"


# --- construction is validation ------------------------------------------------------------------

DEFAULTS = Config()


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: dataclasses.replace(DEFAULTS.diffusion, prediction="x_0"),
            "diffusion.prediction='x_0' is not allowed: choose one of eps, x0, v",
        ),
        (
            lambda: dataclasses.replace(DEFAULTS.model, network="resnet"),
            "model.network='resnet' is not allowed: choose one of cnn, unet, unet2d_diffusers",
        ),
        (
            lambda: DiffusionConfig(kind="heat"),
            "diffusion.kind='heat' is not allowed: choose one of gaussian, cold",
        ),
        (lambda: TrainingConfig(epochs=0), "training.epochs=0 is out of range: must be >= 1"),
        (
            lambda: TrainingConfig(epochs="10"),
            "training.epochs='10' is not valid: expected int",
        ),
        (lambda: TrainingConfig(epochs=True), "training.epochs=True is not valid: expected int"),
        (lambda: TrainingConfig(lr=float("nan")), "training.lr=nan is not a finite number"),
        (
            lambda: ModelConfig(n_hidden=(16, 2.5)),
            "model.n_hidden=(16, 2.5) is not valid: expected a comma-separated list of integers",
        ),
        (
            lambda: dataclasses.replace(DEFAULTS.diffusion, beta1=0.03),
            "diffusion.beta1=0.03 and diffusion.beta2=0.02 must satisfy 0 < beta1 < beta2 < 1",
        ),
        (
            lambda: TrainingConfig(lr_schedule="cosine"),
            "training.lr_schedule = cosine needs training.lr_decay_steps",
        ),
        (
            lambda: config_from_dict({"training": {"batch_size": 0}}),
            "training.batch_size=0 is out of range: must be >= 1",
        ),
        (
            lambda: dataclasses.replace(DEFAULTS, training=None),
            "config.training=None is not valid: expected a TrainingConfig",
        ),
        (
            lambda: dataclasses.replace(DEFAULTS, training={"lr": 1}),
            "config.training={'lr': 1} is not valid: expected a TrainingConfig",
        ),
        (lambda: Config(name=5), "config.name=5 is not valid: expected a non-empty str"),
    ],
)
def test_a_section_built_in_code_checks_itself(build, message):
    """dataclasses.replace(cfg.diffusion, prediction="x_0") trained as v without a word, and
    network="resnet" as a UNet: bounds and choices were checked only when an INI was parsed."""
    with pytest.raises(UserError) as e:
        build()
    assert str(e.value).startswith(message)


def test_a_section_built_in_code_takes_the_field_types():
    """An int for a float, a list for a tuple and a Path for data.dir become the field's type."""
    model, training = ModelConfig(n_hidden=[16, 32]), TrainingConfig(lr=1)
    assert model.n_hidden == (16, 32) and isinstance(training.lr, float) and training.lr == 1.0
    assert DataConfig(dir=Path("/tmp/x/..")).dir == "/tmp"


def test_the_factories_refuse_a_name_they_do_not_build():
    """A section whose value was forced past its check still builds nothing by guesswork."""
    model = ModelConfig()
    object.__setattr__(model, "network", "resnet")
    with pytest.raises(UserError, match="model.network='resnet' is not allowed"):
        make_network(model, shape=(1, 28, 28))
    config = Config()
    object.__setattr__(config.diffusion, "kind", "heat")
    with pytest.raises(UserError, match="diffusion.kind='heat' is not allowed"):
        make_process(config)
    process = make_process(Config())
    with pytest.raises(UserError, match="diffusion.prediction='x_0' is not allowed"):
        dataclasses.replace(process, prediction="x_0")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["diffusion.loss=l1"],  # quickstart: Gaussian, whose loss is always the MSE
            "diffusion.loss=l1 applies to cold processes (diffusion.kind = cold) only; the "
            "Gaussian process, whose loss is the MSE, would ignore it: remove it, "
            "or unset it with an empty override: {'diffusion.loss': ''}",
        ),
        (
            ["diffusion.t_per=batch"],
            "diffusion.t_per=batch applies to cold processes (diffusion.kind = cold) only; the "
            "Gaussian process would ignore it: remove it, "
            "or unset it with an empty override: {'diffusion.t_per': ''}",
        ),
        (
            ["model.n_hidden=8,8"],  # quickstart's network is the UNet
            "model.n_hidden=8, 8 applies to the cnn (model.network = cnn) only; a UNet would "
            "ignore it: remove it, or unset it with an empty override: {'model.n_hidden': ''}",
        ),
        (
            ["diffusion.schedule=cosine", "diffusion.beta1=1e-3"],
            "diffusion.beta1=0.001 applies to the linear schedule (diffusion.kind = gaussian, "
            "diffusion.schedule = linear) only; a cold process or the cosine schedule would "
            "ignore it: remove it, or unset it with an empty override: {'diffusion.beta1': ''}",
        ),
    ],
)
def test_a_key_of_another_network_or_process_is_refused_when_written(overrides, message):
    """--set diffusion.loss=l1 on the Gaussian quickstart trained bit-identical weights to the
    MSE run, yet config.ini said loss = l1 and a resume refused 'mse' -> 'l1'."""
    with pytest.raises(UserError) as e:
        load_config("quickstart", overrides)
    assert str(e.value) == message


@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "beta2",
            "0.02",
            "diffusion.beta2=0.02 applies to the linear schedule (diffusion.kind = gaussian, "
            "diffusion.schedule = linear) only; a cold process or the cosine schedule would "
            "ignore it: remove it, or unset it with an empty override: {'diffusion.beta2': ''}",
        ),
        (
            "prediction",
            "x0",
            "diffusion.prediction=x0 applies to Gaussian processes (diffusion.kind = gaussian) "
            "only; a cold process, whose network predicts x0, would ignore it: remove it, "
            "or unset it with an empty override: {'diffusion.prediction': ''}",
        ),
        (
            "schedule",
            "linear",
            "diffusion.schedule=linear applies to Gaussian processes (diffusion.kind = gaussian) "
            "only; a cold process, whose levels run from level_min to level_max, would ignore "
            "it: remove it, or unset it with an empty override: {'diffusion.schedule': ''}",
        ),
    ],
)
def test_a_gaussian_key_written_in_a_cold_ini_is_refused(key, value, message, tmp_path):
    """A cold run trained the same whatever the Gaussian schedule said, yet its config.ini and
    checkpoint recorded beta1, beta2, schedule and prediction as if they had been used."""
    ini = tmp_path / "cold.ini"
    ini.write_text(f"[diffusion]\nkind = cold\nT = 20\n{key} = {value}\n")
    with pytest.raises(UserError) as e:
        load_config(ini)
    assert str(e.value) == message


def test_config_ini_writes_the_keys_of_another_network_or_process_as_unused():
    text = to_ini(load_config("model1"))  # a Gaussian cnn
    for key in ("loss", "degradation", "t_per", "base_channels", "channel_mults"):
        assert f"\n# {key} = " in text, key
    assert "\nn_hidden = 16, 32, 32, 16\n" in text and "\nbeta2 = 0.02\n" in text
    cold = to_ini(load_config("custom1"))
    assert "\nloss = l1\n" in cold and "\n# channel_mults = 1, 2, 2  (unused" in cold
    gaussian_only = "(unused: applies to Gaussian processes (diffusion.kind = gaussian) only)"
    linear_only = (
        "(unused: applies to the linear schedule (diffusion.kind = gaussian, "
        "diffusion.schedule = linear) only)"
    )
    for line in (
        f"# schedule = linear  {gaussian_only}",
        f"# prediction = eps  {gaussian_only}",
        f"# beta1 = 0.0001  {linear_only}",
        f"# beta2 = 0.02  {linear_only}",
    ):
        assert line in cold.splitlines(), line
    unet = to_ini(load_config("quickstart")).splitlines()
    cnn_only = "(unused: applies to the cnn (model.network = cnn) only)"
    assert f"# n_hidden = 16, 32, 32, 16  {cnn_only}" in unet and "base_channels = 16" in unet
    cosine = to_ini(load_config(None, ["diffusion.schedule=cosine"])).splitlines()
    assert "schedule = cosine" in cosine and f"# beta2 = 0.02  {linear_only}" in cosine
