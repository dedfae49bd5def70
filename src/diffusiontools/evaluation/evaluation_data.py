"""The data every set of an evaluation is scored against: the test images (the reference of the
t-SNE, the classifier metrics and the memorisation baseline) and the training split the models
trained on (memorisation), from one data setting, loaded once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config, DataConfig, TrainingConfig, differences
from ..data import ImageDataset
from ..errors import UserError
from ..training.resume_rules import DATA_DIR_REMEDY, check_same_data
from ..training.trained_model import TrainedModel
from ..training.training_data import TrainingData, split_training_data
from .classifier_store import DatasetClassifier, classifier_for, images_of
from .settings import check_test_count

# Arrays handed to dt.train(..., data=) are kept by no file: evaluate takes them from the caller.
MEMORY_RUNS = (
    "evaluate: data.dataset = memory (arrays handed to dt.train(..., data=)) is held by no file "
    "that evaluate could load its test images from; pass the same arrays again, from Python: "
    "dt.evaluate(sets, data=(images, labels))"
)


def shared_data_config(
    models: dict[str, TrainedModel],
    npz_data: DataConfig | Mapping[str, object] | ImageDataset | None,
) -> tuple[Config, str]:
    """The one data setting every set is scored against, and a sentence saying where it is from.

    Models: their stored ``[data]`` settings, which must agree — the test reference and the
    training split behind memorisation are shared by all sets, so models trained on different
    data are refused rather than scored against data one of them never saw; ``npz_data`` beside
    them must equal their settings (a mapping: in the keys it gives), and images given (an
    ``ImageDataset``) are for runs trained on arrays (``data.dataset = memory``) only. Images
    only: ``npz_data``, by default the default settings (MNIST from $DIFFUSIONTOOLS_DATA or the
    cache, the default 80/20 split), for an ``ImageDataset`` ``data.dataset = memory``; image
    sets beside models are scored against the models' data.
    """
    arrays = isinstance(npz_data, ImageDataset)
    if not models:
        if npz_data is None:
            return Config(), "default [data] settings (NPZ files only)"
        if arrays:
            return Config(data=DataConfig(dataset="memory")), "images given as data= (no runs)"
        return Config(data=as_setting(npz_data)), "given [data] settings (NPZ files only)"
    first = next(iter(models.values()))
    if arrays and first.config.data.dataset != "memory":
        raise UserError(
            f"data= gives images, and {first.folder} was trained on data.dataset = "
            f"{first.config.data.dataset}, which evaluate loads itself: drop data="
        )
    given = {} if arrays or npz_data is None else dict(given_keys(npz_data))
    keys = [k for k, value in given.items() if value != getattr(first.config.data, k)]
    if keys:
        named = ", ".join(f"data.{k}={given[k]}" for k in keys)
        stored = ", ".join(f"{k} = {getattr(first.config.data, k)}" for k in keys)
        raise UserError(
            f"the given [data] settings {named} differ from those {first.folder} was trained "
            f"with ({stored}); runs are scored against their own data, so drop the given "
            "settings or make them the runs'"
        )
    for model in models.values():
        if model.config.data != first.config.data:
            raise UserError(
                f"{first.folder} and {model.folder} were trained with different [data] settings "
                f"({differences(first.config.data, model.config.data)}); evaluate them in "
                "separate calls, as all sets share one test reference and one training split"
            )
    stored = "checkpoint" if first.path.suffix == ".pt" else "export"
    origin = f"[data] settings stored in {first.folder}'s {stored}"
    return Config(data=first.config.data), origin + (", images given as data=" if arrays else "")


def given_keys(data: DataConfig | Mapping[str, object]) -> Mapping[str, object]:
    """The ``[data]`` keys a setting gives: a mapping's own (those the user named), a
    ``DataConfig``'s every one."""
    return data if isinstance(data, Mapping) else vars(data)


def as_setting(data: DataConfig | Mapping[str, object]) -> DataConfig:
    """A whole ``[data]`` setting: a mapping's keys over the defaults."""
    return dataclasses.replace(DataConfig(), **data) if isinstance(data, Mapping) else data


