"""Typed, validated run configuration: dataclasses hold defaults; INI and ``--set`` override.

The dataclasses are the single source of truth. Each field may carry ``metadata`` with ``choices``,
``min``/``max`` (inclusive) or ``gt`` (exclusive lower bound). Construction is validation: every
section checks its fields' types and bounds (:func:`check_field`) and its own cross-field rules
when it is built, from an INI file, a dict, a checkpoint or code (``dataclasses.replace``
included), so no section holds a value it refuses. :meth:`Config.check` adds the rules that tie
sections together and the keys that cannot take effect. Every failure is a :class:`UserError`
naming the key, the value and what is allowed.

The ``sampling.*`` keys that depend on the sampler and the model (which sampler takes ``eta``,
...) are the sampling layer's rules (``sampling/plan.py``), above this module: a whole run
config is read and checked by ``training/run_config.py`` (``load_config``), which asks both.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import hashlib
import logging
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import UserError
from .hidden_characters import hidden_characters
from .optional import require

_PACKAGED = resources.files("diffusiontools") / "configs"
logger = logging.getLogger(__name__)


def _choices(*values: str, default: str) -> typing.Any:
    return field(default=default, metadata={"choices": values})


def _bounded(default: typing.Any, **bounds: float) -> typing.Any:
    return field(default=default, metadata=bounds)


class _Section:
    """A config section that validates itself when built: each field's type and metadata, then
    the section's own rules (``_rules``)."""

    def __post_init__(self) -> None:
        name = _SECTION_NAMES[type(self)]
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            key = f"{name}.{f.name}"
            value = _as_field_type(key, getattr(self, f.name), hints[f.name])
            check_field(key, value, f.metadata)
            object.__setattr__(self, f.name, value)
        self._rules()

    def _rules(self) -> None:
        """Rules between this section's fields; raise UserError."""


# The data sets a config can name: the names of ``data.sources.SOURCES`` but ``mnist_embedded``
# (data.source = embedded) and ``memory``. Written here, not imported, so that reading a config
# loads no data code; tests/test_data_seam.py ties the two.
DATASETS = (
    "mnist",
    "fashion_mnist",
    "kmnist",
    "cifar10",
    "folder",
    "npz",
    "digits8",
    "coloured_mnist",
)
# What a run trained on arrays handed in from Python records (``dt.train(..., data=)``): read
# back from its records, but no config can load its images, so no message offers it.
RECORDED_DATASETS = ("memory",)


@dataclass(frozen=True)
class DataConfig(_Section):
    dataset: str = field(
        default="mnist",
        metadata={"choices": (*DATASETS, *RECORDED_DATASETS), "offered": DATASETS},
    )
    # mnist, fashion_mnist, kmnist, cifar10: the folder of the data set's files (else, for mnist,
    # $DIFFUSIONTOOLS_DATA, then the user cache); folder: the folder of images; npz: the .npz file
    dir: str | None = None
    source: str = _choices("auto", "mnist", "embedded", default="auto")  # mnist only
    channels: int | None = _bounded(None, min=1, max=3)  # folder: 1 or 3; None: as the images are
    # The images' side S: a folder's shorter side resized (bicubic) and its centre cropped to
    # S x S; any other data set's images resized to S x S after loading (bilinear, as Bansal et
    # al.'s MNIST loader: data/resize.py); None: the images' own size
    image_size: int | None = _bounded(None, min=2)
    # folder (without train/ and test/), npz, digits8: the fraction held out as the test split,
    # drawn with a fixed seed so every run of a data set tests on the same images; None: the
    # source's own default (0.1; digits8 0.2)
    test_fraction: float | None = _bounded(None, gt=0.0, max=0.9)
    subset: int | None = _bounded(None, min=1)  # use only the first N training images (smoke runs)
    val_fraction: float = _bounded(0.2, gt=0.0, max=0.9)
    split_seed: int = 42

    def __post_init__(self) -> None:
        # Kept absolute: config.ini, checkpoints and metrics.json record it, and a relative
        # folder would name another place (or none) when they are read from elsewhere.
        if isinstance(self.dir, Path):
            object.__setattr__(self, "dir", str(self.dir))
        super().__post_init__()
        if self.dir is not None:
            object.__setattr__(self, "dir", str(Path(self.dir).expanduser().resolve()))

    def _rules(self) -> None:
        if self.dataset in ("folder", "npz") and self.dir is None:
            what = "the folder of images" if self.dataset == "folder" else "the .npz file"
            raise UserError(f"data.dataset = {self.dataset} needs data.dir, {what}")
        if self.channels == 2:
            raise UserError("data.channels=2 is not allowed: use 1 (gray) or 3 (RGB)")


