"""``diffusiontools evaluate``: score the samples of several runs side by side, as the report did
(REFERENCE.md, "The report's evaluation, exactly") and with principled metrics beside it.

For each run (or NPZ of samples):
  1. draw ``n`` samples (Gaussian: from noise; cold: as the run's ``sampling.start`` says, by
     default the report's degraded test images 0..n-1) and save them as NPZ;
  2. classifier features and probabilities of the samples and of the first K test images;
  3. each sample's and each test image's L2 distance to its nearest training image;
  4. one seeded t-SNE of the first ``tsne_reference`` test images plus ALL sample sets together
     (separate fits would not share coordinates), 10-component mixtures on it;
  5. every score with its bootstrap interval (``evaluate_scores``);
  6. metrics.json, metrics.md (rows = metrics, columns = runs) and the figures.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn
import torch
from tqdm import tqdm

from . import __version__
from .data import load_mnist, to_model, to_uint8
from .errors import UserError
from .evaluate_figures import (
    save_class_histogram,
    save_memorisation_pairs,
    save_tsne_by_label,
    save_tsne_over_density,
)
from .evaluate_scores import (
    N_BOOT,
    N_BOOT_SET,
    HeldOutReference,
    class_scores,
    density_scores,
    feature_scores,
    memorisation_scores,
    pixel_scores,
)
from .evaluation import (
    class_histogram,
    classifier_features,
    fit_gmm,
    joint_tsne,
    load_classifier,
    nearest_neighbour_distances,
)
from .evaluation.classifier import WEIGHTS_SHA256
from .evaluation.report_metrics import GMM_COMPONENTS
from .figures import save_sample_grid
from .metrics_table import markdown_table
from .run_folder import ensure_writable
from .samples_io import load_samples, save_samples

CHUNK = 1000  # images per step of the feature and nearest-neighbour progress bars
GRID_SHOWN = 100  # samples drawn in each run's grid
PAIRS_SHOWN = 8  # closest sample / training-image pairs drawn
MIN_SAMPLES = GMM_COMPONENTS  # the samples' mixture needs at least one point per component


@dataclass(frozen=True)
class SampleSet:
    """One column of the comparison: images uint8 (N, 28, 28) and where they came from."""

    label: str
    images: np.ndarray
    source: dict


def samples_from_run(
    run_dir: Path,
    n: int,
    epoch: int | None,
    sampler: str | None,
    steps: int | None,
    seed: int,
    device: torch.device,
) -> tuple[np.ndarray, dict]:
    """Draw n samples from a trained run: uint8 (n, 28, 28) and their provenance."""
    from .sampling import generate
    from .trained_model import load_trained

    model = load_trained(run_dir, epoch, device)
    x = generate(model.net, model.process, model.config, n, seed, device, sampler, steps)
    images = to_uint8(x)  # (n, 28, 28); values beyond [-0.5, 0.5] saturate
    cold_start = None
    if model.process.kind == "cold":
        from .processes.cold import resolve_start

        cold_start = resolve_start(
            model.config.sampling.start, sampler or model.config.sampling.sampler
        )
    source = {
        "run_dir": str(run_dir),
        "epoch": model.epoch,
        "kind": model.process.kind,
        "sampler": sampler or model.config.sampling.sampler,
        "steps": steps,
        "seed": seed,
        "cold_start": cold_start,  # the start mode used, "auto" resolved for the sampler
    }
    return images.cpu().numpy(), source


def file_stem(label: str) -> str:
    """A label as a file-name part: anything but letters, digits, '.', '_', '-' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", label)