@dataclass(frozen=True)
class EvaluationData:
    """``config.data``: the data setting, ``origin``: a sentence saying where it is from;
    ``dataset``: its images; ``training``: its training split (validation images left out), on
    the CPU; ``classifier``: the data set's own classifier, on the CPU (None until
    :func:`with_classifier`: the sets are checked to be of this data first)."""

    config: Config
    origin: str
    dataset: ImageDataset
    training: TrainingData
    classifier: DatasetClassifier | None

    def test_images(self, k: int) -> np.ndarray:
        """The first k test images, uint8 (k, C, H, W)."""
        return self.dataset.test_images[:k].numpy()

    def record(self) -> dict:
        """Which data, and which training images memorisation was measured against."""
        data, training = self.config.data, self.training
        return {
            **{k: training.provenance[k] for k in ("source", "folder", "n_train", "n_test")},
            "spec": self.dataset.spec.to_dict(),  # the images' shape and the classes scored
            "settings": {**vars(data), "from": self.origin},
            "memorisation_reference": (
                f"the {len(training.train)} images of the training split (data.subset "
                f"{data.subset}, val_fraction {data.val_fraction}, split_seed "
                f"{data.split_seed}); the {len(training.val)} validation images are left out"
            ),
            "n_train_split": len(training.train),
            "n_val_split": len(training.val),
        }


def load_evaluation_data(
    models: dict[str, TrainedModel],
    npz_data: DataConfig | Mapping[str, object] | ImageDataset | None,
) -> EvaluationData:
    """The data of ``shared_data_config``: the images given (an ``ImageDataset``: arrays handed
    over from Python, as ``dt.train`` converts and splits them) or else read once (a fallback
    to the embedded subset warns once), checked to be the data each model trained on; its
    classifier comes from :func:`with_classifier`. Raises UserError for in-memory data without
    the images (``MEMORY_RUNS``), data other than a model's (``check_same_data``: for arrays,
    another fingerprint) and too few test images (``check_test_count``)."""
    config, origin = shared_data_config(models, npz_data)
    source = data_source(npz_data, config)
    if source is config.data and config.data.dataset == "memory":
        raise UserError(MEMORY_RUNS)
    try:
        dataset = images_of(source)
    except UserError as exc:
        if not models:
            raise
        raise UserError(  # the runs' data moved since training: say how to find them
            f"{exc} (runs are scored against their own data: where the runs' data lie elsewhere "
            "now, give data_dir=THEIR_PATH)"
        ) from None
    # Memorisation is judged against the images the model trained on: the run's own training
    # split, without the validation images it never saw (the trainer's own split code).
    # (batch size 1: only the split is wanted, not the trainer's batch-size check)
    split_config = Config(data=config.data, training=TrainingConfig(batch_size=1))
    training = split_training_data(dataset, split_config, torch.device("cpu"))
    for model in models.values():  # e.g. data.source = auto fell back to the embedded subset
        check_same_data(
            model.data, training.provenance, model.folder, "evaluate", remedy=DATA_DIR_REMEDY
        )
    check_test_count(len(dataset.test_images), config.data.dataset)
    return EvaluationData(config, origin, dataset, training, None)


def data_source(
    npz_data: DataConfig | Mapping[str, object] | ImageDataset | None, config: Config
) -> DataConfig | ImageDataset:
    """Where the images and the classifier come from: the images given, else the setting."""
    return npz_data if isinstance(npz_data, ImageDataset) else config.data


def with_classifier(
    data: EvaluationData, npz_data: DataConfig | Mapping[str, object] | ImageDataset | None
) -> EvaluationData:
    """``data`` with its data set's own classifier (a weak one warns: ``classifier_for``).
    Called once the sets are known to be of ``data`` (the runs' data, the data set an NPZ
    records): a classifier is asked for the data scored against only. Raises UserError for a
    data set without one."""
    classifier = classifier_for(data_source(npz_data, data.config), "cpu")
    return dataclasses.replace(data, classifier=classifier)