@dataclass(frozen=True)
class ModelConfig(_Section):
    # unet2d_diffusers: diffusers' UNet2DModel, trained directly (exports to diffusers; needs
    # the diffusers extra); it takes base_channels and channel_mults as the UNet does.
    network: str = _choices("cnn", "unet", "unet2d_diffusers", default="cnn")
    n_hidden: tuple[int, ...] = (16, 32, 32, 16)  # CNN channels per block (the notebook's default)
    base_channels: int = _bounded(32, min=4)  # UNet width at full resolution
    # UNet width multipliers, one per resolution: level i works at S / 2**i pixels for images of
    # size S, so S must divide by 2**(entries - 1) (28: 1 to 3 entries, 28 -> 14 -> 7).
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_classes: int = _bounded(0, min=0)  # >0: class-conditional (classifier-free guidance)
    class_dropout: float = _bounded(0.1, min=0.0, max=1.0)  # label drop rate for guidance training

    def _rules(self) -> None:
        if self.network == "cnn" and not self.n_hidden:
            raise UserError("model.n_hidden is empty; give at least one channel count, e.g. 16, 32")
        if any(c < 1 for c in self.n_hidden):
            raise UserError(f"model.n_hidden={self.n_hidden} has a non-positive channel count")
        if self.network != "cnn" and (
            not self.channel_mults or any(c < 1 for c in self.channel_mults)
        ):
            raise UserError(f"model.channel_mults={self.channel_mults} needs positive entries")


@dataclass(frozen=True)
class DiffusionConfig(_Section):
    kind: str = _choices("gaussian", "cold", default="gaussian")
    T: int = _bounded(1000, min=2)
    # Gaussian process.
    schedule: str = _choices("linear", "cosine", default="linear")
    beta1: float = _bounded(1e-4, gt=0.0, max=1.0)
    beta2: float = _bounded(0.02, gt=0.0, max=1.0)
    prediction: str = _choices("eps", "x0", "v", default="eps")
    # Loss weight per t: "none" is the notebook's plain MSE; "min_snr" weighs each sample by
    # min(SNR_t, gamma) relative to its prediction's natural weight (Hang et al. 2023, "Efficient
    # Diffusion Training via Min-SNR Weighting Strategy"), so the easy low-noise times stop
    # dominating the gradient.
    loss_weighting: str = _choices("none", "min_snr", default="none")
    min_snr_gamma: float = _bounded(5.0, gt=0.0)
    # Training times of a Gaussian process: "uniform" draws t from 1..T-1 (the notebook's);
    # "lognormal" draws the noise level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) as
    # ln sigma ~ N(t_lognormal_mean, t_lognormal_std^2) and takes the t of the nearest sigma_t
    # (Karras et al. 2022, "Elucidating the Design Space...", sec. 5: p_train), so that training
    # is spent on the noise levels that shape strokes and backgrounds, not on near-pure noise.
    t_sampling: str = _choices("uniform", "lognormal", default="uniform")
    t_lognormal_mean: float = -0.5
    t_lognormal_std: float = _bounded(1.5, gt=0.0)
    # Cold process (Bansal et al. 2022): a degradation and its level schedule.
    degradation: str = "pixel_swap"
    level_min: float | None = None  # level at t=0; None: the degradation's default
    level_max: float | None = None  # level at t=T; None: the degradation's default
    t_per: str = _choices(
        "image", "batch", default="image"
    )  # "batch": the report's one t per batch
    loss: str = _choices("mse", "l1", default="mse")
    # Training levels of a cold process: "notebook" draws t from 1..T-1 (the report's, as the
    # Gaussian model); "full" from 1..T (Bansal et al.'s code), so R is trained at t = T, the
    # level every sampler starts from.
    t_range: str = _choices("notebook", "full", default="notebook")

    def _rules(self) -> None:
        if self.kind == "gaussian" and self.schedule == "linear":
            if not self.beta1 < self.beta2 < 1:
                raise UserError(
                    f"diffusion.beta1={self.beta1} and diffusion.beta2={self.beta2} must satisfy "
                    "0 < beta1 < beta2 < 1"
                )


