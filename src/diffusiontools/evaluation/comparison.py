"""``diffusiontools evaluate``: score the samples of several runs side by side, as the report did
(REFERENCE.md, "The report's evaluation, exactly") and with principled metrics beside it.

For each run (or NPZ of samples):
  1. draw ``n`` samples (Gaussian: from noise; cold: as the run's ``sampling.start`` says, by
     default the report's degraded test images 0..n-1) and save them as NPZ;
  2. classifier features and probabilities of the samples and of the first K test images;
  3. each sample's and each test image's L2 distance to its nearest image of the training
     split the runs trained on (``training_data.load_training_data``: validation images excluded);
  4. one seeded t-SNE of the first ``tsne_reference`` test images plus ALL sample sets together
     (separate fits would not share coordinates), 10-component mixtures on it;
  5. every score with its interval (``evaluate_scores``);
  6. metrics.json, metrics.md (rows = metrics, columns = runs, then the test images' own values
     where a metric needs no reference set: frame statistics, class metrics) and the figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn
import torch
from tqdm import tqdm

from .. import __version__
from ..config import Config, DataConfig, TrainingConfig
from ..data import load_mnist, to_model, to_uint8
from ..errors import UserError
from ..reporting.figures import save_sample_grid
from ..reporting.outputs import refuse_existing, staged_outputs
from ..reporting.samples_io import load_samples, save_samples
from ..reporting.tables import markdown_table
from ..sampling.generation import generate
from ..sampling.plan import resolve_plan
from ..training.resume_rules import check_same_data
from ..training.trained_model import TrainedModel, load_model
from . import (
    class_histogram,
    classifier_features,
    fit_gmm,
    joint_tsne,
    load_classifier,
    nearest_neighbour_distances,
)
from .classifier import WEIGHTS_SHA256
from .figures import (
    save_class_histogram,
    save_memorisation_pairs,
    save_tsne_by_label,
    save_tsne_over_density,
)
from .report_metrics import GMM_COMPONENTS, TSNE_PERPLEXITY, tsne_perplexity
from .scores import (
    N_BOOT,
    N_BOOT_SET,
    HeldOutReference,
    class_scores,
    density_scores,
    feature_scores,
    frame_scores,
    memorisation_scores,
    pixel_scores,
    reference_values,
)

CHUNK = 1000  # images per step of the feature and nearest-neighbour progress bars
GRID_SHOWN = 100  # samples drawn in each run's grid
PAIRS_SHOWN = 8  # closest sample / training-image pairs drawn
MIN_SAMPLES = GMM_COMPONENTS  # the samples' mixture needs at least one point per component
INTERVALS_NOTE = (
    "95%; set-level metrics (total variance, Fréchet distance, KID, precision, recall, class "
    "entropy): value ± 1.96 sd with sd from n_boot_set subsets of N/2 distinct samples "
    "(half-sampling); per-sample means and medians (confidence, recognisable fraction, "
    "memorisation): percentile bootstrap with n_boot resamples; KLs: none"
)
RUN_SAMPLES = 200  # samples drawn per run when --n-samples is not given (the report's)
# At most per set: the test set's size, which the metrics compare against; every set joins one
# t-SNE with the test images, so more would swell its fit past what a CPU does in minutes.
MAX_SAMPLES = 10_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleSet:
    """One column of the comparison: images uint8 (N, 28, 28) and where they came from."""

    label: str
    images: np.ndarray
    source: dict


def samples_from_model(
    model: TrainedModel, n: int, sampler: str | None, steps: int | None, seed: int
) -> tuple[np.ndarray, dict]:
    """Draw n samples of a trained model: uint8 (n, 28, 28) and their provenance."""
    plan = resolve_plan(model.config, sampler, steps)  # what is drawn, every choice resolved
    x = generate(model.net, model.process, model.config, n, seed, model.device, plan=plan)
    images = to_uint8(x)  # (n, 28, 28); values beyond [-0.5, 0.5] saturate
    source = {
        "run_dir": str(model.folder.resolve()),  # absolute: read from anywhere, later
        **model.record(),  # which checkpoint, epoch, step and weights
        "kind": model.process.kind,
        "seed": seed,
        **dataclasses.asdict(plan),
    }
    return images.cpu().numpy(), source


def samples_from_run(
    run_dir: Path,
    n: int,
    epoch: int | None,
    sampler: str | None,
    steps: int | None,
    seed: int,
    device: torch.device,
) -> tuple[np.ndarray, dict]:
    """Draw n samples from a run (or export) folder: uint8 (n, 28, 28) and their provenance."""
    model = load_model(Path(run_dir), epoch, device)
    return samples_from_model(model, n, sampler, steps, seed)


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
    """Refuse two sets whose labels (runs' and NPZ files' alike) name the same files."""
    if len({file_stem(name) for name in names}) != len(names):
        raise UserError(
            f"the labels {names} are not distinct as file names; set them apart with "
            "labels=NAME ..."
        )


def check_counts(n_samples: int | None, n_boot: int, n_boot_set: int) -> None:
    """Refuse a sample count or resample count that evaluate cannot honour."""
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int)):
        raise UserError(f"n_samples={n_samples!r} is not a whole number of samples")
    if n_samples is not None and n_samples < MIN_SAMPLES:
        raise UserError(
            f"n_samples={n_samples} is too few: the samples' Gaussian mixture has "
            f"{GMM_COMPONENTS} components, so give at least {MIN_SAMPLES}"
        )
    if n_samples is not None and n_samples > MAX_SAMPLES:
        raise UserError(
            f"n_samples={n_samples} is more than evaluate scores per set: give "
            f"{MIN_SAMPLES}..{MAX_SAMPLES} (every set joins one t-SNE with the test images)"
        )
    if n_boot < 1 or n_boot_set < 2:
        raise UserError(f"n_boot={n_boot} must be >= 1 and n_boot_set={n_boot_set} >= 2")


def image_set(label: str, images: np.ndarray, source: dict, n: int | None, where: str) -> SampleSet:
    """The first n of ``images`` (uint8 (N, 28, 28); None: all of them) as a set, checked."""
    # Too few for evaluate's minimum first: then no n_samples could help, so none is advised.
    if len(images) < MIN_SAMPLES:
        raise UserError(
            f"{where} holds {len(images)} samples; evaluate needs at least {MIN_SAMPLES} "
            f"per set (the samples' Gaussian mixture has {GMM_COMPONENTS} components)"
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
    return SampleSet(label, images[:used], {**source, "npz_images": len(images)})


def shared_data_config(
    models: dict[str, TrainedModel], npz_data: DataConfig | None
) -> tuple[Config, str]:
    """The one data setting every set is scored against, and a sentence saying where it is from.

    Models: their stored ``[data]`` settings, which must agree — the test reference and the
    training split behind memorisation are shared by all sets, so models trained on different
    data are refused rather than scored against data one of them never saw. Images only:
    ``npz_data``, by default the default settings (MNIST from $DIFFUSIONTOOLS_DATA or the cache,
    the default 80/20 split); image sets beside models are scored against the models' data.
    """
    if not models:
        if npz_data is None:
            return Config(), "default [data] settings (NPZ files only)"
        return Config(data=npz_data), "given [data] settings (NPZ files only)"
    if npz_data is not None:
        raise UserError(
            f"data_dir={npz_data.dir} is for NPZ-only evaluations; RUN_DIRs are scored "
            "against the data settings stored in their checkpoints, so drop --data-dir"
        )
    first = next(iter(models.values()))
    for model in models.values():
        if model.config.data != first.config.data:
            raise UserError(
                f"{first.folder} and {model.folder} were trained with different [data] settings "
                f"({first.config.data} vs {model.config.data}); evaluate them in separate calls, "
                "as all sets share one test reference and one training split"
            )
    stored = "checkpoint" if first.path.suffix == ".pt" else "export"
    return Config(data=first.config.data), f"[data] settings stored in {first.folder}'s {stored}"


EVALUATION_FILES = ("metrics.json", "metrics.md", "tsne_test_labels.png")
SET_FILES = ("samples_{}.png", "tsne_{}.png", "class_histogram_{}.png", "memorisation_{}.png")


def evaluation_files(out_dir: Path, labels: list[str], npz_labels: list[str]) -> list[Path]:
    """Every file evaluate writes into ``out_dir`` for sets ``labels``, of which it draws or is
    given as images (and saves as samples_<label>.npz) those in ``npz_labels``."""
    files = [out_dir / name for name in EVALUATION_FILES]
    for label in labels:
        files += [out_dir / name.format(file_stem(label)) for name in SET_FILES]
    return files + [out_dir / f"samples_{file_stem(label)}.npz" for label in npz_labels]


def earlier_evaluation(out_dir: Path) -> list[Path]:
    """The files of the evaluation already in ``out_dir`` (those its metrics.json names)."""
    try:
        labels = list(json.loads((out_dir / "metrics.json").read_text())["runs"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [p for p in evaluation_files(out_dir, labels, labels) if p.exists()]


def inner_bar(iterable, desc: str) -> tqdm:
    """A progress bar inside evaluate's own: shown on a terminal only, and erased when done; in
    a log file its cursor moves would leave "\x1b[A" debris between the outer bar's lines."""
    return tqdm(iterable, desc=desc, leave=False, disable=not sys.stderr.isatty())


