"""``diffusiontools evaluate``: score the samples of several runs side by side, as the report did
(REFERENCE.md, "The report's evaluation, exactly") and with principled metrics beside it.

The stages, each in its own module; everything is checked before anything is written:
  1. the sets (``sample_sets``) and the data they are scored against (``evaluation_data``): the
     test images and the training split the runs trained on, validation images excluded;
  2. each run's ``n`` samples drawn (Gaussian: from noise; cold: as the run's
     ``sampling.start`` says, by default the report's degraded test images 0..n-1) and saved
     as NPZ, beside the image sets given;
  3. classifier features and probabilities of the samples and of the first K test images, and
     each one's L2 distance to its nearest training image (``set_measures``);
  4. one seeded t-SNE of the first ``tsne_reference`` test images plus ALL sample sets together
     (separate fits would not share coordinates), 10-component mixtures on it, and every score
     with its interval (``set_scoring``, ``scores``);
  5. metrics.json, metrics.md (rows = metrics, columns = runs, then the test images' own values
     where a metric needs no reference set: frame statistics, class metrics) and the figures
     (``evaluation_files``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import DataConfig
from ..data import ImageDataset, to_model
from ..errors import UserError
from ..outputs.safe_writes import check_output_folder, staged_outputs
from ..sampling.plan import resolve_plan
from ..training.trained_model import TrainedModel, load_model
from .evaluation_data import load_evaluation_data, with_classifier
from .evaluation_files import files_replaced, run_record, save_set_figures, write_metrics
from .figures import save_tsne_by_label
from .sample_sets import Source, check_labels, draw_sets, given_sets, set_labels
from .scores import HeldOutReference, reference_values
from .set_measures import MeasuredSet, distances_in_chunks, features_in_chunks
from .set_scoring import check_embeddable, embed_jointly, set_scores
from .settings import EvaluationSettings


def evaluate(
    run_dirs: list[Path],
    npz_files: list[Path],
    labels: list[str],
    out_dir: Path,
    settings: EvaluationSettings,
    epoch: int | None = None,
    device: torch.device | str = "cpu",
    npz_data: DataConfig | Mapping[str, object] | None = None,
    overwrite: bool = False,
    data_dir: str | Path | None = None,
) -> dict:
    """``diffusiontools evaluate``: score run (or export) folders, then NPZ files, labelled
    ``labels`` (default: folder and file names); see :func:`evaluate_sets`.

    ``epoch``: every run's checkpoint (None: the latest); ``data_dir``: where the runs' data
    lie now, when they moved since training (``diffusiontools.load``'s; they must be the runs'
    data).
    """
    if not run_dirs and not npz_files:
        raise UserError("give at least one RUN_DIR or --npz FILE to evaluate")
    names = set_labels(run_dirs, npz_files, labels)
    device = torch.device(device)
    models = [load_model(Path(r), epoch, device, data_dir=data_dir) for r in run_dirs]
    sets = list(zip(names, [*models, *(Path(p) for p in npz_files)], strict=True))
    return evaluate_sets(sets, out_dir, settings, device, npz_data, overwrite, npz_argument="npz")


def evaluate_sets(
    sets: list[tuple[str, Source]],
    out_dir: Path,
    settings: EvaluationSettings,
    device: torch.device | str = "cpu",
    npz_data: DataConfig | Mapping[str, object] | ImageDataset | None = None,
    overwrite: bool = False,
    npz_argument: str | None = None,
) -> dict:
    """Score every set and write metrics.json, metrics.md, figures and the samples drawn (or
    given as images) as samples_<label>.npz into ``out_dir``.

    sets: (label, source) in column order; a source is a :class:`TrainedModel` (sampled as
    ``settings`` say), an NPZ file, or uint8 images or float32 samples in the model's range
    (N, C, H, W) of the data's (C, H, W) (gray also (N, H, W), e.g. MNIST's (N, 28, 28)), of
    which the first
    ``settings.n_samples`` are scored (None: all, at most MAX_SAMPLES);
    settings: the counts, seed and references (:class:`EvaluationSettings`); reference sizes
    left None take the test images of the data in use, at most MAX_SAMPLES;
    npz_data: the ``[data]`` settings the sets are scored against when no set is a model (None:
    the defaults, MNIST; a mapping: the keys given, the others' defaults); models use the
    settings stored with their weights, which ``npz_data``, if given beside them, must equal
    (a mapping: in the keys it gives); an ``ImageDataset``: arrays handed over
    from Python, the data of runs trained on arrays (``evaluation_data.shared_data_config``);
    overwrite: replace the evaluation already in ``out_dir`` (its files; other files stay),
    which is otherwise refused;
    npz_argument: the argument the NPZ files came from, named when one is refused (None: the
    set, ``sets['label']``).
    Every input is checked before anything is written, ``out_dir`` created included, and the
    files appear together once all are written (``outputs.safe_writes.staged_outputs``): an
    evaluation that fails or is interrupted leaves ``out_dir`` as it was. Returns the
    metrics.json dict. All randomness (sampling, t-SNE, mixtures, Monte Carlo KL, resampling,
    KID subsets) follows ``settings.seed``.
    """
    if not sets:
        raise UserError("give at least one set to evaluate")
    names = [label for label, _ in sets]
    check_labels(names)
    device = torch.device(device)
    out_dir = check_output_folder(out_dir, "out", "the evaluation")
    models = {label: src for label, src in sets if isinstance(src, TrainedModel)}
    for model in models.values():  # a sampler or steps the model cannot take: refused now
        resolve_plan(model.config, settings.sampler, settings.steps)
    data = load_evaluation_data(models, npz_data)
    settings = settings.for_test_images(len(data.dataset.test_images))
    spec = data.dataset.spec
    given = given_sets(sets, settings.n_samples, out_dir, npz_argument, data)
    check_embeddable(list(given.values()), settings.tsne_samples)  # models' sets have them
    data = with_classifier(data, npz_data)  # once the sets are known to be of this data
    inputs = [Path(src) for _, src in sets if isinstance(src, Path)]
    saved = [label for label, src in sets if not isinstance(src, Path)]  # written as NPZ
    replaced = files_replaced(out_dir, names, saved, inputs, overwrite)
    # The evaluation appears whole, once written; the bar is closed (its line ended) on any
    # exit, so that an error is printed on a line of its own.
    with staged_outputs() as staging, tqdm(total=5, desc="evaluate") as stages:
        work = staging.folder(out_dir, replaces=replaced)

        stages.set_description("evaluate: samples")
        sample_sets = draw_sets(sets, given, settings, work)
        stages.update()

        stages.set_description("evaluate: classifier features")
        network = data.classifier.network  # None: unlabelled data without a feature network
        classifier = None if network is None else network.to(device)
        test_images = data.test_images(settings.test_reference)
        test_features, test_probabilities = features_in_chunks(
            classifier, test_images, device, "test features"
        )
        features = [features_in_chunks(classifier, s.images, device, s.label) for s in sample_sets]
        stages.update()

        stages.set_description("evaluate: nearest training images")
        train = to_model(data.training.train).to(device)  # (n_train_split, C, H, W)
        test_d, _ = distances_in_chunks(test_images, train, "test baseline")
        nearest = [distances_in_chunks(s.images, train, s.label) for s in sample_sets]
        reference = HeldOutReference.build(test_features, test_d)
        measured = [
            MeasuredSet(s, *f, *d) for s, f, d in zip(sample_sets, features, nearest, strict=True)
        ]
        stages.update()

        n_points = settings.tsne_reference + sum(len(s.images) for s in sample_sets)
        stages.set_description(f"evaluate: joint t-SNE of {n_points}")
        joint = embed_jointly(
            sample_sets,
            data.test_images(settings.tsne_reference),
            settings.seed,
            settings.tsne_samples,
        )
        stages.update()

        stages.set_description("evaluate: scores and figures")
        runs = {}
        for m, emb in zip(measured, joint.sets, strict=True):
            metrics = set_scores(m, emb, joint.test_gmm, reference, settings)
            runs[m.samples.label] = run_record(m, metrics)
            save_set_figures(
                m, emb, joint.test_gmm, settings.tsne_reference, data.training.train, spec, work
            )
        if data.dataset.test_labels is not None:  # an unlabelled data set has no colours
            labels = data.dataset.test_labels[: settings.tsne_reference].numpy()
            save_tsne_by_label(joint.test, labels, work / "tsne_test_labels.png", spec.class_names)
        test_labels = data.dataset.test_labels  # None: unlabelled data
        k_labels = None if test_labels is None else test_labels[: settings.test_reference].numpy()
        values = reference_values(test_images, test_probabilities, k_labels)
        results = write_metrics(work, settings, data, joint, runs, values)
        stages.update()
    return results