@dataclass(frozen=True)
class TrainingConfig(_Section):
    epochs: int = _bounded(100, min=1)
    batch_size: int = _bounded(128, min=1)
    lr: float = _bounded(2e-4, gt=0.0)
    # Learning rate over the optimiser steps: "constant" (the notebook's) or "cosine", a linear
    # warm-up over warmup_steps then a half cosine from lr to 0 at lr_decay_steps (Loshchilov &
    # Hutter 2017, without restarts); both fixed at the start, so a resumed run follows the same
    # curve whatever max_steps says. A run longer than lr_decay_steps is refused once its length
    # is known (the trainer: lr_schedule.check_schedule_covers): it would train at lr 0.
    lr_schedule: str = _choices("constant", "cosine", default="constant")
    lr_decay_steps: int | None = _bounded(None, min=1)
    warmup_steps: int = _bounded(0, min=0)
    seed: int = 42
    max_steps: int | None = _bounded(None, min=1)  # stop after N optimiser steps (smoke runs)
    save_every: int = _bounded(10, min=1)  # epochs between kept checkpoints (latest is always kept)
    ema_decay: float = _bounded(0.0, min=0.0, max=0.99999)  # 0 = no EMA (the faithful setting)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    channels_last: bool = False
    compile: bool = False  # torch.compile the network (pays off on GPU for long runs)
    amp: str = _choices("off", "bf16", default="off")  # autocast dtype on CUDA
    val_batches: int | None = _bounded(None, min=1)  # cap on validation batches per epoch
    # Progress log beside metrics.csv (always written): "tensorboard" adds event files in
    # RUN/tensorboard/ (training/tensorboard_log.py); it needs the [tensorboard] extra.
    log: str = _choices("csv", "tensorboard", default="csv")
    # The quality curve (evaluation/quality_probe.py): after every eval_every-th epoch (epochs
    # 0, N, 2N, ... and the last) eval_samples samples of a fixed seed, drawn with a fast
    # sampler, are scored by the classifier into metrics.csv; 0 = off (the faithful setting).
    eval_every: int = _bounded(0, min=0)
    # 200: evaluate's default n (the Fréchet bias); at most the 10,000 test images' worth. A
    # stop signal abandons a running probe (the epoch's checkpoint is written before it).
    eval_samples: int = _bounded(200, min=2, max=10_000)

    def _rules(self) -> None:
        if self.lr_schedule == "cosine" and self.lr_decay_steps is None:
            raise UserError(
                "training.lr_schedule = cosine needs training.lr_decay_steps, the step at which "
                "the learning rate reaches 0 (e.g. the run's max_steps)"
            )
        if self.lr_decay_steps is not None and self.warmup_steps >= self.lr_decay_steps:
            raise UserError(
                f"training.warmup_steps={self.warmup_steps} must be below "
                f"training.lr_decay_steps={self.lr_decay_steps}"
            )


TIMESTEP_SPACINGS = ("ours", "trailing", "leading", "linspace")
COLD_STARTS = ("auto", "test", "test_consistent", "gmm")


@dataclass(frozen=True)
class SamplingConfig(_Section):
    sampler: str = "default"  # default: ancestral (Gaussian) or naive (cold), the report's choices
    steps: int | None = _bounded(None, min=1)  # network evaluations for DDIM / DPM-Solver
    eta: float = _bounded(0.0, min=0.0, max=1.0)  # DDIM stochasticity
    # The time grid of ddim and dpm_solver: "ours" (round(linspace(T, 0, steps + 1)), the last
    # step to the clean image), or diffusers' "trailing", "leading", "linspace" to reproduce its
    # DDIMScheduler / DPMSolverMultistepScheduler run exactly (sampling/timesteps.py).
    timestep_spacing: str = _choices(*TIMESTEP_SPACINGS, default="ours")
    guidance: float = _bounded(1.0, min=0.0)  # classifier-free guidance scale (1 = none)
    clip_x0: bool = False  # clamp every step's x0 prediction to [-0.5, 0.5] (not the original's)
    n_samples: int = _bounded(16, min=1)  # images drawn into the per-epoch sample grid
    sample_every: int = _bounded(0, min=0)  # epochs between sample grids during training; 0 = none
    # Cold x_T (diffusion/cold.py, ColdStart): "test" = test images degraded at T-1 and sampled
    # as if at T with a fresh field per step (the report's, for the naive sampler only);
    # "test_consistent" = test images degraded at T, the sampler re-applying their field;
    # "gmm" = a draw from a Gaussian mixture fitted to fully degraded training images
    # (unconditional); "auto" = test for the naive sampler, test_consistent for the improved.
    start: str = _choices(*COLD_STARTS, default="auto")


