"""``diffusiontools pages``: one self-contained HTML page per run, and a comparison page.

Every image is embedded as a base64 data URI, so a page can be mailed or archived as one file.
A run page shows, as far as the run folder and an evaluation folder provide them:
  1. the learning curve (RUN_DIR/learning_curve.png, else drawn from metrics.csv);
  2. samples across training (RUN_DIR/samples/*.png, else drawn from the kept checkpoints);
  3. the reverse-process trajectory (RUN_DIR/samples/trajectory.png, else drawn);
  4. the evaluation's metrics table and its figures for this run (``--eval``: a folder written
     by ``diffusiontools evaluate``), with the checkpoint it scored. An evaluation is matched
     to a run by the run folder it recorded, never by name, and must have scored a checkpoint
     the run still holds (its latest or a kept epoch; the trajectory is drawn from that one):
     an evaluation of other runs only, or of a checkpoint since replaced, is refused.
Plain HTML and a few lines of inline CSS; no scripts.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..outputs.figures import save_image_rows, save_learning_curve
from ..outputs.safe_writes import check_output_folder, refuse_existing, staged_outputs
from ..outputs.tables import html_table
from ..training.run_folder import RunFolder, read_metrics
from .sample_sets import file_stem

EPOCHS_SHOWN = 5  # checkpoints drawn when the run kept no sample grids
SAMPLES_PER_EPOCH = 8
TRAJECTORY_IMAGES = 4
FIGURE_KINDS = ("learning_curve", "epochs", "trajectory")  # figures/<run>_<kind>.png
STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; }
th { background: #eee; }
img { max-width: 100%; margin: 0.5em 0; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
pre { background: #f6f6f6; padding: 0.8em; font-size: 0.85em; }
"""


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure(path: Path, caption: str) -> str:
    alt = html.escape(caption)
    return (
        f'<figure><img src="{data_uri(path)}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
    )


def page(title: str, body: list[str]) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def learning_curve(run_dir: Path, figures_dir: Path) -> Path | None:
    """The run's learning curve PNG, drawn from metrics.csv when the run folder lacks one."""
    folder = RunFolder(run_dir)
    if folder.learning_curve.is_file():
        return folder.learning_curve
    if not folder.metrics.is_file():
        return None
    path = figures_dir / f"{run_dir.name}_learning_curve.png"
    save_learning_curve(read_metrics(run_dir), path, title=run_dir.name)
    return path


def drawn_epochs(run_dir: Path, figures_dir: Path, device: torch.device) -> Path | None:
    """Samples (seed 0) at up to EPOCHS_SHOWN kept checkpoints, evenly spread, and the latest
    where it is past them (a run stopped inside an epoch by training.max_steps), as one
    figure."""
    from ..sampling.generation import generate
    from ..training.trained_model import load_trained

    kept = RunFolder(run_dir).epochs()
    if not kept:
        return None
    chosen = [kept[int(i)] for i in np.unique(np.linspace(0, len(kept) - 1, EPOCHS_SHOWN).round())]
    models = [load_trained(run_dir, epoch, device) for epoch in chosen]
    latest = load_trained(run_dir, None, device)
    if latest.step is not None and latest.step != models[-1].step:
        models.append(latest)
    rows = [
        generate(m.net, m.process, m.config, SAMPLES_PER_EPOCH, 0, device, shape=m.shape)
        for m in models
    ]
    path = figures_dir / f"{run_dir.name}_epochs.png"
    save_image_rows(
        rows,
        [f"epoch {m.epoch}" + ("" if m.epoch_finished else f", step {m.step}") for m in models],
        [],
        path,
        title=f"{run_dir.name}: {SAMPLES_PER_EPOCH} samples per kept checkpoint (seed 0)",
    )
    return path


def drawn_trajectory(
    run_dir: Path, figures_dir: Path, device: torch.device, epoch: int | None = None
) -> Path | None:
    """The reverse process of the checkpoint of ``epoch`` (None: the latest) at fractions 1,
    0.5, 0.1, 0.05, 0 of T."""
    from ..sampling.generation import trajectory
    from ..training.trained_model import load_trained

    if not RunFolder(run_dir).latest.is_file():
        return None
    m = load_trained(run_dir, epoch, device)
    times, states = trajectory(
        m.net, m.process, m.config, TRAJECTORY_IMAGES, 0, device, shape=m.shape
    )
    path = figures_dir / f"{run_dir.name}_trajectory.png"
    save_image_rows(
        [torch.stack([s[k] for s in states]) for k in range(TRAJECTORY_IMAGES)],
        [f"#{k}" for k in range(TRAJECTORY_IMAGES)],
        [f"t={t}" for t in times],
        path,
        title=f"{run_dir.name}, epoch {m.epoch}: reverse process of "
        f"{TRAJECTORY_IMAGES} samples (seed 0)",
    )
    return path


