"""reproduction.md: the report's published numbers beside ours, the full tables and the figures.

Everything here is read from the study's outputs (metrics.json, reconstruction.json, each run's
metrics.csv), so the page and the numbers it shows can never disagree.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..evaluation.reconstruction import markdown_table as reconstruction_markdown
from ..evaluation.scores import TV_UNCLAMPED
from ..outputs.safe_writes import staged_outputs
from ..outputs.tables import ROWS, cell, markdown
from ..outputs.tables import markdown_table as metrics_markdown
from ..training.run_folder import RunFolder, read_metrics
from . import published
from .study import COLD_MODELS, Study

logger = logging.getLogger(__name__)

# The metrics of the short "beyond the report" table; names and digits come from metrics_table.
BEYOND_KEYS = (
    "total_variance",
    "kl_faithful",
    "kl_monte_carlo",
    "frechet_distance",
    "recognisable_fraction",
    "class_entropy",
)
QUALITY_KEY = "frechet_distance"  # the probe's column that ranks the epochs (lower is better)
FIGURE_CAPTIONS = {
    "learning_curve": "train and validation loss per epoch (report: the learning-curve figures)",
    "epochs": "samples at several kept checkpoints (report: samples at stages of training)",
    "trajectory": "the reverse process at fractions 1, 0.5, 0.1, 0.05, 0 of T",
    "triplets": "ground truth / degraded start / direct / diffusion reconstruction",
    "tsne_test_labels": "t-SNE of the test set coloured by label (report Figure 5)",
    "samples": "the evaluated samples",
    "tsne": "t-SNE of the samples over the test set's mixture density",
    "class_histogram": "digits the classifier sees in the samples",
    "memorisation": "samples closest to a training image",
    "degradation": "the pixel-swap degradation at t = T, 0.75T, 0.5T, 0.25T, 0 (report Figure 9)",
}


def report_metrics_section(results: dict) -> str:
    runs = results["runs"]
    models = list(published.REPORT_NAMES)
    header = ["", *(published.REPORT_NAMES[m] for m in models)]

    def ours(key: str, digits: int) -> list[str]:
        metrics = [runs[m]["metrics"] for m in models]  # "–": an evaluation without the metric
        return [cell(m[key], digits) if key in m else "–" for m in metrics]

    rows = [
        ["total variance: report", *(f"{published.TOTAL_VARIANCE[m]}" for m in models)],
        ["total variance: ours, unclamped as the report's", *ours(TV_UNCLAMPED, 2)],
        ["total variance: ours, of the images (clamped)", *ours("total_variance", 2)],
        ["KL, the report's grid sum: report", *(f"{published.KL_FAITHFUL[m]}" for m in models)],
        ["KL, the report's grid sum: ours", *ours("kl_faithful", 3)],
    ]
    return (
        "## The report's evaluation, its numbers beside ours\n\n"
        "[low, high]: 95% intervals over our samples (half-sampling for set-level metrics, "
        "the bootstrap for per-sample means; docs/evaluation.md). The report's sampler does not "
        "clamp, so its total variance counts values beyond [-0.5, 0.5] at their full size: ours "
        "unclamped is the like-for-like number; of the images, each value saturates at the "
        "range's ends.\n\n" + markdown(header, rows)
    )


TABLE1_HEADER = ["report direct", "ours direct", "report diffusion", "ours diffusion (naive)"]
TABLE1_HEADER.append("ours diffusion (improved)")


def table1_cells(report: dict, ours: dict, row: str, digits: int) -> list[str]:
    """One row of Table 1 (``row``: a digit or "All"): the report's RMSE beside ours ("–" for
    a digit none of our test images 0..n-1 shows)."""
    rmse = {method: ours[method]["rmse"][row] for method in ("direct", "naive", "improved")}
    values = [report["direct"][row], rmse["direct"], report["diffusion"][row]]
    values += [rmse["naive"], rmse["improved"]]
    return ["–" if v is None else f"{v:.{digits}f}" for v in values]


def table1_section(tables: dict[str, dict]) -> str:
    """Table 1 of every cold run in ``tables`` (run name -> reconstruction.json): all digits,
    then per digit, the report's numbers beside ours for its two models."""
    rows = [
        [
            published.REPORT_NAMES[model],
            *table1_cells(published.TABLE1[model], t["table"], "All", 3),
        ]
        for model, t in tables.items()
        if model in published.TABLE1
    ]
    text = (
        "## Table 1: reconstruction error, all digits\n\n"
        "Mean over images of the per-image RMSE ([-0.5, 0.5] units), test images 0..n-1 degraded "
        "at t = T - 1, as the report's Table 1 (which calls it MSE); the improved sampler starts "
        "on its own trajectory instead (degraded at t = T, its random field re-applied).\n\n"
        + markdown(["model", *TABLE1_HEADER], rows)
    )
    for run_name, result in tables.items():
        text += f"\n### {run_name}, per digit (epoch {result['epoch']}, n = {result['n']})\n\n"
        report = published.TABLE1.get(run_name)
        if report is None:  # beyond the report: ours alone, MSE too
            text += reconstruction_markdown(result)
            continue
        per_digit = [
            [row, str(result["counts"][row]), *table1_cells(report, result["table"], row, 5)]
            for row in published.DIGITS
        ]
        text += markdown(["digit", "n", *TABLE1_HEADER], per_digit)
    return text