def gather_sample_sets(
    run_dirs: list[Path],
    npz_files: list[Path],
    labels: list[str],
    n: int,
    epoch: int | None,
    sampler: str | None,
    steps: int | None,
    seed: int,
    device: torch.device,
    out_dir: Path,
) -> list[SampleSet]:
    """Sample every run (saving out_dir/samples_<label>.npz) and read every NPZ's first n."""
    names = labels or [Path(p).name for p in run_dirs] + [Path(p).stem for p in npz_files]
    if len(names) != len(run_dirs) + len(npz_files):
        raise UserError(
            f"--label was given {len(labels)} times for "
            f"{len(run_dirs) + len(npz_files)} runs and NPZ files; give one per set"
        )
    if len({file_stem(name) for name in names}) != len(names):
        raise UserError(f"the labels {names} are not distinct as file names; pass --label")
    sets = []
    for run_dir, label in zip(tqdm(run_dirs, desc="sampling runs"), names, strict=False):
        images, source = samples_from_run(Path(run_dir), n, epoch, sampler, steps, seed, device)
        save_samples(
            out_dir / f"samples_{file_stem(label)}.npz",
            torch.from_numpy(images),
            label=label,
            **source,
        )
        sets.append(SampleSet(label, images, source))
    for path, label in zip(npz_files, names[len(run_dirs) :], strict=True):
        images, meta = load_samples(Path(path))
        if len(images) < n:
            raise UserError(
                f"{path} holds {len(images)} samples, fewer than --n-samples {n}; "
                f"pass --n-samples {len(images)} or fewer"
            )
        sets.append(SampleSet(label, images[:n], {"npz": str(path), **meta}))
    return sets


