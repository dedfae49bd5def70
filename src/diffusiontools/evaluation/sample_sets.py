"""The columns of an evaluation: sample sets, each drawn from a model, read from an NPZ file or
given as uint8 images, labelled, checked before anything is written, and saved as NPZ."""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data import to_uint8
from ..errors import UserError
from ..hidden_characters import hidden_characters
from ..outputs.samples_io import load_samples, load_unclamped, save_samples
from ..progress_bar import progress_bar
from ..sampling.generation import generate
from ..sampling.plan import resolve_plan
from ..training.sample_files import asked_fields, dataset_fields, start_fields
from ..training.trained_model import TrainedModel, load_model
from .asked_classes import ARRAY_REASON, recorded_asked, without_asked
from .evaluation_data import EvaluationData
from .report_metrics import GMM_COMPONENTS
from .settings import MAX_SAMPLES, MIN_SAMPLES, EvaluationSettings

# a model to sample, an NPZ file, images: uint8, or float32 samples in the model's range
Source = TrainedModel | Path | np.ndarray
NPZ_CLAMPED = (
    "its NPZ holds the clamped uint8 images only (diffusiontools sample --unclamped keeps the "
    "samples as drawn, as evaluate's and reproduce's own NPZ files do)"
)
UINT8_CLAMPED = "given as uint8 images, which hold no values beyond [-0.5, 0.5]"


@dataclass(frozen=True)
class SampleSet:
    """One column of the comparison: images uint8 (N, C, H, W), where they came from, and the
    class each was asked to be, (N,) int64 (``asked_classes``), or None and ``unasked``, why
    that is unknown; ``unclamped``: the samples as drawn, float32 (N, C, H, W) in the model's
    range and beyond it, or None and ``clamped_only``, why there are none."""

    label: str
    images: np.ndarray
    source: dict
    asked: np.ndarray | None = None
    unasked: str | None = None
    unclamped: np.ndarray | None = None
    clamped_only: str | None = None


