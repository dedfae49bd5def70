"""Samples of a trained model written to files (``diffusiontools sample``): an NPZ of all n, a
grid of the first ones, the reverse process, samples across epochs.

Where (the rule of ``outputs/safe_writes.py``):
  1. a path the caller names is written, replacing a file that is there: ``out`` (the grid) and
     ``npz`` (the NPZ);
  2. what is not named goes beside the grid: ``samples.npz`` (without ``npz``),
     ``trajectory.png``, ``epochs.png``; the grid's default is FOLDER/samples/sample_grid.png,
     FOLDER being the run (or export) folder;
  3. FOLDER/samples is sample's own folder: a call that writes there replaces it as a whole, so
     it holds that call's files and no others (``sample RUN --npz elsewhere.npz`` leaves the
     grid alone in it); beside a grid anywhere else, a file of rule 2 that exists is refused
     before anything is drawn, unless ``overwrite``, and other files stay;
  4. every file is written into a hidden stand-in folder and moved into place once all are
     drawn (``outputs.safe_writes.staged_outputs``): a failure, Ctrl-C or SIGTERM leaves the
     folders as they were, and no folder that was not there.

How much: the n samples are drawn and written one batch at a time
(``sampling.generation.generate_batches``, ``outputs.samples_io.write_samples``), so memory
holds one batch and the first ``GRID_MAX`` samples, whatever n; n is bounded only by the disk,
which is checked first (``check_room``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import load_data
from ..diffusion.cold import start_images_record
from ..errors import UserError
from ..outputs.figures import save_image_rows, save_sample_grid
from ..outputs.safe_writes import (
    Staging,
    check_distinct,
    check_output_file,
    refuse_existing,
    staged_outputs,
)
from ..outputs.samples_io import check_room, write_samples
from ..sampling.generation import (
    BATCH_SIZE,
    asked_classes,
    check_starts,
    generate,
    generate_batches,
    trajectory,
)
from ..sampling.plan import SamplingPlan
from .run_folder import RunFolder
from .trained_model import TrainedModel

GRID_MAX = 256  # samples drawn in the grid (16 x 16); the NPZ holds all n
ROW_MAX = 8  # samples per row of the trajectory and epochs figures


@dataclass(frozen=True)
class SampleFiles:
    """The paths one call writes; ``trajectory`` and ``epochs`` are None when not asked for;
    ``own``: sample's own folder of the model's folder, replaced as a whole where written."""

    grid: Path
    npz: Path
    trajectory: Path | None = None
    epochs: Path | None = None
    own: Path | None = None


def sample_files(
    folder: Path,
    out: str | Path | None = None,
    npz: str | Path | None = None,
    trajectory: bool = False,
    epochs: bool = False,
    overwrite: bool = False,
) -> SampleFiles:
    """The files a call writes for the model in ``folder``, by the module doc's rule.

    Reads only. Raises DiffusionToolsError for a grid name that is not an image, a named output
    that is a folder or whose folder cannot be created (``check_output_file``), two outputs at
    one path, or an unnamed output outside FOLDER/samples that exists (without ``overwrite``).
    """
    own = RunFolder(folder).samples
    grid = Path(out) if out is not None else own / "sample_grid.png"
    check_output_file(grid, "out", "the grid", image=True)
    if npz is not None:
        check_output_file(npz, "npz", "the NPZ", ending=".npz")
    beside = grid.parent
    unnamed = {
        "the NPZ": beside / "samples.npz" if npz is None else None,
        "the trajectory": beside / "trajectory.png" if trajectory else None,
        "the epochs figure": beside / "epochs.png" if epochs else None,
    }
    unnamed = {what: path for what, path in unnamed.items() if path is not None}
    files = SampleFiles(
        grid,
        Path(npz) if npz is not None else unnamed["the NPZ"],
        unnamed.get("the trajectory"),
        unnamed.get("the epochs figure"),
        own,
    )
    for what, path in unnamed.items():
        if path.is_dir():
            raise UserError(
                f"{path} is a folder, where {what} would go beside the grid; put the grid in "
                "another folder with out=PATH"
            )
    outputs = {"the grid": files.grid, "the NPZ": files.npz}
    check_distinct({**outputs, **unnamed})
    if not overwrite and beside.resolve() != own.resolve():
        name_npz = "name the NPZ with npz=PATH, " if "the NPZ" in unnamed else ""
        refuse_existing(
            unnamed.values(),
            f"it is no file you named, so sample keeps it: {name_npz}put the grid in another "
            "folder with out=PATH, or replace it with overwrite=True",
        )
    return files


def check_draw(
    model: TrainedModel,
    n: int,
    sampler: str | None = None,
    steps: int | None = None,
    digit: int | None = None,
    epoch_models: Sequence[TrainedModel] = (),
    **options,
) -> tuple[SamplingPlan, list[SamplingPlan]]:
    """The plans of a draw of ``n`` samples from ``model`` and from each of ``epoch_models``
    (their configs may differ), resolved before any file is looked at: a request that cannot
    take effect is refused first (:meth:`TrainedModel.sampling_plan`), and so are n cold
    starts from test images that would repeat (:func:`check_starts`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"n={n} is not a number of samples: give at least 1")
    plan = model.sampling_plan(sampler, steps, digit, **options)
    check_starts(model.process, model.config, plan, n)
    return plan, [m.sampling_plan(sampler, steps, digit, **options) for m in epoch_models]


