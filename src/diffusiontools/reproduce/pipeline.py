"""``reproduce``: the report's study as resumable stages, each skipped when its output exists.

Stages, in order (folders under OUT):
  1. train      runs/<model>: the four report models, then custom1/custom2 with per-image t
                and random fields (beyond the report); an interrupted run resumes; ``jobs``
                runs at once, each in a process of its own (``side_by_side``).
     export     models/<model>: each report model's analysed weights as the package ships them
                (training/pretrained.py), as soon as its training has finished: a safetensors
                export with the run's config.ini, data.json, metrics.csv and learning curve.
  2. sample     samples/<label>.npz: 200 samples per column at the analysed checkpoint; the cold
                models also with Bansal et al.'s improved sampler (beyond the report).
  3. evaluate   evaluation/: report metrics + classifier metrics of every column, with figures;
                the joint t-SNE embeds the samples as drawn, unclamped, as the report's did.
  4. reconstruct  reconstruction/<model>/: Table 1 (direct and diffusion RMSE per digit).
  5. degrade    figures/degradation_<model>.png: Figure 9 for each pixel-swap schedule.
  6. report     report/: the HTML pages, one per run and comparison.html.
  7. summarise  figures/ (every figure, gathered) and reproduction.md.
A stage that fails stops the run with its name and the reason; finished stages are kept.

``skip_training``: the study of the models shipped in the package instead (scale report):
no train or export stage, no per-image columns, and no pages (they draw every kept epoch's
checkpoint, which the package does not ship).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ..errors import UserError
from ..evaluation.comparison import evaluate
from ..evaluation.sample_sets import file_stem, samples_from_run
from ..evaluation.settings import EvaluationSettings
from ..outputs.samples_io import load_samples, load_unclamped, save_samples
from ..training.run_folder import METRICS_FILE, RunFolder, RunLock
from .scales import REPORT_MODELS, Scale
from .study import COLD_MODELS, Study, report_model, study_config
from .study_runs import train_run, trained

logger = logging.getLogger(__name__)

SAMPLERS_COLD = ("naive", "improved")
REPORT_TSNE_SAMPLES = "unclamped"  # the report's t-SNE embedded its samples as drawn
# The pages stage's name in reproduce.json and its folder under OUT: the names that existing
# reproduction folders hold, which the stage must find to be skipped there.
PAGES_STAGE = "report"


def train_all(study: Study, jobs: int = 1) -> None:
    """Train every run not yet trained (resuming each), ``jobs`` at once (``side_by_side``);
    each report model is exported as soon as its training has finished. A run trained earlier
    is neither started nor timed again."""
    todo = [r for r in study.run_names() if not trained(study.run_dir(r), r, study.scale)]
    if jobs > 1:
        from .side_by_side import train_side_by_side

        train_side_by_side(study, todo, jobs, lambda name: export(study, name))
    else:
        for run_name in todo:
            with study.stage(f"train {run_name}"):
                train_run(study.run_dir(run_name), run_name, study.scale)
            export(study, run_name)
    for run_name in study.run_names():  # trained in an earlier call, its export interrupted
        export(study, run_name)


def export(study: Study, run_name: str) -> None:
    """OUT/models/<model>: a report model's analysed weights with its run's records (config.ini
    written again from the weights' config: the same values, this version's notes), the folder
    the package ships (copied into diffusiontools/pretrained); nothing for another run. A
    folder an interrupted export left without its metrics.csv (copied last) is the study's
    own: written again."""
    from ..training.export import write_export
    from ..training.run_config import to_ini
    from ..training.trained_model import load_model

    folder = study.out / "models" / run_name
    if run_name not in REPORT_MODELS or (folder / METRICS_FILE).is_file():
        return
    with study.stage(f"export {run_name}"):
        run = RunFolder(study.run_dir(run_name))
        trained = load_model(run.path, study.analysed_epoch(run_name), torch.device("cpu"))
        if folder.is_dir():
            shutil.rmtree(folder)
        write_export(trained, folder, "safetensors")
        # config.ini as this version writes it (an earlier version's notes on keys may be out
        # of date); its values are the run's
        (folder / run.config.name).write_text(to_ini(trained.config))
        for record in (run.data_record, run.learning_curve, run.metrics):
            shutil.copyfile(record, folder / record.name)


def sample_all(study: Study) -> list[Path]:
    """One NPZ per column at the analysed checkpoint, with the samples as drawn (``unclamped``);
    existing files are kept, except one without them (an older version's), drawn again."""
    paths = []
    for label, run_name, sampler in study.columns():
        path = study.out / "samples" / f"{file_stem(label)}.npz"
        paths.append(path)
        if path.is_file() and load_unclamped(path, load_samples(path)[0]) is not None:
            continue
        with study.stage(f"sample {label}"):
            floats, _, source = samples_from_run(
                study.run_dir(run_name),
                study.scale.n_samples,
                study.analysed_epoch(run_name),
                sampler,
                None,
                study.seed,
                study.device,
            )
            save_samples(path, torch.from_numpy(floats), unclamped=True, label=label, **source)
    return paths


def evaluate_all(study: Study, npz_files: list[Path]) -> dict:
    out_dir = study.out / "evaluation"
    labels = [label for label, _, _ in study.columns()]
    metrics_path = out_dir / "metrics.json"
    if metrics_path.is_file():
        results = json.loads(metrics_path.read_text())
        runs = results["runs"]
        # an older version's evaluation: neither the report's total variance nor its t-SNE
        faithful = results["settings"].get("tsne_samples") == REPORT_TSNE_SAMPLES
        if list(runs) == labels and faithful:
            return results
    s = study.scale
    with study.stage("evaluate"):
        return evaluate(
            [],
            npz_files,
            labels,
            out_dir,
            EvaluationSettings(
                n_samples=s.n_samples,
                seed=study.seed,
                tsne_reference=s.tsne_reference,
                test_reference=s.test_reference,
                n_boot=s.n_boot,
                n_boot_set=s.n_boot_set,
                tsne_samples=REPORT_TSNE_SAMPLES,
            ),
            device=study.device,
            # every model trained on these data settings (the scale's subset): memorisation
            # is measured against their training split
            npz_data=study.data_config(),
            overwrite=True,  # the study's own folder: what an interrupted evaluate left there
        )


def reconstruct_all(study: Study) -> dict[str, dict]:
    """Table 1 for every cold run (naive and improved samplers), keyed by run name."""
    from ..evaluation.reconstruction import reconstruction_study

    results = {}
    for run_name in study.run_names():
        if report_model(run_name) not in COLD_MODELS:
            continue
        out_dir = study.out / "reconstruction" / run_name
        path = out_dir / "reconstruction.json"
        if not path.is_file():
            with study.stage(f"reconstruct {run_name}"):
                reconstruction_study(
                    study.run_dir(run_name),
                    study.scale.n_samples,
                    study.analysed_epoch(run_name),
                    SAMPLERS_COLD,
                    study.seed,
                    study.device,
                    out_dir,
                    overwrite=True,  # the study's own folder
                )
        results[run_name] = json.loads(path.read_text())
    return results


def degrade_all(study: Study) -> None:
    from ..outputs.degradation_figure import degradation_figure

    for model in COLD_MODELS:
        path = study.out / "figures" / f"degradation_{model}.png"
        if not path.is_file():
            with study.stage(f"degrade {model}"):
                degradation_figure(study_config(model, study.scale), path, study.seed)


def pages_all(study: Study) -> None:
    from ..evaluation.run_pages import write_pages

    if study.shipped or (study.out / PAGES_STAGE / "comparison.html").is_file():
        return
    with study.stage(PAGES_STAGE):
        run_dirs = [study.run_dir(r) for r in study.run_names()]
        evaluation = study.out / "evaluation"
        write_pages(run_dirs, study.out / PAGES_STAGE, evaluation, study.device, overwrite=True)


def gather_figures(study: Study, results: dict) -> dict[str, Path]:
    """Copy every figure of the study into OUT/figures under a stable name; return name -> path."""
    out = study.out
    figures = out / "figures"
    wanted = {}
    for run_name in study.run_names():
        wanted[f"learning_curve_{run_name}.png"] = RunFolder(study.run_dir(run_name)).learning_curve
        pages_figures = out / PAGES_STAGE / "figures"
        wanted[f"epochs_{run_name}.png"] = pages_figures / f"{run_name}_epochs.png"
        wanted[f"trajectory_{run_name}.png"] = pages_figures / f"{run_name}_trajectory.png"
        for sampler in SAMPLERS_COLD:
            wanted[f"triplets_{run_name}_{sampler}.png"] = (
                out / "reconstruction" / run_name / f"triplets_{sampler}.png"
            )
    wanted["tsne_test_labels.png"] = out / "evaluation" / "tsne_test_labels.png"
    for label in results["runs"]:
        stem = file_stem(label)
        for kind in ("samples", "tsne", "class_histogram", "memorisation"):
            wanted[f"{kind}_{stem}.png"] = out / "evaluation" / f"{kind}_{stem}.png"
    gathered = {}
    for name, source in wanted.items():
        if source.is_file():
            shutil.copyfile(source, figures / name)
            gathered[name] = figures / name
    for path in sorted(figures.glob("degradation_*.png")):
        gathered[path.name] = path
    return gathered


def reproduce(
    scale: Scale,
    out: Path,
    device: torch.device,
    seed: int = 0,
    skip_training: bool = False,
    jobs: int = 1,
) -> Path:
    """Run (or finish) the study at ``scale`` into ``out``; returns the path of reproduction.md.

    ``skip_training``: study the models shipped in the package (scale report only; see the
    module doc). ``jobs``: how many runs train at once, each in a process of its own
    (``side_by_side``; 1: one after the other in this process). Raises DiffusionToolsError
    naming the stage that failed, or a ``jobs`` that is not a positive whole number or is
    given with ``skip_training``."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UserError(
            f"jobs={jobs!r} is how many models train at once; use a whole number, 1 or more"
        )
    if skip_training and jobs != 1:
        raise UserError(
            f"jobs={jobs} sets how many models train at once, but skip_training=True trains "
            "none; use jobs=1"
        )
    study = Study(out, scale, device, seed, shipped=skip_training)
    with RunLock(study.out, "reproduce"):  # one study at a time in a folder
        return _stages(study, jobs)


def _stages(study: Study, jobs: int) -> Path:
    """Every stage of ``study`` in order (see the module doc); returns reproduction.md's path."""
    from .summary import write_summary

    if study.shipped:  # the scale's summary counts hours of training that do not happen here
        logger.info(
            f"reproduce --scale {study.scale.name} --skip-training: the models shipped in the "
            "package, trained at this scale, evaluated as the report did; nothing is trained"
        )
    else:
        logger.info(f"reproduce --scale {study.scale.name}: {study.scale.summary}")
    if not study.shipped:
        train_all(study, jobs)
    npz_files = sample_all(study)
    results = evaluate_all(study, npz_files)
    tables = reconstruct_all(study)
    degrade_all(study)
    pages_all(study)
    with study.stage("summarise"):
        (study.out / "figures").mkdir(exist_ok=True)
        figures = gather_figures(study, results)
        path = write_summary(study, results, tables, figures)
    return path