@dataclass(frozen=True)
class Config:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self) -> None:
        """Each section must be its own dataclass (already checked when it was built)."""
        if not isinstance(self.name, str) or not self.name:
            raise UserError(f"config.name={self.name!r} is not valid: expected a non-empty str")
        for name, cls in SECTIONS.items():
            part = getattr(self, name)
            if not isinstance(part, cls):
                raise UserError(
                    f"config.{name}={part!r} is not valid: expected a {cls.__name__} "
                    f"(diffusiontools.config.{cls.__name__})"
                )

    def check(self, written: typing.Collection[str] = ()) -> Config:
        """Rules that tie keys together (the sampling layer's aside, see the module doc); returns
        self so calls chain.

        ``written``: the ``section.key`` names the INI file and overrides wrote (read_config's
        record; an empty override unsets a key, see :func:`read_config`). A key of
        :func:`unused_keys` (one whose switch is off, e.g.
        ``diffusion.min_snr_gamma`` without ``loss_weighting = min_snr``) is refused when it was
        written, whatever its value, and, in a config built in code, when it is not its default.
        """
        d, m = self.diffusion, self.model
        for key, (scope, ignored_by) in unused_keys(self).items():
            refuse_unused(key, value_of(self, key), scope, ignored_by, key in written)
        if d.kind == "cold" and m.num_classes:
            raise UserError("model.num_classes > 0 (guidance) works only with kind = gaussian")
        if self.training.log == "tensorboard":  # refused here, before any run folder changes
            require("tensorboard", "tensorboard", "training.log = tensorboard")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Keys that take effect only while another key switches them on: key -> (whether it applies,
# what it applies to, what would ignore it). The one table of which keys apply, by the network
# and the process kind first: a cold run's diffusion.t_sampling is refused before the
# lognormal keys that hang on it.
_Switch = tuple[typing.Callable[[Config], bool], str, str]
_GAUSSIAN = (
    lambda c: c.diffusion.kind == "gaussian",
    "Gaussian processes (diffusion.kind = gaussian)",
)
_COLD: _Switch = (
    lambda c: c.diffusion.kind == "cold",
    "cold processes (diffusion.kind = cold)",
    "the Gaussian process",
)
_UNETS: _Switch = (
    lambda c: c.model.network != "cnn",
    "the UNets (model.network = unet or unet2d_diffusers)",
    "the cnn",
)
_LINEAR: _Switch = (
    lambda c: c.diffusion.kind == "gaussian" and c.diffusion.schedule == "linear",
    "the linear schedule (diffusion.kind = gaussian, diffusion.schedule = linear)",
    "a cold process or the cosine schedule",
)
_LOGNORMAL: _Switch = (
    lambda c: c.diffusion.t_sampling == "lognormal",
    "diffusion.t_sampling = lognormal",
    "uniform training times",
)
_COSINE: _Switch = (
    lambda c: c.training.lr_schedule == "cosine",
    "training.lr_schedule = cosine",
    "the constant schedule",
)
_FOLDER: _Switch = (
    lambda c: c.data.dataset == "folder",
    "a folder of images (data.dataset = folder)",
    "another data set",
)
SWITCHED: dict[str, _Switch] = {
    "data.source": (
        lambda c: c.data.dataset == "mnist",
        "MNIST (data.dataset = mnist)",
        "another data set",
    ),
    "data.dir": (
        lambda c: c.data.dataset not in ("digits8", "coloured_mnist"),
        "data sets read from files (data.dataset other than digits8 and coloured_mnist)",
        "a data set made from what installed packages ship (digits8, coloured_mnist)",
    ),
    "data.channels": _FOLDER,
    "data.image_size": (
        lambda c: c.data.dataset != "memory",
        "data sets loaded from files (data.dataset other than memory)",
        "arrays handed over from Python, which keep the size they are given,",
    ),
    "data.test_fraction": (
        lambda c: c.data.dataset in ("folder", "npz", "digits8", "memory"),
        "data sets without their own test split (data.dataset = folder, npz, digits8 or memory)",
        "a data set with its own test split",
    ),
    "model.n_hidden": (
        lambda c: c.model.network == "cnn",
        "the cnn (model.network = cnn)",
        "a UNet",
    ),
    "model.base_channels": _UNETS,
    "model.channel_mults": _UNETS,
    "model.class_dropout": (
        lambda c: c.model.num_classes > 0,
        "class-conditional models (model.num_classes > 0)",
        "an unconditional model",
    ),
    "diffusion.degradation": _COLD,
    "diffusion.level_min": _COLD,
    "diffusion.level_max": _COLD,
    "diffusion.t_per": _COLD,
    "diffusion.loss": (*_COLD[:2], "the Gaussian process, whose loss is the MSE,"),
    "diffusion.t_range": (*_COLD[:2], "the Gaussian process, which draws t from 1..T-1,"),
    "diffusion.schedule": (
        *_GAUSSIAN,
        "a cold process, whose levels run from level_min to level_max,",
    ),
    "diffusion.beta1": _LINEAR,
    "diffusion.beta2": _LINEAR,
    "diffusion.prediction": (*_GAUSSIAN, "a cold process, whose network predicts x0,"),
    "diffusion.loss_weighting": (*_GAUSSIAN, "a cold process"),
    "diffusion.t_sampling": (
        *_GAUSSIAN,
        "a cold process, which chooses its training levels with diffusion.t_range,",
    ),
    "diffusion.min_snr_gamma": (
        lambda c: c.diffusion.loss_weighting == "min_snr",
        "diffusion.loss_weighting = min_snr",
        "the plain loss",
    ),
    "diffusion.t_lognormal_mean": _LOGNORMAL,
    "diffusion.t_lognormal_std": _LOGNORMAL,
    "training.eval_samples": (
        lambda c: c.training.eval_every > 0,
        "training.eval_every > 0",
        "a run without the quality probe",
    ),
    "training.lr_decay_steps": _COSINE,
    "training.warmup_steps": _COSINE,
}


def unused_keys(config: Config) -> dict[str, tuple[str, str]]:
    """The keys of ``SWITCHED`` that cannot take effect in ``config``: key -> (what it applies
    to, what would ignore it). The sampling layer adds its own (``sampling.plan.unused_keys``)."""
    return {
        key: (scope, ignored_by)
        for key, (applies, scope, ignored_by) in SWITCHED.items()
        if not applies(config)
    }


def refuse_unused(
    key: str,
    value: typing.Any,
    scope: str,
    ignored_by: str,
    written: bool,
) -> None:
    """Refuse ``key`` = ``value``, which cannot take effect (it applies to ``scope`` only and
    ``ignored_by`` would ignore it), where it was ``written`` (in the INI, by an override, given
    as an option), whatever its value, saying how to remove it (an empty override unsets a key
    the INI wrote: ``{'data.source': ''}``, which the CLI names ``--set data.source=``); in a
    config built in code, where it is not its default."""
    default = default_of(key)
    if written or value != default:
        fix = (
            f"remove it, or unset it with an empty override: {{'{key}': ''}}"
            if written
            else f"leave it at {ini_value(default)}"
        )
        raise UserError(
            f"{key}={ini_value(value)} applies to {scope} only; {ignored_by} would ignore it: {fix}"
        )


def value_of(config: Config, key: str) -> typing.Any:
    """The value of ``key`` ("section.name") in ``config``."""
    section, _, name = key.partition(".")
    return getattr(getattr(config, section), name)


def _field(key: str) -> dataclasses.Field:
    section, _, name = key.partition(".")
    (found,) = [f for f in dataclasses.fields(SECTIONS[section]) if f.name == name]
    return found


def default_of(key: str) -> typing.Any:
    """The default of ``key`` ("section.name")."""
    return _field(key).default


def with_default(config: Config, key: str) -> Config:
    """``config`` with ``key`` ("section.name") at its default."""
    section, _, name = key.partition(".")
    part = dataclasses.replace(getattr(config, section), **{name: default_of(key)})
    return dataclasses.replace(config, **{section: part})


def differences(a: typing.Any, b: typing.Any) -> str:
    """The keys in which two sections of one kind (two :class:`DataConfig`) differ, each with
    both values: ``"data.subset = none vs 200; data.split_seed = 42 vs 7"``; empty if equal."""
    section = _SECTION_NAMES[type(a)]
    return "; ".join(
        f"{section}.{f.name} = {ini_value(getattr(a, f.name))} vs {ini_value(getattr(b, f.name))}"
        for f in dataclasses.fields(a)
        if getattr(a, f.name) != getattr(b, f.name)
    )


def check_key(key: str, value: typing.Any) -> None:
    """Apply the bounds and choices of config field ``key`` ("section.name") to ``value``, for
    the factories and classes that take one value of a section; raises UserError."""
    check_field(key, value, _field(key).metadata)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "diffusion": DiffusionConfig,
    "training": TrainingConfig,
    "sampling": SamplingConfig,
}
_SECTION_NAMES = {cls: name for name, cls in SECTIONS.items()}


