"""The calls a notebook or script makes: train a config into a run folder, get the model back,
score sample sets side by side."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import Config, DataConfig, read_config
from .data import ImageDataset
from .data.load import MEMORY_ONLY
from .data.memory import load_memory
from .device import resolve_device
from .errors import UserError
from .evaluation.classifier_store import train_for_dataset
from .evaluation.comparison import evaluate_sets
from .evaluation.scores import N_BOOT, N_BOOT_SET
from .evaluation.settings import EvaluationSettings
from .outputs.safe_writes import as_path, check_output_folder
from .training.run_config import load_config
from .training.trained_model import TrainedModel, load, load_model


def train(
    config: Config | str | Path,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    data: ImageDataset | tuple | np.ndarray | torch.Tensor | None = None,
) -> TrainedModel:
    """Train ``config`` (a :class:`Config`, an INI path or a packaged name such as
    ``"quickstart"``) into the folder ``run_dir`` and return the trained model (EMA weights where
    the run keeps them), on the device it trained on.

    ``resume``: continue the run in ``run_dir`` from its latest checkpoint (only the keys listed
    in docs/reliability.md may differ from the run's config); ``overwrite``: replace the run in
    ``run_dir`` (checked first, deleted only once the new run has a checkpoint). Ctrl-C writes a
    checkpoint and raises ``KeyboardInterrupt`` (``TrainingStopped``); ``resume=True`` continues.
    ``training.eval_every`` > 0 adds the quality curve to metrics.csv (``quality_probe.py``).

    ``data``: train on images held in Python instead of ``config.data``'s: ``(images, labels)``,
    images alone, or an :class:`ImageDataset`. Images are uint8 0..255 (NumPy or torch),
    (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3 (float images in [0, 1]: convert them
    with ``np.clip(np.round(x * 255), 0, 255).astype(np.uint8)``, or for a tensor
    ``(x * 255).round().clamp(0, 255).to(torch.uint8)``); labels integer (N,), classes 0..max
    label, named "class 0", "class 1", ... (an ``ImageDataset`` from
    ``diffusiontools.data.load_dataset("memory", images=, labels=, class_names=)`` names them;
    names "0".."9" make them digits, which ``digit=`` takes);
    ``data.test_fraction`` of the images (0.1 when None) are held out as the test split (seed 0),
    while an ``ImageDataset`` keeps its own split (``data.test_fraction`` is then refused). The
    run records ``data.dataset = memory`` and the data's fingerprint (of the images and int64
    labels as split, whatever their layout and integer type); nothing can load them again, so
    resuming and evaluating need ``data=`` with the same values (other values are refused;
    :func:`train_classifier` trains the classifier evaluate scores them with); a cold process,
    which samples from its data set's test images, is refused.

    Raises DiffusionToolsError for bad settings or data, a folder that holds a run (without
    ``resume`` or ``overwrite``), or a non-finite loss. Progress goes to tqdm bars and the
    ``diffusiontools`` logger.
    """
    from .evaluation.quality_probe import quality_probe  # torch-heavy: imported when training
    from .training.checkpoint import recorded_config
    from .training.trainer import train as train_run  # starts

    run_dir = as_path(run_dir, "run_dir")
    # A resume reads the keys the run recorded as recorded.
    recorded = recorded_config(run_dir) if resume is True else None
    if data is None and (recorded or {}).get("data", {}).get("dataset") == "memory":
        raise UserError(MEMORY_ONLY)
    if not isinstance(config, Config):
        config = load_config(config, recorded=recorded)
    dataset = None
    if data is not None:
        if config.data.image_size is not None:
            raise UserError(
                f"data.image_size={config.data.image_size} resizes data sets loaded from files; "
                "arrays handed over as data= keep the size they are given: remove it"
            )
        memory = dataclasses.replace(config.data, dataset="memory", dir=None)
        config = dataclasses.replace(config, data=memory)
        dataset = handed_over(data, config.data.test_fraction)
        if config.diffusion.kind == "cold":
            raise UserError(
                "diffusion.kind = cold starts every sample from its data set's test images, "
                "which arrays handed over as data= cannot give back: use diffusion.kind = gaussian"
            )
        if config.training.eval_every:
            raise UserError(
                f"training.eval_every={config.training.eval_every} measures against a data set "
                "loaded from files, and data= hands over arrays: set training.eval_every=0"
            )
    probe = quality_probe(config)  # training.eval_every: the quality curve, None when off
    train_run(config, run_dir, resume=resume, overwrite=overwrite, probe=probe, dataset=dataset)
    return load(run_dir, device=config.training.device)


def handed_over(data: object, test_fraction: float | None = None) -> ImageDataset:
    """``dt.train``'s ``data`` as an ``ImageDataset`` whose provenance source is ``memory`` (a
    data set from elsewhere keeps its own source under ``details["origin"]``); arrays are split
    with ``test_fraction`` (None: ``load_memory``'s 0.1). An ``ImageDataset`` keeps its own
    split, so a ``test_fraction`` given with one is refused."""
    if isinstance(data, ImageDataset):
        if test_fraction is not None:
            raise UserError(
                f"data.test_fraction={test_fraction} splits arrays handed over as data=; an "
                "ImageDataset has its own test split, which would ignore it: remove it"
            )
        provenance = data.provenance
        if provenance.source == "memory":
            return data
        details = {**provenance.details, "origin": provenance.source}
        provenance = dataclasses.replace(provenance, source="memory", details=details)
        return dataclasses.replace(data, provenance=provenance)
    options = {} if test_fraction is None else {"test_fraction": test_fraction}
    if isinstance(data, np.ndarray | torch.Tensor):
        return load_memory(data, **options)
    if isinstance(data, tuple | list) and len(data) == 2:
        return load_memory(*data, **options)
    raise UserError(
        f"data is a {type(data).__name__}; give (images, labels), images alone or an ImageDataset"
    )


class Table(str):
    """Markdown text that a notebook renders as a table (``_repr_markdown_``)."""

    def _repr_markdown_(self) -> str:
        return str(self)


@dataclass(frozen=True)
class EvaluationResult:
    """What ``evaluate`` measured: ``metrics`` (the metrics.json dict: ``settings`` and, per set,
    ``runs[label]["metrics"][name] = {"value", "interval", ...}``) and ``out_dir``, the folder
    with metrics.json, metrics.md, each set's samples as NPZ and the figures."""

    metrics: dict
    out_dir: Path

    def __repr__(self) -> str:
        runs = self.metrics["runs"]
        counts = sorted({len(run["metrics"]) for run in runs.values()})  # sets may leave some out
        metrics = "-".join(map(str, counts[:: max(len(counts) - 1, 1)])) if runs else "0"
        return f"EvaluationResult(sets {list(runs)}, {metrics} metrics each, out {self.out_dir})"

    def table(self) -> Table:
        """The side-by-side table (rows: metrics, columns: sets), as in metrics.md."""
        return Table((self.out_dir / "metrics.md").read_text())

    def value(self, label: str, metric: str) -> float:
        """One set's value of one metric, e.g. ``value("model 1", "frechet_distance")``."""
        runs = self.metrics["runs"]
        if label not in runs:
            raise UserError(f"no set labelled {label!r}; sets: {', '.join(runs)}")
        scores, omitted = runs[label]["metrics"], runs[label].get("omitted", {})
        if metric in omitted:  # left out of this set, e.g. read_as_asked where none was asked
            raise UserError(f"set {label!r} has no {metric}: {omitted[metric]}")
        if metric not in scores:
            raise UserError(f"no metric {metric!r}; metrics: {', '.join(scores)}")
        return scores[metric]["value"]


SampleSource = TrainedModel | str | Path | np.ndarray | torch.Tensor


def checked_images(label: str, images: torch.Tensor) -> np.ndarray:
    """Images given as an array: uint8 0..255 or float in model range, (N, C, H, W) with C 1
    or 3, or gray (N, H, W) (e.g. MNIST's (N, 28, 28)); anything else is refused rather than
    guessed at (the shape is checked against the data's by ``evaluate``), floats that never
    go below 0 too (pixels in [0, 1] or 0..255). Returns uint8
    (N, C, H, W), or for float images float32 (N, C, H, W) as given (their images saturate
    beyond [-0.5, 0.5] to black or white, as every sample's; the unclamped total variance is of
    the floats); gray as (N, 1, H, W)."""
    shape = tuple(images.shape)
    if not (len(shape) == 3 or (len(shape) == 4 and shape[1] in (1, 3))):
        raise UserError(
            f"set {label!r}: images must be (N, C, H, W) with C 1 or 3, or (N, H, W), not {shape}"
        )
    nchw = (shape[0], 1, *shape[1:]) if len(shape) == 3 else shape  # (N, C, H, W)
    if images.dtype == torch.uint8:
        return images.reshape(nchw).cpu().numpy()
    if not images.dtype.is_floating_point:
        raise UserError(
            f"set {label!r}: images are {images.dtype}; give uint8 0..255 or float in [-0.5, 0.5]"
        )
    floats = images.detach().reshape(nchw).float().cpu()  # a tensor that requires grad too
    if not bool(floats.isfinite().all()):
        raise UserError(
            f"set {label!r}: images hold NaN or inf as float32 (beyond ±3.4e38 a value overflows)"
        )
    low, high = float(floats.min()), float(floats.max())
    # Samples in the model's range have a background at -0.5: floats that never go below 0
    # are pixels in [0, 1] (or 0..255), which would be read a half-range too bright.
    if low >= 0:
        scale = "0..255" if high > 1.5 else "[0, 1]"
        fix = "give them as uint8" if high > 1.5 else "subtract 0.5, or give them as uint8"
        raise UserError(
            f"set {label!r}: float images span {low:g}..{high:g}, which look like pixels in "
            f"{scale}, not the model range [-0.5, 0.5]: {fix}"
        )
    return floats.numpy()


def evaluate(
    sets: Mapping[str, SampleSource],
    n_samples: int | None = None,
    out: str | Path = "evaluation",
    seed: int = 0,
    tsne_reference: int | None = None,
    test_reference: int | None = None,
    device: str = "auto",
    n_boot: int = N_BOOT,
    n_boot_set: int = N_BOOT_SET,
    tsne_samples: str = "images",
    overwrite: bool = False,
    data: str | Mapping[str, object] | DataConfig | ImageDataset | tuple | np.ndarray | None = None,
    data_dir: str | Path | None = None,
) -> EvaluationResult:
    """Score sample sets side by side against the test set of their data (docs/evaluation.md),
    with that data set's own classifier.

    ``sets``: label -> a :class:`TrainedModel` (``n_samples`` are drawn with its sampling
    settings, default 200), a run or export folder (loaded, then the same), an NPZ file of
    samples, or images as an array / tensor ((N, C, H, W) of the data's shape, or gray
    (N, H, W), e.g. MNIST's (N, 28, 28); uint8 0..255 or model range [-0.5, 0.5], floats
    also scored unclamped, as the report's total variance is); a set of another shape than
    the data's is refused. ``n_samples``: per set, 10..10,000 (None: 200
    per model, every image of a file or array, at most 10,000). Models must share their
    ``[data]`` settings: memorisation is measured against their training split, and the test
    reference is shared.
    ``tsne_reference``, ``test_reference``: test images in the joint t-SNE and behind the
    classifier metrics (None: every test image of the data, at most 10,000).
    ``tsne_samples``: what of each set the joint t-SNE (and every KL) embeds: "images", as
    shown, or "unclamped", the samples as drawn, as the report's t-SNE did (models, float
    arrays and NPZ files that hold them; a set without them is refused).
    ``data``: the data NPZ files and arrays are scored against, with its classifier: a data
    set's name (``"digits8"``), a dict of ``[data]`` keys (``{"dataset": "folder", "dir":
    "~/faces"}``) or a :class:`DataConfig`; None: MNIST's default settings, or the models'.
    Models are scored against the ``[data]`` settings stored with them, so ``data`` beside
    models must equal those. Runs trained on arrays (``dt.train(..., data=)``) are scored
    against the same arrays given again as ``data``: ``(images, labels)``, images alone or an
    :class:`ImageDataset`, converted and split as ``train`` does (with the runs'
    ``data.test_fraction``), refused unless their fingerprint is the runs'; their classifier
    comes from :func:`train_classifier`. ``data_dir``: where the data of the run folders in
    ``sets`` lie now, when they moved since training (:func:`load`'s; they must be the runs'
    data; a :class:`TrainedModel` takes it from ``load``).
    Writes metrics.json, metrics.md, NPZ files and the figures into ``out``; an evaluation
    already there is refused unless ``overwrite`` (which replaces its files, and leaves other
    files be). Every input is checked before ``out`` is created. All randomness follows
    ``seed``. Raises DiffusionToolsError naming a bad set or setting.
    """
    if not isinstance(sets, Mapping) or not sets:
        raise UserError("sets must be a non-empty dict {label: model, run folder, NPZ or images}")
    out = check_output_folder(out, "out", "the evaluation")  # before any model is loaded
    if not all(isinstance(label, str) for label in sets):
        raise UserError(f"set labels must be strings, not {[type(k).__name__ for k in sets]}")
    settings = EvaluationSettings(
        n_samples=n_samples,
        seed=seed,
        tsne_reference=tsne_reference,
        test_reference=test_reference,
        n_boot=n_boot,
        n_boot_set=n_boot_set,
        tsne_samples=tsne_samples,
    )
    device = resolve_device(device)
    if data_dir is not None and not any(
        isinstance(s, str | Path) and Path(s).is_dir() for s in sets.values()
    ):
        raise UserError(
            f"data_dir={data_dir} applies to run folders in sets, and none is given (a "
            "TrainedModel takes it from load(..., data_dir=))"
        )
    sources = []
    for label, source in sets.items():
        if isinstance(source, str | Path) and Path(source).is_dir():
            source = load_model(Path(source), None, device, data_dir=data_dir)
        elif isinstance(source, np.ndarray | torch.Tensor):
            source = checked_images(label, torch.as_tensor(source))
        elif isinstance(source, str | Path):
            source = Path(source)
        elif not isinstance(source, TrainedModel):
            raise UserError(
                f"set {label!r} is a {type(source).__name__}: give a TrainedModel, a run folder, "
                "an NPZ file or an image array"
            )
        sources.append((label, source))
    models = [source for _, source in sources if isinstance(source, TrainedModel)]
    data = given_data(data, models) if is_handed_over(data) else data_setting(data)
    metrics = evaluate_sets(sources, out, settings, device, data, overwrite)
    return EvaluationResult(metrics, out)


def is_handed_over(data: object) -> bool:
    """Whether ``data`` is images from Python (``train``'s ``data``), not a data setting."""
    return isinstance(data, ImageDataset | np.ndarray | torch.Tensor | tuple | list)


def given_data(data: object, models: list[TrainedModel]) -> ImageDataset:
    """``evaluate``'s images from Python as ``train`` made them of the runs trained on arrays:
    ``handed_over`` with their ``data.test_fraction`` (none such runs: the default split); an
    ``ImageDataset`` keeps its own split, which the runs' fingerprint checks."""
    memory = [m.config.data for m in models if m.config.data.dataset == "memory"]
    own_split = isinstance(data, ImageDataset) or not memory
    return handed_over(data, None if own_split else memory[0].test_fraction)


def train_classifier(
    data: ImageDataset | tuple | np.ndarray | torch.Tensor,
    epochs: int | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """Train the classifier that ``evaluate`` scores samples of ``data`` with, store it in the
    user cache (keyed by the data's fingerprint; ``classifier_store``) and return its record
    (``test_accuracy``, ``n_test``, ``epochs``, ``weights``, ...).

    ``data``: images from Python as ``train`` takes them, ``(images, labels)`` or an
    :class:`ImageDataset` with labels, converted and split as ``train`` does: give the
    ``test_fraction`` the run was trained with (its ``data.test_fraction``; None: 0.1), so that
    the fingerprint is the run's. ``epochs``: passes over the training images (None: at least
    1,400 batches, ``classifier_training.resolved_epochs``). Data sets read from files have
    ``diffusiontools classifier train``. Raises DiffusionToolsError for bad data, data without
    labels or ``epochs`` < 1.
    """
    return train_for_dataset(handed_over(data, test_fraction), epochs, seed, resolve_device(device))


def data_setting(data: str | Mapping[str, object] | DataConfig | None) -> DataConfig | None:
    """``evaluate``'s ``data`` as a checked ``[data]`` section (None stays None).

    Raises UserError for another type, and (``read_config``'s) for an unknown key or bad value.
    """
    if data is None or isinstance(data, DataConfig):
        return data
    if isinstance(data, str):
        data = {"dataset": data}
    if not isinstance(data, Mapping):
        raise UserError(
            f"data={data!r} is not a data setting; give a data set's name, a dict of [data] "
            "keys or a DataConfig"
        )
    return read_config(None, {f"data.{key}": value for key, value in data.items()})[0].data