def features_in_chunks(
    classifier, images: np.ndarray, device: torch.device, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """``classifier_features`` of uint8 images (N, 28, 28), with a progress bar."""
    parts = [
        classifier_features(classifier, to_model(torch.from_numpy(images[i : i + CHUNK])), device)
        for i in tqdm(range(0, len(images), CHUNK), desc=desc, leave=False)
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
        for i in tqdm(range(0, len(images), CHUNK), desc=desc, leave=False)
    ]
    return (
        torch.cat([d for d, _ in parts]).cpu().numpy(),
        torch.cat([i for _, i in parts]).cpu().numpy(),
    )


def evaluate(
    run_dirs: list[Path],
    npz_files: list[Path],
    labels: list[str],
    out_dir: Path,
    n_samples: int = 200,
    epoch: int | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    tsne_reference: int = 10_000,
    test_reference: int = 10_000,
    n_boot: int = N_BOOT,
    n_boot_set: int = N_BOOT_SET,
    device: torch.device | str = "cpu",
) -> dict:
    """Score every run / NPZ and write metrics.json, metrics.md and figures to ``out_dir``.

    tsne_reference: test images in the joint t-SNE (the report: all 10,000);
    test_reference: test images behind the classifier metrics and the memorisation baseline;
    n_boot: bootstrap resamples of the cheap scores; n_boot_set: of the Fréchet distance, KID and
    precision/recall, which refit or search neighbours on every resample.
    Returns the metrics.json dict. All randomness (sampling, t-SNE, mixtures, Monte Carlo KL,
    bootstrap, KID subsets) follows ``seed``.
    """
    if not run_dirs and not npz_files:
        raise UserError("give at least one RUN_DIR or --npz FILE to evaluate")
    if min(n_boot, n_boot_set) < 1:
        raise UserError(f"--n-boot {n_boot} and --n-boot-set {n_boot_set} must both be >= 1")
    if n_samples < MIN_SAMPLES:
        raise UserError(
            f"--n-samples {n_samples} is too few: the samples' Gaussian mixture has "
            f"{GMM_COMPONENTS} components, so give at least {MIN_SAMPLES}"
        )
    device, out_dir = torch.device(device), Path(out_dir)
    ensure_writable(out_dir)
    data = load_mnist(None)
    for name, k in (("--tsne-reference", tsne_reference), ("--test-reference", test_reference)):
        if not MIN_SAMPLES <= k <= len(data.test_images):
            raise UserError(
                f"{name} {k} must be between {MIN_SAMPLES} and the "
                f"{len(data.test_images)} test images"
            )
    stages = tqdm(total=5, desc="evaluate")

    stages.set_description("evaluate: samples")
    sets = gather_sample_sets(
        run_dirs, npz_files, labels, n_samples, epoch, sampler, steps, seed, device, out_dir
    )
    stages.update()

    stages.set_description("evaluate: classifier features")
    classifier = load_classifier(device)
    test_images = data.test_images.numpy()
    test_features, _ = features_in_chunks(
        classifier, test_images[:test_reference], device, "test features"
    )
    features = [features_in_chunks(classifier, s.images, device, s.label) for s in sets]
    stages.update()

    stages.set_description("evaluate: nearest training images")
    train = to_model(data.train_images).to(device)  # (60000, 1, 28, 28)
    test_d, _ = distances_in_chunks(test_images[:test_reference], train, "test baseline")
    nearest = [distances_in_chunks(s.images, train, s.label) for s in sets]
    reference = HeldOutReference.build(test_features, test_d)
    stages.update()

    stages.set_description(f"evaluate: joint t-SNE of {tsne_reference + len(sets) * n_samples}")
    as_model = [(s.images.astype(np.float64) / 255 - 0.5) for s in sets]  # (N, 28, 28)
    test_x = test_images[:tsne_reference].astype(np.float64) / 255 - 0.5
    test_emb, *sample_embs = joint_tsne([test_x, *as_model], seed)
    test_gmm = fit_gmm(test_emb, seed)
    stages.update()

    stages.set_description("evaluate: scores and figures")
    runs = {}
    for s, x, (feats, probs), (dist, idx), emb in zip(
        sets, as_model, features, nearest, sample_embs, strict=True
    ):
        metrics = {
            **pixel_scores(x, seed, n_boot),
            **density_scores(emb, test_gmm, seed),
            **feature_scores(feats, reference, seed, n_boot_set),
            **class_scores(probs, seed, n_boot),
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
            out_dir / f"samples_{stem}.png",
            title=f"{s.label}: {shown} of {len(s.images)} samples",
        )
        save_tsne_over_density(emb, test_gmm, tsne_reference, s.label, out_dir / f"tsne_{stem}.png")
        save_class_histogram(histogram, s.label, out_dir / f"class_histogram_{stem}.png")
        closest = np.argsort(dist, kind="stable")[:PAIRS_SHOWN]
        save_memorisation_pairs(
            torch.from_numpy(s.images[closest]),
            data.train_images[idx[closest]],
            dist[closest],
            s.label,
            len(s.images),
            out_dir / f"memorisation_{stem}.png",
        )
    save_tsne_by_label(
        test_emb, data.test_labels[:tsne_reference].numpy(), out_dir / "tsne_test_labels.png"
    )

    results = {
        "settings": {
            **settings(seed, n_samples, tsne_reference, test_reference, data),
            "n_boot": n_boot,
            "n_boot_set": n_boot_set,
        },
        "runs": runs,
    }
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    (out_dir / "metrics.md").write_text(markdown_table(results))
    stages.update()
    stages.close()
    return results


def settings(seed: int, n_samples: int, tsne_reference: int, test_reference: int, data) -> dict:
    """What a reader needs to reproduce the numbers: seeds, reference sizes, networks, versions."""
    return {
        "seed": seed,
        "seeds_note": "one seed for sampling, t-SNE, mixtures, Monte Carlo KL, KID subsets and "
        "bootstrap resampling",
        "n_samples": n_samples,
        "tsne_reference": tsne_reference,
        "tsne": "sklearn TSNE(n_components=2, random_state=seed), sklearn defaults otherwise",
        "gmm": f"GaussianMixture({GMM_COMPONENTS}, full covariances, random_state=seed)",
        "test_reference": test_reference,
        "test_reference_note": "first test images, for the classifier metrics and the "
        "memorisation baseline",
        "train_images": len(data.train_images),
        "classifier_sha256": WEIGHTS_SHA256,
        "data": {k: data.provenance.get(k) for k in ("source", "folder", "n_train", "n_test")},
        "versions": {
            "diffusiontools": __version__,
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
        },
    }