def scored_run(source: dict) -> str | None:
    """The run folder an evaluated set came from: drawn by evaluate (``run_dir``) or an NPZ
    that ``sample`` wrote (``run``); None for images of no run."""
    return source.get("run_dir") or source.get("run")


def evaluated_label(run_dir: Path, results: dict) -> str | None:
    """The run's column in an evaluation: the one whose samples came from this folder."""
    for label, run in results["runs"].items():
        source = scored_run(run.get("source", {}))
        if source and Path(source).resolve() == run_dir.resolve():
            return label
    return None


def check_evaluation(run_dirs: list[Path], results: dict, eval_dir: Path) -> dict[Path, int | None]:
    """The checkpoint of each run that the evaluation scored: None for the latest, else a kept
    epoch; compared by the weights' sha256 where recorded, else by optimiser step, else by
    epoch. Refuses an evaluation that scored none of ``run_dirs``, or weights that a run no
    longer holds (a checkpoint since replaced, or a run overwritten)."""
    from ..training.trained_model import load_trained

    labels = {run_dir: evaluated_label(run_dir, results) for run_dir in run_dirs}
    if not any(labels.values()):
        scored = sorted(
            {scored_run(r.get("source", {})) or "images" for r in results["runs"].values()}
        )
        raise UserError(
            f"eval_dir={eval_dir} scored {', '.join(scored)}, none of "
            f"{', '.join(str(r) for r in run_dirs)}: give an evaluation of these "
            "runs (diffusiontools evaluate RUN), or none"
        )
    scored_epochs = {}
    for run_dir, label in labels.items():
        if label is None:
            continue
        source = results["runs"][label]["source"]
        epoch, step, digest = source.get("epoch"), source.get("step"), source.get("weights_sha256")
        ema = source.get("weights") != "raw"
        candidates = [None] + ([epoch] if epoch in RunFolder(run_dir).epochs() else [])
        for candidate in candidates:
            model = load_trained(run_dir, candidate, torch.device("cpu"), ema)
            if digest is not None:
                same = model.record()["weights_sha256"] == digest
            else:
                same = model.step == step if step is not None else model.epoch == epoch
            if same:
                scored_epochs[run_dir] = candidate
                break
        else:
            latest = load_trained(run_dir, None, torch.device("cpu"), ema)
            raise UserError(
                f"eval_dir={eval_dir} scored {run_dir} at epoch {epoch} (step {step}), weights "
                f"the run no longer holds (latest: epoch {latest.epoch}, step {latest.step}): "
                "evaluate the run again (diffusiontools evaluate RUN)"
            )
    return scored_epochs


def scored_checkpoint(source: dict) -> str:
    """One line naming what an evaluated set was drawn from: run, epoch, step, weights."""
    finished = {True: "", False: " (inside the epoch)", None: ""}[source.get("epoch_finished")]
    parts = [f"{scored_run(source)}, epoch {source.get('epoch')}{finished}"]
    if source.get("step") is not None:
        parts.append(f"step {source['step']}")
    if source.get("weights"):
        parts.append(f"{source['weights']} weights")
    return ", ".join(parts)


def evaluation_section(label: str, results: dict, eval_dir: Path) -> list[str]:
    """This run's metrics table and evaluation figures."""
    one = {**results, "runs": {label: results["runs"][label]}}
    stem = file_stem(label)
    scored = scored_checkpoint(results["runs"][label]["source"])
    body = [
        "<h2>Evaluation</h2>",
        f"<p>Scored: {html.escape(scored)}.</p>",
        html_table(one),
        "<p>[low, high]: 95% intervals over the samples (half-sampling for set-level metrics, "
        "the bootstrap for per-sample means); see docs/evaluation.md.</p>",
    ]
    for name, caption in [
        (f"samples_{stem}.png", "evaluated samples"),
        ("tsne_test_labels.png", "t-SNE of the test set (report Figure 5)"),
        (f"tsne_{stem}.png", "t-SNE of the samples over the test density"),
        (f"class_histogram_{stem}.png", "predicted classes"),
        (f"memorisation_{stem}.png", "closest samples to training images"),
    ]:
        if (eval_dir / name).is_file():
            body.append(figure(eval_dir / name, caption))
    return body