def history(study: Study, model: str) -> dict[int, dict]:
    """The rows of ``model``'s metrics.csv by epoch (empty before it trained)."""
    run_dir = study.run_dir(model)
    rows = read_metrics(run_dir) if RunFolder(run_dir).metrics.is_file() else []
    return {int(r["epoch"]): r for r in rows}


def landmarks_section(study: Study) -> str:
    rows = []
    for model, marks in published.VAL_LOSS.items():
        ours = {epoch: r["val_loss"] for epoch, r in history(study, model).items()}
        epochs = sorted({*marks, *([min(ours), max(ours)] if ours else [])})
        for epoch in epochs:
            report = f"{marks[epoch]}" if epoch in marks else "–"
            mine = f"{ours[epoch]:.4f}" if epoch in ours else "not trained at this scale"
            rows.append([published.REPORT_NAMES[model], str(epoch), report, mine])
    return (
        "## Validation-loss landmarks\n\n"
        "Ours: the validation loss on a fixed seed after each epoch (metrics.csv).\n\n"
        + markdown(["model", "epoch", "report", "ours"], rows)
    )


def quality_section(study: Study) -> str:
    """The quality curve during training (``training.eval_every``) beside what the report says
    of its samples at those epochs."""
    rows = []
    for model, claims in published.QUALITY_CLAIMS.items():
        scored = {e: r for e, r in history(study, model).items() if r.get(QUALITY_KEY) is not None}
        for epoch in sorted({*claims, *scored}):
            row = scored.get(epoch)
            ours = (
                [f"{row[QUALITY_KEY]:.1f}", f"{row['class_entropy']:.3f}"]
                + [f"{row['recognisable_fraction']:.2f}"]
                if row
                else ["not scored at this scale"] + ["–"] * 2
            )
            claim = claims.get(epoch, "–")
            rows.append([published.REPORT_NAMES[model], str(epoch), claim, *ours])
        if scored:
            best = min(scored, key=lambda e: scored[e][QUALITY_KEY])
            rows.append([published.REPORT_NAMES[model], "best", "–", f"epoch {best}", "", ""])
    return (
        "## Sample quality during training\n\n"
        "Ours: the quality probe every `training.eval_every` epochs (metrics.csv; samples of the "
        "model at that epoch scored by the digit classifier: Fréchet distance to the test set, "
        "class entropy (ln 10 = 2.303 is uniform), fraction the classifier recognises with "
        "confidence; docs/evaluation.md). The report judged its samples by eye.\n\n"
        + markdown(
            ["model", "epoch", "report says", "Fréchet", "class entropy", "recognisable"], rows
        )
    )