def samples_from_model(
    model: TrainedModel, n: int, sampler: str | None, steps: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw n samples of a trained model: the samples as drawn, float32 (n, C, H, W) in the
    model's range and beyond it (the sampler does not clamp), as uint8 images (n, C, H, W), and
    their provenance, which names their data set and the classes asked for as the sample
    command's files do (``dataset``, ``class_name``, ``asked_classes``)."""
    plan = resolve_plan(model.config, sampler, steps)  # what is drawn, every choice resolved
    draw = (model.net, model.process, model.config, n, seed, model.device)
    x = generate(*draw, plan=plan, shape=model.shape, progress=inner_bars_shown()).float()
    images = to_uint8(x).reshape(x.shape)  # (n, C, H, W); beyond [-0.5, 0.5] saturates
    source = {
        "run_dir": str(model.folder.resolve()),  # absolute: read from anywhere, later
        **model.record(),  # which checkpoint, epoch, step and weights
        **dataset_fields(model, plan.digit),
        **start_fields(model, plan, n),
        **asked_fields(model, plan, n),
        "kind": model.process.kind,
        "seed": seed,
        **dataclasses.asdict(plan),
    }
    return x.cpu().numpy(), images.cpu().numpy(), source


def samples_from_run(
    run_dir: Path,
    n: int,
    epoch: int | None,
    sampler: str | None,
    steps: int | None,
    seed: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw n samples from a run (or export) folder: as drawn, as uint8 and their provenance
    (:func:`samples_from_model`)."""
    model = load_model(Path(run_dir), epoch, device)
    return samples_from_model(model, n, sampler, steps, seed)


def float_images(floats: np.ndarray) -> np.ndarray:
    """Float samples (N, C, H, W) in the model's range as uint8 images (N, C, H, W), as every
    sample becomes an image (``to_uint8``: beyond [-0.5, 0.5] saturates)."""
    return to_uint8(torch.from_numpy(floats)).reshape(floats.shape).numpy()


def file_stem(label: str) -> str:
    """A label as a file-name part: anything but letters, digits, '.', '_', '-' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", label)


def set_labels(run_dirs: list[Path], npz_files: list[Path], labels: list[str]) -> list[str]:
    """One label per run then per NPZ: ``labels``, or folder and file names."""
    names = labels or [Path(p).name for p in run_dirs] + [Path(p).stem for p in npz_files]
    if len(names) != len(run_dirs) + len(npz_files):
        raise UserError(
            f"labels={' '.join(labels)} names {len(labels)} sets, but there are "
            f"{len(run_dirs) + len(npz_files)} runs and NPZ files; give one label per set"
        )
    check_labels(names)
    return names


def check_labels(names: list[str]) -> None:
    """Refuse a blank label (a column without a header, files named samples_.png), one holding
    a non-printing character (a newline splits the table's header row), and two sets whose
    labels (runs' and NPZ files' alike) name the same files."""
    blank = [name for name in names if not name.strip()]
    if blank:
        raise UserError(
            f"the label {blank[0]!r} is blank: give each set a name that shows in the table "
            "and in its files' names with labels=NAME ..."
        )
    for name in names:
        hidden = hidden_characters(name)
        if hidden:
            raise UserError(
                f"the label {name!r} holds the non-printing character {hidden[0]!r}: give each "
                "set a name that shows in the table and in its files' names with labels=NAME ..."
            )
    if len({file_stem(name) for name in names}) != len(names):
        raise UserError(
            f"the labels {names} are not distinct as file names; set them apart with "
            "labels=NAME ..."
        )


def channels_first(images: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W) as they are; gray (N, H, W), the layout of sample NPZ files and of
    MNIST's (N, 28, 28) arrays, as (N, 1, H, W)."""
    return images[:, None] if images.ndim == 3 else images


def shape_text(shape: tuple[int, ...]) -> str:
    """(C, H, W) as "CxHxW", e.g. "1x28x28"."""
    return "x".join(str(d) for d in shape)


def check_shape(named: str, images: np.ndarray, data: EvaluationData) -> None:
    """Refuse images (N, C, H, W) of the set ``named`` whose (C, H, W) is not the shape of
    ``data``, the data they are scored against."""
    name, shape = data.config.data.dataset, data.dataset.spec.shape
    if images.shape[1:] != shape:
        raise UserError(
            f"{named} holds {shape_text(images.shape[1:])} images, but data.dataset = {name} "
            f"gives {shape_text(shape)} images: score a set against the data its images are of"
        )


def check_recorded_data(named: str, recorded: dict | None, data: EvaluationData, cli: bool) -> None:
    """Refuse the NPZ ``named`` whose ``recorded`` data set (its metadata's ``dataset``, as
    ``dataset_fields`` writes it; None: a file without one, accepted) is not ``data``, the data
    it is scored against: another name, or another fingerprint where both have one. ``cli``:
    the remedy is named as a ``--set`` flag, else as ``data=``."""
    if not isinstance(recorded, dict) or "name" not in recorded:
        return
    name, fingerprint = data.config.data.dataset, data.dataset.fingerprint()
    theirs = recorded.get("fingerprint")
    if recorded["name"] == name and (theirs is None or theirs == fingerprint):
        return
    if recorded["name"] == name:  # the same data set loaded with other settings
        sets = f"data.dataset = {name} (fingerprint {theirs[:12]})"
        ours = f"data.dataset = {name} (fingerprint {fingerprint[:12]}, other images)"
        how = "--set data.KEY=VALUE" if cli else "data={KEY: VALUE}"
        choose = f"its data's own [data] settings with {how}"
    else:
        sets, ours = f"data.dataset = {recorded['name']}", f"data.dataset = {name}"
        how = f"--set data.dataset={recorded['name']}" if cli else f"data={recorded['name']!r}"
        choose = f"its own data with {how}"
    raise UserError(
        f"{named} holds samples of {sets}, but would be scored against {ours}, from the "
        f"{data.origin}: score it against {choose}"
    )


def image_set(
    label: str,
    images: np.ndarray,
    source: dict,
    n: int | None,
    where: str,
    asked: tuple[np.ndarray | None, str | None],
    unclamped: tuple[np.ndarray | None, str | None],
) -> SampleSet:
    """The first n of ``images`` (uint8 (N, C, H, W); None: all of them) as a set, checked;
    ``asked``: the classes (N,) they were asked to be, or None and why not
    (``recorded_asked``); ``unclamped``: the samples as drawn (float32 (N, C, H, W)), or None
    and why there are none."""
    # Too few for evaluate's minimum first: then no n_samples could help, so none is advised.
    if len(images) < MIN_SAMPLES:
        raise UserError(
            f"{where} holds {len(images)} sample{'s' * (len(images) != 1)}; evaluate needs at "
            f"least {MIN_SAMPLES} per set (the samples' Gaussian mixture has {GMM_COMPONENTS} "
            "components)"
        )
    if n is not None and len(images) < n:
        raise UserError(
            f"{where} holds {len(images)} samples, fewer than n_samples={n}; "
            f"give n_samples={MIN_SAMPLES}..{len(images)}"
        )
    if n is None and len(images) > MAX_SAMPLES:
        raise UserError(
            f"{where} holds {len(images)} samples, more than evaluate scores per set "
            f"({MAX_SAMPLES}); give n_samples={MIN_SAMPLES}..{MAX_SAMPLES} to score its first ones"
        )
    used = len(images) if n is None else n
    classes, unasked = asked
    floats, clamped_only = unclamped
    source = {**without_asked(source), "npz_images": len(images)}
    return SampleSet(
        label,
        images[:used],
        source,
        None if classes is None else classes[:used],
        unasked,
        None if floats is None else floats[:used],
        clamped_only,
    )


def given_sets(
    sets: list[tuple[str, Source]],
    n: int | None,
    out_dir: Path,
    npz_argument: str | None,
    data: EvaluationData,
) -> dict[str, SampleSet]:
    """The image sets among ``sets`` (NPZ files and arrays: uint8 images, or float32 samples
    whose uint8 images are taken), read and checked, by label; the first ``n`` of each (None:
    all). An array is recorded as the NPZ it is saved as in
    ``out_dir``; ``npz_argument`` names the argument the files came from in a refusal (None: the
    Python API); ``data``: the data every set is scored against, whose image shape each set
    must have and whose data set an NPZ must record, if it records one."""
    given = {}
    for label, src in sets:
        if isinstance(src, np.ndarray):
            floats = None if src.dtype == np.uint8 else channels_first(src)
            images = channels_first(src) if floats is None else float_images(floats)
            check_shape(f"set {label!r}", images, data)
            source = {"npz": str((out_dir / f"samples_{file_stem(label)}.npz").resolve())}
            unclamped = (floats, None if floats is not None else UINT8_CLAMPED)
            given[label] = image_set(
                label, images, source, n, f"set {label!r}", (None, ARRAY_REASON), unclamped
            )
        elif not isinstance(src, TrainedModel):
            name = npz_argument or f"sets[{label!r}]"
            images, meta = load_samples(Path(src), name)
            floats = load_unclamped(Path(src), images, name)
            images = channels_first(images)
            unclamped = (None, NPZ_CLAMPED) if floats is None else (channels_first(floats), None)
            check_recorded_data(
                f"set {label!r} ({src})", meta.get("dataset"), data, npz_argument is not None
            )
            check_shape(f"set {label!r} ({src})", images, data)
            source = {"npz": str(Path(src).resolve()), **meta}
            where = f"set {label!r} ({src})"
            asked = recorded_asked(meta, len(images), data.dataset.spec.num_classes, where)
            given[label] = image_set(label, images, source, n, str(src), asked, unclamped)
    return given


def inner_bars_shown() -> bool:
    """Whether progress bars inside evaluate's own are shown: on a terminal only; in a log file
    their cursor moves would leave "\x1b[A" debris between the outer bar's lines."""
    return sys.stderr.isatty()


def inner_bar(iterable, desc: str) -> tqdm:
    """A progress bar inside evaluate's own (:func:`inner_bars_shown`), erased when done."""
    return progress_bar(iterable, desc=desc, leave=False, shown=inner_bars_shown())


def draw_sets(
    sets: list[tuple[str, Source]],
    given: dict[str, SampleSet],
    settings: EvaluationSettings,
    work: Path,
) -> list[SampleSet]:
    """Every column in order: the models' samples drawn, the ``given`` sets as read; the samples
    drawn and the arrays given are saved as ``work``/samples_<label>.npz (an NPZ file given is
    not copied)."""
    sample_sets = []
    for label, src in inner_bar(sets, "samples"):
        path = work / f"samples_{file_stem(label)}.npz"
        if isinstance(src, TrainedModel):
            n = settings.samples_per_model()
            floats, images, source = samples_from_model(
                src, n, settings.sampler, settings.steps, settings.seed
            )
            save_samples(path, torch.from_numpy(floats), unclamped=True, label=label, **source)
            classes = src.config.model.num_classes
            asked = recorded_asked(source, n, classes, f"set {label!r}")
            sample_sets.append(SampleSet(label, images, without_asked(source), *asked, floats))
            continue
        if isinstance(src, np.ndarray):
            kept = given[label].unclamped
            save_samples(
                path,
                torch.from_numpy(given[label].images if kept is None else kept),
                unclamped=kept is not None,
                label=label,
            )
        sample_sets.append(given[label])
    return sample_sets
