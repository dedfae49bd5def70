"""The report's reconstruction study (Table 1, Figure 15) for a trained cold-diffusion run.

The data's test images 0..n-1 (MNIST's in the report) are degraded, as
``ColdDiffusion.start_state``'s conditional starts, then restored two ways:

- direct: one application of the network, x0_hat = R(x_T, T) (the samplers' first x0_hat);
- diffusion: the whole reverse process of each sampler (Bansal et al. 2022, Alg. 1 and 2).

The naive sampler starts as the report did (``test``: degraded at t = T - 1, fresh fields), and
the "direct" column is the report's, from that start; the improved sampler starts on its own
trajectory (``test_consistent``: degraded at t = T, its key re-applied), see ``diffusion/cold.py``.

Each is scored per class (test labels, named by the data set's ``class_names``: MNIST's
digits) and over all images by two statistics in [-0.5, 0.5] units: the report's Table 1
number, the mean over images of the per-image root-mean-square error (the report calls it MSE),
and the true MSE. By Jensen, mean RMSE <= sqrt(mean MSE).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import ImageDataset, to_model
from ..diffusion.cold import resolve_start
from ..errors import UserError
from ..outputs.figures import save_image_rows
from ..outputs.safe_writes import (
    check_distinct,
    check_output_folder,
    refuse_existing,
    staged_outputs,
)
from ..outputs.tables import markdown
from ..sampling.generation import check_finite, model_fn, seeded_batches
from ..sampling.registry import get_sampler
from ..training.run_folder import RunFolder
from ..training.trained_model import TrainedModel, load_model

N_FIGURE = 8  # images in each triplet figure


def per_image_rmse(x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Root-mean-square error of each image: x, x0 (N, C, H, W) -> (N,)."""
    return per_image_mse(x, x0).sqrt()