def run_page(
    run_dir: Path,
    results: dict | None,
    eval_dir: Path | None,
    figures_dir: Path,
    device: torch.device,
    epoch: int | None = None,
) -> str:
    """The HTML of one run's page; ``epoch``: the checkpoint an evaluation scored (None: the
    latest), whose reverse process it draws."""
    body = []
    folder = RunFolder(run_dir)
    if folder.config.is_file():
        config = html.escape(folder.config.read_text())
        body += ["<h2>Configuration</h2>", f"<pre>{config}</pre>"]
    curve = learning_curve(run_dir, figures_dir)
    if curve:
        body += ["<h2>Learning curve</h2>", figure(curve, "train and validation loss per epoch")]
    kept = sorted(folder.samples.glob("*.png"))
    shown = [(p, p.stem.replace("_", " ")) for p in kept]
    if not any(p.name.startswith("epoch") for p in kept):
        shown.append((drawn_epochs(run_dir, figures_dir, device), "samples across training"))
    if not any(p.name == "trajectory.png" for p in kept):
        shown.append((drawn_trajectory(run_dir, figures_dir, device, epoch), "reverse process"))
    shown = [(p, caption) for p, caption in shown if p is not None]
    if shown:
        body += ["<h2>Samples</h2>", *[figure(p, caption) for p, caption in shown]]
    label = evaluated_label(run_dir, results) if results else None
    if label is not None:
        body += evaluation_section(label, results, eval_dir)
    elif results:
        body.append(
            f"<p>The evaluation in {html.escape(str(eval_dir))} has no column for this run.</p>"
        )
    return page(f"diffusiontools run: {run_dir.name}", body)


def comparison_page(
    run_dirs: list[Path], results: dict | None, eval_dir: Path | None, figures_dir: Path
) -> str:
    """Several runs side by side: the evaluation table, then learning curves and t-SNE maps."""
    body = []
    if results:
        body += [
            "<h2>Metrics</h2>",
            html_table(results),
            "<p>[low, high]: 95% intervals over the samples (half-sampling for set-level "
            "metrics, the bootstrap for per-sample means).</p>",
        ]
    curves = [(learning_curve(r, figures_dir), r.name) for r in run_dirs]
    body += ["<h2>Learning curves</h2>", *[figure(p, name) for p, name in curves if p]]
    if results:
        maps = [(eval_dir / f"tsne_{file_stem(label)}.png", label) for label in results["runs"]]
        body += ["<h2>t-SNE maps</h2>", *[figure(p, label) for p, label in maps if p.is_file()]]
    return page("diffusiontools: " + ", ".join(r.name for r in run_dirs), body)


def write_pages(
    run_dirs: list[Path],
    out_dir: Path,
    eval_dir: Path | None = None,
    device: torch.device | str = "cpu",
    overwrite: bool = False,
) -> list[Path]:
    """Write OUT/<run name>.html per run (and OUT/comparison.html for several), with the figures
    they draw in OUT/figures; return the pages' paths.

    Every run folder must hold a checkpoint. Pages (and figures) already in ``out_dir`` are
    refused unless ``overwrite``, which replaces them (a figure of these runs that is not drawn
    again is deleted) and leaves other files; everything is checked before anything is written,
    and the files appear together once all are written (``outputs.safe_writes.staged_outputs``).
    """
    run_dirs = [Path(r) for r in run_dirs]
    out_dir = check_output_folder(out_dir, "out", "the pages")
    for run_dir in run_dirs:
        RunFolder(run_dir).checkpoint(None)  # says what is missing: the folder, or its checkpoints
    if len({r.name for r in run_dirs}) != len(run_dirs):
        raise UserError(
            f"the run folders {[str(r) for r in run_dirs]} share names; their pages "
            "would overwrite each other, so write their pages separately"
        )
    results, scored_epochs = None, {}
    if eval_dir is not None:
        eval_dir = Path(eval_dir)
        if not (eval_dir / "metrics.json").is_file():
            raise UserError(
                f"eval_dir={eval_dir} holds no metrics.json from 'diffusiontools evaluate'"
            )
        try:
            results = json.loads((eval_dir / "metrics.json").read_text())
            if not isinstance(results, dict) or not isinstance(results.get("runs"), dict):
                raise ValueError
        except (OSError, ValueError):  # json's own words (char 0) would not help
            raise UserError(
                f"eval_dir={eval_dir}: its metrics.json is not the one 'diffusiontools "
                "evaluate' writes (a JSON table of settings and runs)"
            ) from None
        scored_epochs = check_evaluation(run_dirs, results, eval_dir)
    figures_dir = out_dir / "figures"
    pages = [out_dir / f"{r.name}.html" for r in run_dirs]
    pages += [out_dir / "comparison.html"] * (len(run_dirs) > 1)
    figures = [figures_dir / f"{r.name}_{kind}.png" for r in run_dirs for kind in FIGURE_KINDS]
    if not overwrite:
        refuse_existing(
            [*pages, *figures],
            "choose another folder with out=DIR, or replace the pages with overwrite=True",
        )
    with staged_outputs() as staging:  # the pages appear together, once all are written
        work = staging.folder(out_dir, replaces=figures)  # a figure not drawn again goes
        drawn = work / figures_dir.name
        for run_dir, path in zip(run_dirs, pages, strict=False):
            epoch = scored_epochs.get(run_dir)
            text = run_page(run_dir, results, eval_dir, drawn, torch.device(device), epoch)
            (work / path.name).write_text(text)
        if len(run_dirs) > 1:
            text = comparison_page(run_dirs, results, eval_dir, drawn)
            (work / "comparison.html").write_text(text)
    return pages