def beyond_section(study: Study, results: dict, tables: dict[str, dict]) -> str:
    runs = results["runs"]
    labels = [label for label, _, _ in study.columns() if label.startswith(COLD_MODELS)]
    rows = [
        [name, *(cell(runs[label]["metrics"][key], digits) for label in labels)]
        for key, name, digits in ROWS
        if key in BEYOND_KEYS
    ]
    text = (
        "## Beyond the report: the improved cold sampler and per-image t and fields\n\n"
        "`<model> improved`: the same checkpoint sampled with Bansal et al.'s Algorithm 2, "
        "started from test images degraded at t = T with the field it re-applies "
        "(`sampling.start = test_consistent`); "
        "`<model>_per_image`: the same config trained with one t and one random field per "
        "image (`diffusion.t_per = image`) instead of per batch.\n\n"
        + markdown(["", *labels], rows)
    )
    rmse_rows = [
        [
            run_name,
            *(f"{result['table'][m]['rmse']['All']:.3f}" for m in ("direct", "naive", "improved")),
        ]
        for run_name, result in tables.items()
    ]
    return text + (
        "\nReconstruction RMSE, all digits:\n\n"
        + markdown(["run", "direct", "diffusion (naive)", "diffusion (improved)"], rmse_rows)
    )


def figures_section(figures: dict[str, Path]) -> str:
    lines = ["## Figures\n"]
    for name in sorted(figures):
        kind = next(
            (k for k in sorted(FIGURE_CAPTIONS, key=len, reverse=True) if name.startswith(k)),
            None,
        )
        caption = FIGURE_CAPTIONS.get(kind, "")
        subject = name.removesuffix(".png").removeprefix(f"{kind}_") if kind else name
        lines.append(f"**{subject}**: {caption}\n\n![{name}](figures/{name})\n")
    return "\n".join(lines)


SHIPPED_NOTE = (
    'Models: the ones shipped in the package (`dt.load("model1")`; trained by '
    "`reproduce --scale report`, weights verified by sha256), evaluated here without training. "
    "The per-image variants and the HTML pages need the trained runs (every kept epoch's "
    "checkpoint) and are not part of this study.\n"
)


def write_summary(
    study: Study, results: dict, tables: dict[str, dict], figures: dict[str, Path]
) -> Path:
    """Write OUT/reproduction.md and return its path."""
    scale = study.scale
    data_file = RunFolder(study.run_dir(study.run_names()[0])).data_record
    data = json.loads(data_file.read_text()) if data_file.is_file() else {}
    stages = study.state["stages"]
    parts = [
        f"# Reproduction of the report, scale `{scale.name}`\n",
        f"Command: `diffusiontools reproduce --scale {scale.name} --seed {study.seed}"
        + (" --skip-training`\n" if study.shipped else "`\n"),
        f"Scale: {scale.summary}.\n",
        *([SHIPPED_NOTE] if study.shipped else []),
        f"Data: {data.get('source', '?')} from {data.get('folder', '?')}, "
        f"{data.get('n_train_split', '?')} training / {data.get('n_val_split', '?')} validation "
        "images (runs/*/data.json has the checksums).\n",
        f"Wall time of the stages recorded so far: {sum(stages.values()) / 60:.1f} min "
        f"(per stage in {study.state_path.name}, with the machine each ran on).\n",
        "Machines: "
        + "; ".join(sorted({m for ms in study.state["machines"].values() for m in ms}) or ["?"])
        + ".\n",
        report_metrics_section(results),
        table1_section(tables),
        landmarks_section(study),
        quality_section(study),
        "## Every metric of every column (ours)\n\n" + metrics_markdown(results),
        beyond_section(study, results, tables),
        figures_section(figures),
    ]
    path = study.out / "reproduction.md"
    with staged_outputs() as staging:  # whole or not at all
        staging.file(path).write_text("\n".join(parts))
    logger.info(f"reproduction: {path}")
    return path