def per_image_mse(x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image: x, x0 (N, C, H, W) -> (N,)."""
    return (x - x0).pow(2).flatten(1).mean(dim=1)


def by_class(
    values: torch.Tensor, labels: torch.Tensor | None, class_names: Sequence[str]
) -> dict[str, float | None]:
    """Mean of ``values`` (N,) per class, keyed by ``class_names`` (which ``labels`` (N,)
    index; unlabelled images: no names, labels None), and over all ("All"); None for a class
    without images."""
    table: dict[str, float | None] = {}
    for c, name in enumerate(class_names):
        chosen = values[labels == c]
        table[name] = float(chosen.mean()) if len(chosen) else None
    table["All"] = float(values.mean())
    return table


def class_noun(class_names: Sequence[str]) -> str:
    """What a class is called in the tables and figures: "digit" where every name is a digit
    (MNIST's "0".."9"), else "class"."""
    return "digit" if class_names and all(n.isdigit() for n in class_names) else "class"


@torch.no_grad()
def restore(
    net: torch.nn.Module,
    process,
    x0: torch.Tensor,
    sampler: str,
    seed: int,
    start: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Degrade x0 (N, C, H, W) as ``start`` says for ``sampler`` (``test``: at t = T - 1;
    ``test_consistent``: at t = T) and restore it; returns (x_T, direct, diffusion).

    Batched and seeded like ``sampling.generate`` (image i's start key and sampler noise from its
    own generator, seeded from (seed, i)), so the diffusion result equals ``generate``'s samples
    for the same seed and start. Non-finite results are refused.
    """
    mode = resolve_start(start, sampler)
    sample = get_sampler(sampler, process.kind)
    model = model_fn(net, process.T)
    starts, directs, finals = [], [], []
    for offset, b, generators in seeded_batches(len(x0), seed, x0.device):
        batch = x0[offset : offset + b]
        x_T = process.start_from(batch, mode, generators)
        t_T = torch.full((len(x_T.x),), x_T.t, device=x0.device, dtype=torch.long)
        starts.append(x_T.x)
        directs.append(model(x_T.x, t_T))
        finals.append(sample(model, process, x_T, generators))
    direct, final = torch.cat(directs), torch.cat(finals)
    check_finite(direct)
    check_finite(final)
    return torch.cat(starts), direct, final


def markdown_table(result: dict) -> str:
    """The study as a Markdown table: one row per class (``result["counts"]``, e.g. MNIST's
    digits 0..9) and All, RMSE then MSE columns."""
    samplers = result["samplers"]
    methods = ["direct", *samplers]
    names = ["direct", *(f"diffusion ({s})" for s in samplers)]
    classes = [name for name in result["counts"] if name != "All"]
    noun = class_noun(classes)
    header = [noun, "n", *(f"{m} RMSE" for m in names), *(f"{m} MSE" for m in names)]
    rows = []
    for name in (*classes, "All"):
        cells = [name, str(result["counts"][name])]
        for statistic in ("rmse", "mse"):
            for m in methods:
                value = result["table"][m][statistic][name]
                cells.append("–" if value is None else f"{value:.5f}")
        rows.append(cells)
    return markdown(header, rows)


@dataclass(frozen=True)
class _Study:
    """One study's inputs, every one checked: what :func:`_run` needs and nothing else."""

    run_dir: Path
    trained: TrainedModel
    dataset: ImageDataset
    n: int
    samplers: tuple[str, ...]
    out_dir: Path
    own: bool  # out_dir is the run's own folder, replaced as a whole
    replaces: list[Path]  # an earlier study's files in out_dir (another folder), replaced


def _prepare(
    run_dir: Path,
    n: int,
    epoch: int | None,
    samplers: Sequence[str],
    device: torch.device,
    out_dir: Path | None,
    overwrite: bool,
    data_dir: str | Path | None = None,
) -> _Study:
    """Load and check everything one study needs; reads only, writes nothing."""
    trained = load_model(Path(run_dir), epoch, device, data_dir=data_dir)
    process = trained.process
    if process.kind != "cold":
        raise UserError(f"{run_dir} is a {process.kind} model; the reconstruction study needs cold")
    if not samplers:
        raise UserError("no sampler given; name at least one of: naive, improved")
    for sampler in samplers:  # fail on a bad name before any work is done
        get_sampler(sampler, process.kind)
    if len(set(samplers)) != len(samplers):
        raise UserError(f"samplers={','.join(samplers)} names a sampler twice; give each once")
    own = RunFolder(run_dir).reconstruction
    out_dir = check_output_folder(out_dir if out_dir is not None else own, "out", "the study")
    dataset = trained.own_data("reconstruct", "the study degrades the run's test images")
    n_test = len(dataset.test_images)
    if n < 1:
        raise UserError(f"n={n} is out of range: use 1..{n_test} test images")
    if n > n_test:
        raise UserError(
            f"the reconstruction study asks for {n} test images but the data set has "
            f"{n_test}: give n={n_test} or fewer"
        )
    is_own = out_dir.resolve() == own.resolve()  # the run's own: each study's
    if not overwrite and not is_own:
        refuse_existing(
            study_files(out_dir, samplers),
            "choose another folder with out=DIR, or replace the study there with overwrite=True",
        )
    earlier = [] if is_own else earlier_study(out_dir)
    return _Study(Path(run_dir), trained, dataset, n, tuple(samplers), out_dir, is_own, earlier)


def study_files(out_dir: Path, samplers: Sequence[str]) -> list[Path]:
    """The files a study of ``samplers`` writes into ``out_dir``."""
    names = ["reconstruction.json", "reconstruction.md", *(f"triplets_{s}.png" for s in samplers)]
    return [Path(out_dir) / name for name in names]


def earlier_study(out_dir: Path) -> list[Path]:
    """The files of the study already in ``out_dir`` (its reconstruction.json names the
    samplers) that exist: what replacing it deletes."""
    try:
        samplers = json.loads((Path(out_dir) / "reconstruction.json").read_text())["samplers"]
        files = study_files(out_dir, [str(s) for s in samplers])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [p for p in files if p.exists()]


def reconstruction_studies(
    run_dirs: Sequence[Path],
    n: int = 200,
    epoch: int | None = None,
    samplers: Sequence[str] = ("naive", "improved"),
    seed: int = 0,
    device: torch.device | str = "cpu",
    out_dirs: Sequence[Path | None] | None = None,
    overwrite: bool = False,
    data_dir: str | Path | None = None,
) -> list[dict]:
    """:func:`reconstruction_study` of several runs (``out_dirs``: one each, None: the run's
    own), every one checked before the first is run; ``data_dir``: where their data lie now."""
    out_dirs = [None] * len(run_dirs) if out_dirs is None else list(out_dirs)
    device = torch.device(device)
    folders = [
        RunFolder(r).reconstruction if o is None else Path(o)
        for r, o in zip(run_dirs, out_dirs, strict=True)
    ]
    check_distinct(
        {
            f"the study of {r}": o / "reconstruction.json"
            for r, o in zip(run_dirs, folders, strict=True)
        }
    )
    studies = [
        _prepare(run_dir, n, epoch, samplers, device, out_dir, overwrite, data_dir)
        for run_dir, out_dir in zip(run_dirs, out_dirs, strict=True)
    ]
    return [_run(study, seed) for study in studies]


def reconstruction_study(
    run_dir: Path,
    n: int = 200,
    epoch: int | None = None,
    samplers: Sequence[str] = ("naive", "improved"),
    seed: int = 0,
    device: torch.device | str = "cpu",
    out_dir: Path | None = None,
    overwrite: bool = False,
    data_dir: str | Path | None = None,
) -> dict:
    """Run the study on the model of a run folder (its checkpoint of ``epoch``, None: latest)
    or of an export folder; see the module doc. ``data_dir``: where the run's data lie now,
    when they moved since training (``diffusiontools.load``'s; they must be the run's data).

    Writes ``reconstruction.json``, ``reconstruction.md`` and one triplet figure per sampler
    (ground truth / x_T / direct / diffusion, first 8 images) into ``out_dir`` and returns the
    JSON's content. The default, RUN_DIR/reconstruction, is the study's own folder, replaced as
    a whole by each study; another folder that holds a study is refused unless ``overwrite``,
    which replaces that study's files (a sampler's figure included that this study does not
    draw) and leaves other files. Everything is checked before anything is written, and the
    files appear together once the study is done (``outputs.safe_writes.staged_outputs``).
    """
    return reconstruction_studies(
        [run_dir], n, epoch, samplers, seed, device, [out_dir], overwrite, data_dir
    )[0]


def _run(study: _Study, seed: int) -> dict:
    """Restore, score, then write the study's files (only once every sampler has run)."""
    trained, dataset, n, samplers = study.trained, study.dataset, study.n, study.samplers
    config, process, device = trained.config, trained.process, trained.device
    x0 = to_model(dataset.test_images[:n]).to(device)  # (n, C, H, W)
    labels = None if dataset.test_labels is None else dataset.test_labels[:n].cpu()
    class_names = dataset.spec.class_names  # () for unlabelled images: "All" only
    k = min(N_FIGURE, n)
    row_labels = (
        [f"{class_noun(class_names)} {class_names[int(c)]}" for c in labels[:k]]
        if labels is not None
        else [f"#{i}" for i in range(k)]
    )

    restored: dict[str, torch.Tensor] = {}
    figures = []
    for sampler in samplers:
        x_T, direct, diffusion = restore(trained.net, process, x0, sampler, seed)
        # Same seed, same keys: a start mode gives the same x_T and direct reconstruction for
        # every sampler. The table's "direct" is the report's, from the naive sampler's start.
        if resolve_start("auto", sampler) == "test" or "direct" not in restored:
            restored["direct"] = direct
        restored[sampler] = diffusion
        rows = [torch.stack([x0[i], x_T[i], direct[i], diffusion[i]]) for i in range(k)]
        level = process.T - 1 if resolve_start("auto", sampler) == "test" else process.T
        cols = ["ground truth", f"x_T (t={level})", "direct", f"diffusion ({sampler})"]
        figures.append((sampler, rows, cols))

    table = {
        method: {
            "rmse": by_class(per_image_rmse(x, x0).cpu(), labels, class_names),
            "mse": by_class(per_image_mse(x, x0).cpu(), labels, class_names),
        }
        for method, x in restored.items()
    }
    result = {
        "run": str(study.run_dir.resolve()),  # absolute: the record is read from anywhere
        "checkpoint": str(trained.path.resolve()),
        "epoch": trained.epoch,
        "n": n,
        "seed": seed,
        "samplers": list(samplers),
        "start": {
            s: "test images 0..n-1 degraded at t = T - 1 (the report's)"
            if resolve_start("auto", s) == "test"
            else "test images 0..n-1 degraded at t = T, the sampler re-applying their key"
            for s in samplers
        },
        "statistics": {
            "rmse": "mean over images of the per-image RMSE, [-0.5, 0.5] units (report Table 1)",
            "mse": "mean over images of the per-image MSE, [-0.5, 0.5] units",
        },
        "counts": {
            **{name: int((labels == c).sum()) for c, name in enumerate(class_names)},
            "All": n,
        },
        "table": table,
    }
    with staged_outputs() as staging:  # the study appears whole, once written
        out_dir = staging.folder(study.out_dir, whole=study.own, replaces=study.replaces)
        for sampler, rows, cols in figures:
            save_image_rows(
                rows,
                row_labels,
                cols,
                out_dir / f"triplets_{sampler}.png",
                title=f"{config.name}, epoch {trained.epoch}",
            )
        (out_dir / "reconstruction.json").write_text(json.dumps(result, indent=2) + "\n")
        (out_dir / "reconstruction.md").write_text(markdown_table(result))
    return result