def features_in_chunks(
    classifier, images: np.ndarray, device: torch.device, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """``classifier_features`` of uint8 images (N, 28, 28), with a progress bar."""
    parts = [
        classifier_features(classifier, to_model(torch.from_numpy(images[i : i + CHUNK])), device)
        for i in inner_bar(range(0, len(images), CHUNK), desc)
    ]
    return np.concatenate([f for f, _ in parts]), np.concatenate([p for _, p in parts])


def distances_in_chunks(
    images: np.ndarray, train: torch.Tensor, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-training-image L2 distance (N,) and index (N,) of uint8 images (N, 28, 28)."""
    parts = [
        nearest_neighbour_distances(
            to_model(torch.from_numpy(images[i : i + CHUNK])).to(train.device), train
        )
        for i in inner_bar(range(0, len(images), CHUNK), desc)
    ]
    return (
        torch.cat([d for d, _ in parts]).cpu().numpy(),
        torch.cat([i for _, i in parts]).cpu().numpy(),
    )


Source = TrainedModel | Path | np.ndarray  # a model to sample, an NPZ file, uint8 images


def evaluate(
    run_dirs: list[Path],
    npz_files: list[Path],
    labels: list[str],
    out_dir: Path,
    n_samples: int | None = None,
    epoch: int | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    tsne_reference: int | None = None,
    test_reference: int | None = None,
    n_boot: int = N_BOOT,
    n_boot_set: int = N_BOOT_SET,
    device: torch.device | str = "cpu",
    npz_data: DataConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """``diffusiontools evaluate``: score run (or export) folders, then NPZ files, labelled
    ``labels`` (default: folder and file names); see :func:`evaluate_sets`.

    ``epoch``: every run's checkpoint (None: the latest).
    """
    if not run_dirs and not npz_files:
        raise UserError("give at least one RUN_DIR or --npz FILE to evaluate")
    check_counts(n_samples, n_boot, n_boot_set)
    names = set_labels(run_dirs, npz_files, labels)
    device = torch.device(device)
    models = [load_model(Path(r), epoch, device) for r in run_dirs]
    sets = list(zip(names, [*models, *(Path(p) for p in npz_files)], strict=True))
    return evaluate_sets(
        sets,
        out_dir,
        n_samples,
        sampler,
        steps,
        seed,
        tsne_reference,
        test_reference,
        n_boot,
        n_boot_set,
        device,
        npz_data,
        overwrite,
        npz_argument="npz",
    )


def evaluate_sets(
    sets: list[tuple[str, Source]],
    out_dir: Path,
    n_samples: int | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    tsne_reference: int | None = None,
    test_reference: int | None = None,
    n_boot: int = N_BOOT,
    n_boot_set: int = N_BOOT_SET,
    device: torch.device | str = "cpu",
    npz_data: DataConfig | None = None,
    overwrite: bool = False,
    npz_argument: str | None = None,
) -> dict:
    """Score every set and write metrics.json, metrics.md, figures and the samples drawn (or
    given as images) as samples_<label>.npz into ``out_dir``.

    sets: (label, source) in column order; a source is a :class:`TrainedModel` (``n_samples``
    drawn with ``sampler`` and ``steps``, None: its own), an NPZ file or uint8 images (N, 28, 28);
    n_samples: per set, MIN_SAMPLES..MAX_SAMPLES; None draws 200 per model and takes every image
    of a file or array (at most MAX_SAMPLES);
    tsne_reference: test images in the joint t-SNE (the report: all 10,000);
    test_reference: test images behind the classifier metrics and the memorisation baseline;
    both MIN_SAMPLES..the test images there are; None: every test image, at most MAX_SAMPLES
    (all 10,000 of MNIST, 1,000 of the embedded subset);
    n_boot: bootstrap resamples of the per-sample means; n_boot_set: half-samples of the
    set-level metrics (total variance, Fréchet distance, KID, precision/recall, class entropy);
    npz_data: the ``[data]`` settings when no set is a model (None: the defaults); models use
    the settings stored with their weights;
    overwrite: replace the evaluation already in ``out_dir`` (its files; other files stay),
    which is otherwise refused;
    npz_argument: the argument the NPZ files came from, named when one is refused (None: the
    set, ``sets['label']``).
    Every input is checked before anything is written, ``out_dir`` created included, and the
    files appear together once all are written (``reporting.outputs.staged_outputs``): an
    evaluation that fails or is interrupted leaves ``out_dir`` as it was. Returns the
    metrics.json dict. All randomness (sampling, t-SNE, mixtures, Monte Carlo KL, resampling,
    KID subsets) follows ``seed``.
    """
    if not sets:
        raise UserError("give at least one set to evaluate")
    check_counts(n_samples, n_boot, n_boot_set)
    names = [label for label, _ in sets]
    check_labels(names)
    device, out_dir = torch.device(device), Path(out_dir)
    models = {label: src for label, src in sets if isinstance(src, TrainedModel)}
    for model in models.values():  # a sampler or steps the model cannot take: refused now
        resolve_plan(model.config, sampler, steps)
    config, data_origin = shared_data_config(models, npz_data)
    data = load_mnist(config.data.dir, config.data.source)
    tsne_reference, test_reference = (
        reference_count(name, k, len(data.test_images))
        for name, k in (("tsne_reference", tsne_reference), ("test_reference", test_reference))
    )
    given, inputs = {}, []  # the image sets, read and checked; the files they came from
    for label, src in sets:
        if isinstance(src, np.ndarray):
            source = {"npz": str((out_dir / f"samples_{file_stem(label)}.npz").resolve())}
            given[label] = image_set(label, src, source, n_samples, f"set {label!r}")
        elif not isinstance(src, TrainedModel):
            images, meta = load_samples(Path(src), npz_argument or f"sets[{label!r}]")
            source = {"npz": str(Path(src).resolve()), **meta}
            given[label] = image_set(label, images, source, n_samples, str(src))
            inputs.append(Path(src))
    from ..training.training_data import load_training_data

    # Memorisation is judged against the images the model trained on: the run's own training
    # split, without the validation images it never saw (the trainer's own split code).
    # (batch size 1: only the split is wanted, not the trainer's batch-size check)
    training = load_training_data(
        Config(data=config.data, training=TrainingConfig(batch_size=1)), torch.device("cpu")
    )
    for model in models.values():  # e.g. data.source = auto fell back to the embedded subset
        check_same_data(model.data, training.provenance, model.folder, "evaluate")
    saved = [label for label, src in sets if not isinstance(src, Path)]  # written as NPZ
    written = evaluation_files(out_dir, names, saved)
    earlier = earlier_evaluation(out_dir)
    if not overwrite:
        refuse_existing(
            [*earlier, *written],
            "choose another folder with out=DIR, or replace the evaluation there with "
            "overwrite=True",
        )
    inputs = {p.absolute() for p in inputs}  # an NPZ scored here stays, earlier's or not
    replaced = [p for p in earlier if p.absolute() not in inputs]
    # The evaluation appears whole, once written; the bar is closed (its line ended) on any
    # exit, so that an error is printed on a line of its own.
    with staged_outputs() as staging, tqdm(total=5, desc="evaluate") as stages:
        work = staging.folder(out_dir, replaces=replaced)

        stages.set_description("evaluate: samples")
        sample_sets = []
        for label, src in inner_bar(sets, "samples"):
            path = work / f"samples_{file_stem(label)}.npz"
            if isinstance(src, TrainedModel):
                n = RUN_SAMPLES if n_samples is None else n_samples
                images, source = samples_from_model(src, n, sampler, steps, seed)
                save_samples(path, torch.from_numpy(images), label=label, **source)
                sample_sets.append(SampleSet(label, images, source))
                continue
            if isinstance(src, np.ndarray):
                save_samples(path, torch.from_numpy(given[label].images), label=label)
            sample_sets.append(given[label])
        sets = sample_sets
        stages.update()

        stages.set_description("evaluate: classifier features")
        classifier = load_classifier(device)
        test_images = data.test_images.numpy()
        test_features, test_probabilities = features_in_chunks(
            classifier, test_images[:test_reference], device, "test features"
        )
        features = [features_in_chunks(classifier, s.images, device, s.label) for s in sets]
        stages.update()

        stages.set_description("evaluate: nearest training images")
        train = to_model(training.train).to(device)  # (n_train_split, 1, 28, 28)
        test_d, _ = distances_in_chunks(test_images[:test_reference], train, "test baseline")
        nearest = [distances_in_chunks(s.images, train, s.label) for s in sets]
        reference = HeldOutReference.build(test_features, test_d)
        stages.update()

        n_points = tsne_reference + sum(len(s.images) for s in sets)
        stages.set_description(f"evaluate: joint t-SNE of {n_points}")
        perplexity, notes = tsne_perplexity(n_points), []
        if perplexity != TSNE_PERPLEXITY:
            notes.append(
                f"t-SNE perplexity lowered from {TSNE_PERPLEXITY:g} to (points - 1) / 3 = "
                f"{perplexity:.2f}, as sklearn needs it below the {n_points} points"
            )
            logger.warning(notes[-1])
        as_model = [(s.images.astype(np.float64) / 255 - 0.5) for s in sets]  # (N, 28, 28)
        test_x = test_images[:tsne_reference].astype(np.float64) / 255 - 0.5
        test_emb, *sample_embs = joint_tsne([test_x, *as_model], seed, perplexity)
        test_gmm = fit_gmm(test_emb, seed)
        stages.update()

        stages.set_description("evaluate: scores and figures")
        runs = {}
        for s, x, (feats, probs), (dist, idx), emb in zip(
            sets, as_model, features, nearest, sample_embs, strict=True
        ):
            metrics = {
                **pixel_scores(x, seed, n_boot_set),
                **density_scores(emb, test_gmm, seed),
                **feature_scores(feats, reference, seed, n_boot_set),
                **class_scores(probs, seed, n_boot, n_boot_set),
                **frame_scores(s.images, seed, n_boot),
                **memorisation_scores(dist, reference, seed, n_boot),
            }
            histogram = class_histogram(probs)
            runs[s.label] = {
                "n_samples": len(s.images),
                "source": s.source,
                "metrics": metrics,
                "class_histogram": histogram.tolist(),
            }
            stem = file_stem(s.label)
            shown = min(GRID_SHOWN, len(s.images))
            save_sample_grid(
                torch.from_numpy(s.images[:shown]),
                work / f"samples_{stem}.png",
                title=f"{s.label}: {shown} of {len(s.images)} samples",
            )
            save_tsne_over_density(
                emb, test_gmm, tsne_reference, s.label, work / f"tsne_{stem}.png"
            )
            save_class_histogram(histogram, s.label, work / f"class_histogram_{stem}.png")
            closest = np.argsort(dist, kind="stable")[:PAIRS_SHOWN]
            save_memorisation_pairs(
                torch.from_numpy(s.images[closest]),
                training.train[idx[closest]],
                dist[closest],
                s.label,
                len(s.images),
                work / f"memorisation_{stem}.png",
            )
        save_tsne_by_label(
            test_emb, data.test_labels[:tsne_reference].numpy(), work / "tsne_test_labels.png"
        )

        results = {
            "settings": {
                **settings(seed, n_samples, tsne_reference, test_reference),
                "tsne_perplexity": perplexity,
                "n_boot": n_boot,
                "n_boot_set": n_boot_set,
                "intervals": INTERVALS_NOTE,
                "data": data_settings(config, data, training, data_origin),
                "notes": notes,
            },
            "runs": runs,
            "reference": {
                "label": "test images",
                "n": test_reference,
                "note": "the first test_reference test images themselves, on the metrics that "
                "need no reference set: what a generator of MNIST-like digits should score",
                "values": reference_values(test_images[:test_reference], test_probabilities),
            },
        }
        (work / "metrics.json").write_text(json.dumps(results, indent=2))
        (work / "metrics.md").write_text(markdown_table(results))
        stages.update()
    return results


def data_settings(config: Config, data, training, origin: str) -> dict:
    """Which MNIST, and which training images memorisation was measured against."""
    return {
        **{k: data.provenance.get(k) for k in ("source", "folder", "n_train", "n_test")},
        "settings": {**vars(config.data), "from": origin},
        "memorisation_reference": (
            f"the {len(training.train)} images of the training split (data.subset "
            f"{config.data.subset}, val_fraction {config.data.val_fraction}, split_seed "
            f"{config.data.split_seed}); the {len(training.val)} validation images are left out"
        ),
        "n_train_split": len(training.train),
        "n_val_split": len(training.val),
    }


def reference_count(name: str, k: int | None, n_test: int) -> int:
    """The test images behind argument ``name``: ``k`` checked against the ``n_test`` there are,
    or for None every one of them, at most MAX_SAMPLES."""
    if k is None:
        return min(n_test, MAX_SAMPLES)
    if not MIN_SAMPLES <= k <= n_test:
        raise UserError(f"{name}={k} must be between {MIN_SAMPLES} and the {n_test} test images")
    return k


def settings(seed: int, n_samples: int | None, tsne_reference: int, test_reference: int) -> dict:
    """What a reader needs to reproduce the numbers: seeds, reference sizes, networks, versions."""
    return {
        "seed": seed,
        "seeds_note": "one seed for sampling, t-SNE, mixtures, Monte Carlo KL, KID subsets and "
        "interval resampling",
        "n_samples": n_samples,
        "n_samples_note": "--n-samples as given; null: all images of each NPZ, "
        f"{RUN_SAMPLES} per run (each run's count is its n_samples)",
        "tsne_reference": tsne_reference,
        "tsne": "sklearn TSNE(n_components=2, perplexity=tsne_perplexity, random_state=seed), "
        "sklearn defaults otherwise",
        "gmm": f"GaussianMixture({GMM_COMPONENTS}, full covariances, random_state=seed)",
        "test_reference": test_reference,
        "test_reference_note": "first test images, for the classifier metrics and the "
        "memorisation baseline",
        "classifier_sha256": WEIGHTS_SHA256,
        "versions": {
            "diffusiontools": __version__,
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
        },
    }