def _closest(name: str, allowed: typing.Iterable[str]) -> str:
    allowed = list(allowed)
    match = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)  # 0.5: bogus -> log
    hint = f"did you mean '{match[0]}'? " if match else ""
    return f"{hint}allowed: {', '.join(allowed)}"


def _parse_value(key: str, text: str, annotation: typing.Any) -> typing.Any:
    """Turn INI text into the field's type; the error names key, value and the expected type."""
    text = text.strip()
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if text.lower() in ("", "none"):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _parse_value(key, text, inner)
    try:
        if annotation is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annotation is int:
            return int(text)
        if annotation is float:
            return float(text)
        if origin is tuple:
            return tuple(
                int(part)
                for part in text.replace("(", "").replace(")", "").split(",")
                if part.strip()
            )
        return text
    except ValueError:
        raise UserError(f"{key}={text!r} is not valid: expected {_type_name(annotation)}") from None


def _type_name(annotation: typing.Any) -> str:
    if typing.get_origin(annotation) is tuple:
        return "a comma-separated list of integers"
    return getattr(annotation, "__name__", str(annotation))


def _as_field_type(key: str, value: typing.Any, annotation: typing.Any) -> typing.Any:
    """``value`` as the field's type (an int for a float field, a list for a tuple field), or a
    UserError naming the key, the value and the type expected. A bool is not a number."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (annotation,) = [a for a in args if a is not type(None)]
        origin = typing.get_origin(annotation)
    if origin is tuple and isinstance(value, tuple | list):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    elif annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif annotation in (bool, str) and isinstance(value, annotation):
        return value
    raise UserError(f"{key}={value!r} is not valid: expected {_type_name(annotation)}")


def check_field(key: str, value: typing.Any, meta: typing.Mapping) -> None:
    """Apply a field's ``choices``/``min``/``max``/``gt`` metadata; NaN and inf are refused.
    ``offered``, where given, are the choices the message lists (the others are read from
    records only)."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{key}={value} is not a finite number")
    if "choices" in meta and value not in meta["choices"]:
        offered = meta.get("offered", meta["choices"])
        raise UserError(f"{key}={value!r} is not allowed: choose one of {', '.join(offered)}")
    if "min" in meta and value < meta["min"]:
        raise UserError(f"{key}={value} is out of range: must be >= {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise UserError(f"{key}={value} is out of range: must be <= {meta['max']}")
    if "gt" in meta and value <= meta["gt"]:
        raise UserError(f"{key}={value} is out of range: must be > {meta['gt']}")


def _apply(sections: dict[str, dict[str, str]], name: str) -> tuple[Config, frozenset[str]]:
    parts = {}
    for section, values in sections.items():
        _check_known(section, values)
        cls = SECTIONS[section]
        hints = typing.get_type_hints(cls)
        parsed = {}
        for key, text in values.items():
            parsed[key] = _parse_value(f"{section}.{key}", text, hints[key])
        parts[section] = cls(**parsed)
    written = frozenset(f"{section}.{key}" for section, keys in sections.items() for key in keys)
    return Config(name=name, **parts), written


def _check_known(section: str, keys: typing.Iterable[str]) -> None:
    """Refuse a section or key no config has, naming the closest that exists."""
    if section not in SECTIONS:
        raise UserError(f"unknown config section [{section}]; {_closest(section, SECTIONS)}")
    fields = [f.name for f in dataclasses.fields(SECTIONS[section])]
    for key in keys:
        if key not in fields:
            raise UserError(f"unknown key {section}.{key}; {_closest(key, fields)}")


def _merge(base: dict[str, dict[str, str]], overrides: typing.Sequence[str]) -> None:
    """Apply ``section.key=value`` overrides to the file's keys; an empty value unsets the key
    (see :func:`read_config`). An override holding a newline or another character a shell line
    does not show as itself is refused: an INI line cannot hold it, and ``lr\\n=1`` is no key."""
    for item in overrides:
        hidden = hidden_characters(item)
        if hidden:
            raise UserError(
                f"override={item!r} holds the non-printing character {hidden[0]!r}; write "
                "section.key=value on one line without one"
            )
        key, sep, value = item.partition("=")
        section, dot, option = key.strip().partition(".")
        if not sep or not dot or not option:
            raise UserError(f"override={item!r} is not of the form section.key=value")
        if value.strip():
            base.setdefault(section, {})[option] = value
        else:
            _check_known(section, [option])  # an unset names a key that exists, as a value does
            base.get(section, {}).pop(option, None)


def packaged_configs() -> list[str]:
    """Names of the configs shipped in the package (model1, quickstart, ...)."""
    return sorted(
        p.name.removesuffix(".ini") for p in _PACKAGED.iterdir() if p.name.endswith(".ini")
    )


def config_path(name_or_path: str | Path) -> Path:
    """An INI file's path, or the packaged config of that name (``"model1"``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = _PACKAGED / f"{name_or_path}.ini"
    if path.suffix == "" and packaged.is_file():
        return Path(str(packaged))
    if path.suffix == "":
        raise UserError(
            f"config {str(name_or_path)!r} is neither a file nor a packaged config; packaged: "
            f"{', '.join(packaged_configs())}"
        )
    raise UserError(f"config file {path} does not exist")


def ini_value(value: typing.Any) -> str:
    """A value as INI text: ``none``, ``true``/``false``, ``16, 32`` for a tuple."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value)
    return str(value)


INI_EXPECTED = "expected [section] headers, each followed by key = value lines"


def _parse_error(exc: configparser.Error) -> str:
    """Where and why an INI file did not parse, in our words (configparser's span lines)."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno} {exc.line.strip()!r} comes before any [section]; {INI_EXPECTED}"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"section [{exc.section}] appears twice (line {exc.lineno}); give each section once"
    if isinstance(exc, configparser.DuplicateOptionError):
        return (
            f"key {exc.section}.{exc.option} appears twice (line {exc.lineno}); give each key once"
        )
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        lineno = exc.errors[0][0]
        return f"line {lineno} is neither a [section] header nor a key = value line"
    return INI_EXPECTED


def read_config(
    path: str | Path | None,
    overrides: typing.Sequence[str] | typing.Mapping[str, typing.Any] = (),
) -> tuple[Config, frozenset[str]]:
    """Read a config and apply overrides: a frozen :class:`Config`, each section checked as it
    is built, and the ``section.key`` names the file and the overrides wrote. The rules that
    tie keys together (:meth:`Config.check`, the sampling layer's) are not applied here:
    ``training.run_config.load_config`` reads a config whole, a resumed run's as it recorded.

    ``path``: an INI file, the name of a packaged config (``"model1"``, ``"quickstart"``, see
    :func:`packaged_configs`), or None for the defaults. ``overrides``: ``{"training.epochs": 1}``
    or ``["training.epochs=1"]`` (as ``--set``). An override with an empty value
    (``{"data.source": ""}``, ``--set data.source=``) unsets the key, as if neither the file
    nor an earlier override wrote it: it takes its default and counts as not written, so a
    packaged config moves to a data set, network or process its keys do not apply to (a key
    written where it cannot take effect is refused whatever its value, its default included:
    :meth:`Config.check`). Raises DiffusionToolsError naming the file, the
    section or the ``section.key`` and value that is wrong, and what is allowed.
    """
    if isinstance(overrides, str):
        raise UserError(
            f"overrides={overrides!r} is one string: give a dict {{'section.key': value}} or a "
            "list of 'section.key=value' strings"
        )
    if path is not None and not isinstance(path, str | Path):
        raise UserError(f"config={path!r} is not a config: give a packaged name or an INI path")
    if isinstance(overrides, typing.Mapping):
        overrides = [f"{key}={ini_value(value)}" for key, value in overrides.items()]
    sections: dict[str, dict[str, str]] = {}
    name = "run"
    if path is not None:
        path = config_path(path)
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
        parser.optionxform = str  # keep key case: T is not t
        try:
            if not parser.read(path, encoding="utf-8"):  # read() skips a file it cannot open
                raise UserError(f"config file {path} cannot be opened for reading")
        except configparser.Error as exc:
            raise UserError(f"config file {path} cannot be parsed: {_parse_error(exc)}") from None
        except UnicodeDecodeError:
            raise UserError(
                f"config file {path} is not a text (UTF-8) INI file: {INI_EXPECTED}"
            ) from None
        sections = {s: dict(parser[s]) for s in parser.sections()}
        name = path.stem
    _merge(sections, overrides)
    return _apply(sections, name)


def config_from_dict(data: dict, source: str = "the stored config") -> Config:
    """Rebuild a Config from :meth:`Config.to_dict` output (as stored in checkpoints and exports),
    its values as written: each section checked as it is built, the rules between keys not
    (``training.run_config.as_recorded`` reads a record as the run it describes). ``source``
    (``checkpoint PATH``) is named when ``data`` holds a section or key this diffusiontools does
    not know (a newer version's) or a section that is not a table."""
    if not isinstance(data, dict):
        raise UserError(f"{source} holds no config table, but {type(data).__name__}")
    unknown = sorted(set(data) - {"name", *SECTIONS})
    if unknown:
        raise UserError(
            f"{source} holds config section [{unknown[0]}], unknown to this diffusiontools "
            "(a newer version wrote it?); upgrade diffusiontools"
        )
    parts = {}
    for section, cls in SECTIONS.items():
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise UserError(f"{source} holds config section [{section}] as {values!r}, not keys")
        values = dict(values)
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(values) - set(hints))
        if unknown:
            raise UserError(
                f"{source} holds config key {section}.{unknown[0]}, unknown to this "
                "diffusiontools (a newer version wrote it?); upgrade diffusiontools"
            )
        for key, value in values.items():
            if typing.get_origin(hints.get(key)) is tuple and value is not None:
                values[key] = tuple(value)
        parts[section] = cls(**values)
    return Config(name=data.get("name", "run"), **parts)


RUN_CONFIG_HEADER = "# resolved config of run"  # the first line of every config a run wrote
_SEALED = re.compile(r"\[sha256 ([0-9a-f]{16})\]$")  # the header's end: a digest of the rest


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def ini_text(config: Config, unused: typing.Mapping[str, tuple[str, str]]) -> str:
    """``config`` as INI text; each key of ``unused`` (key -> (what it applies to, what would
    ignore it)) a comment saying so, so that the text loads back as the same config. The first
    line, ``# resolved config of run 'NAME' [sha256 DIGEST]``, holds the first 16 hex digits of
    the sha256 of the lines below it (:func:`is_run_config_text`)."""
    lines = []
    for section in SECTIONS:
        lines.append(f"\n[{section}]")
        for key, value in dataclasses.asdict(getattr(config, section)).items():
            line = f"{key} = {ini_value(value)}"
            if f"{section}.{key}" in unused:
                line = f"# {line}  (unused: applies to {unused[f'{section}.{key}'][0]} only)"
            lines.append(line)
    body = "\n".join(lines) + "\n"
    name = repr(config.name)  # one line whatever the config file's name holds
    return f"{RUN_CONFIG_HEADER} {name} [sha256 {_digest(body)}]\n{body}"


def is_run_config_text(text: str) -> bool:
    """Whether ``text`` is a config.ini as a run wrote it: its first line is a run's header and
    the lines below are the ones its digest seals (an earlier version wrote no digest: its
    header alone counts). A copy the user edited is the user's file."""
    return text.startswith(RUN_CONFIG_HEADER) and not is_edited_run_config(text)


def is_edited_run_config(text: str) -> bool:
    """Whether ``text`` is a run's config.ini edited since (its seal does not match)."""
    header, _, body = text.partition("\n")
    sealed = _SEALED.search(header) if header.startswith(RUN_CONFIG_HEADER) else None
    return sealed is not None and sealed.group(1) != _digest(body)