def sample_to_files(
    model: TrainedModel,
    files: SampleFiles,
    n: int,
    seed: int = 0,
    sampler: str | None = None,
    steps: int | None = None,
    digit: int | None = None,
    epoch_models: Sequence[TrainedModel] = (),
    unclamped: bool = False,
    **options,
) -> SampleFiles:
    """Draw ``n`` samples of ``model`` into ``files`` (from :func:`sample_files`); returns them.

    ``files.npz``: all n, uint8 (n, C, H, W), with ``unclamped`` also as drawn (float32,
    ``outputs.samples_io.write_samples``), with the settings used as its metadata, the data
    set sampled for (:meth:`TrainedModel.dataset`), the name of the class asked for, where
    the run recorded class names (``class_name``), and for a class-conditional model the class
    each sample was asked to be (``asked_classes``, :func:`asked_fields`);
    ``files.grid``: the first ``GRID_MAX``; ``files.trajectory``: the reverse process of the first
    8 (``TrainedModel.trajectory``); ``files.epochs``: the first 8 drawn from each of
    ``epoch_models`` (the same run's other checkpoints), one row each. ``sampler``, ``steps``,
    ``digit`` and ``options`` (guidance, eta, clip_x0, start, timestep_spacing) are
    :meth:`TrainedModel.sample`'s, resolved once into the plan that is drawn and recorded
    (:meth:`TrainedModel.sampling_plan`); an option that would not take effect is refused.
    Everything is checked before the first file is written, the disk's room for the NPZ
    included, and the files appear together once all are drawn (the module doc, rule 4).
    """
    plan, epoch_plans = check_draw(model, n, sampler, steps, digit, epoch_models, **options)
    if files.epochs is not None and not epoch_models:
        raise UserError("an epochs figure needs the checkpoints to draw: give epoch_models")
    check_room(files.npz, n, model.shape, unclamped)

    with staged_outputs() as staging:
        at = _stand_ins(staging, files)  # where each file is written until all are
        shown: list[torch.Tensor] = []  # the grid's samples, kept while the NPZ is written

        def keep_first(batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
            for x in batches:
                wanted = GRID_MAX - sum(len(s) for s in shown)
                if wanted > 0:
                    shown.append(x[:wanted].cpu())
                yield x

        draws = (model.net, model.process, model.config)
        batches = generate_batches(
            *draws, n, seed, model.device, plan=plan, shape=model.shape, progress=True
        )
        # The run as an absolute path: the file may be read from anywhere, long after.
        meta = {"run": str(model.folder.resolve()), **model.record(), "seed": seed}
        meta.update(dataset_fields(model, plan.digit), **start_fields(model, plan, n))
        meta.update(asked_fields(model, plan, n))
        plan_fields = dataclasses.asdict(plan)
        write_samples(at.npz, keep_first(batches), n, unclamped, **meta, **plan_fields)
        title = f"{model.config.name}, epoch {model.epoch}"
        first = "" if n <= GRID_MAX else f"first {GRID_MAX} of "
        save_sample_grid(torch.cat(shown), at.grid, title=f"{title}, {first}n={n}")
        k = min(n, ROW_MAX)  # samples 0..k-1 of the grid: sample i depends only on seed and i
        if at.trajectory is not None:
            times, states = trajectory(
                *draws, k, seed, model.device, plan=plan, shape=model.shape, progress=True
            )
            save_image_rows(
                [torch.stack([s[i] for s in states]) for i in range(k)],
                [f"#{i}" for i in range(k)],
                [f"t={t}" for t in times],
                at.trajectory,
                title=f"{title}, {plan.sampler} sampler, {plan.steps} steps",
            )
        if at.epochs is not None:
            rows = [
                generate(
                    *(m.net, m.process, m.config, k, seed, m.device),
                    plan=p,
                    shape=m.shape,
                    progress=True,
                )
                for m, p in zip(epoch_models, epoch_plans, strict=True)
            ]
            save_image_rows(
                rows,
                [f"epoch {m.epoch}" for m in epoch_models],
                [],
                at.epochs,
                title=f"{model.config.name}: samples 0..{k - 1} at stages of training",
            )
    return files


def dataset_fields(model: TrainedModel, digit: int | None) -> dict:
    """What a file of ``model``'s samples records of their data set: ``dataset``
    (:meth:`TrainedModel.dataset`) and, for samples of class ``digit`` of a run that recorded
    class names, that class's name (``class_name``)."""
    fields = {"dataset": model.dataset()}
    names = fields["dataset"]["class_names"]
    if digit is not None and names:
        fields["class_name"] = names[digit]
    return fields


def asked_fields(model: TrainedModel, plan: SamplingPlan, n: int) -> dict:
    """What a file of ``n`` samples drawn with ``plan`` records of the class each was asked to
    be (``asked_classes``: one class index per sample, :func:`asked_classes`), so that
    evaluate can score how many read as it; nothing where no label takes effect."""
    asked = asked_classes(model.config.model.num_classes, plan, n)
    return {} if asked is None else {"asked_classes": asked}


def start_fields(model: TrainedModel, plan: SamplingPlan, n: int) -> dict:
    """What a file of ``n`` samples drawn with ``plan`` records of their start: the test images
    they started from (``start_images``, :func:`~diffusiontools.diffusion.cold.start_images_record`;
    only a cold start from test images has any) and, for a cold process that draws one random
    field per batch (``diffusion.t_per = batch``, a degradation with a random field), that the
    samples of each sampling batch share one (``shared_field``): their metrics' intervals, which
    resample the samples, hold that field fixed."""
    fields = {}
    process = model.process
    if process.kind == "cold" and process.t_per == "batch" and process.degradation.random_field:
        fields["shared_field"] = (
            f"diffusion.t_per = batch: the samples of each sampling batch (up to {BATCH_SIZE}) "
            "share one random field"
        )
    if plan.cold_start in ("test", "test_consistent"):
        n_test = len(load_data(model.config.data).test_images)
        fields["start_images"] = start_images_record(n, n_test)
    return fields


def _stand_ins(staging: Staging, files: SampleFiles) -> SampleFiles:
    """Where each of ``files`` is written until the call has finished (the module doc)."""

    def stand_in(path: Path | None) -> Path | None:
        if path is None:
            return None
        whole = files.own is not None and path.parent.resolve() == files.own.resolve()
        return staging.folder(path.parent, whole=whole) / path.name

    paths = (files.grid, files.npz, files.trajectory, files.epochs)  # the grid's folder first
    return SampleFiles(*(stand_in(path) for path in paths))
