"""Each data set's own classifier: the yardstick behind evaluate and the quality probe.

MNIST's is the shipped network whose weights are pinned by sha256 (``classifier.load_classifier``).
Any other data set's is trained by ``diffusiontools classifier train --set data.dataset=NAME``
(:func:`train_for_dataset`; for arrays handed over from Python, ``dt.train_classifier(data=...)``)
and kept in the user cache, keyed by the data set's fingerprint (the very pixels and labels,
``ImageDataset.fingerprint``):

    ${XDG_CACHE_HOME:-~/.cache}/diffusiontools/classifiers/<dataset>-<fingerprint[:12]>.pt
    ${XDG_CACHE_HOME:-~/.cache}/diffusiontools/classifiers/<dataset>-<fingerprint[:12]>.json

The JSON record holds the data set's name, fingerprint and spec, the test accuracy, the epochs, the
seed and the weights' sha256 (and, since it was recorded, ``n_test``, the test images behind the
accuracy). Both files appear together (staged, then moved in place), so a
training cut short leaves neither. A data set's samples are only ever scored by the classifier
whose record names that data set's fingerprint (:func:`classifier_for`).
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import DataConfig, default_of
from ..data import ImageDataset, load_data
from ..data.download import file_sha256
from ..data.locate import cache_dir
from ..data.memory import TEST_FRACTION as MEMORY_TEST_FRACTION
from ..errors import UserError
from ..outputs.safe_writes import staged_outputs
from ..outputs.tables import WEAK_CLASSIFIER
from .classifier import SHIPPED, WEIGHTS_FILE, WEIGHTS_SHA256, MnistClassifier, load_classifier
from .classifier_training import fit_classifier, resolved_epochs, state_dict
from .inception_features import InceptionFeatures, unlabelled_scoring

# The [data] keys that choose the images load_data returns (the rest choose a run's split).
LOADING_KEYS = ("dataset", "dir", "source", "channels", "image_size", "test_fraction")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetClassifier:
    """``network``: a data set's classifier in eval mode; ``record``: which one it is (JSON:
    ``dataset``, ``weights``, ``weights_sha256``, and for a trained one ``fingerprint``,
    ``spec``, ``test_accuracy``, ``n_test``, ``epochs``, ``seed``). A data set without labels has no
    classifier: ``network`` is then a feature network without a class head, or None where none
    can be had, and ``record`` says which metrics are ``omitted`` (``inception_features``)."""

    network: MnistClassifier | InceptionFeatures | None
    record: dict


def store_folder() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/diffusiontools/classifiers``."""
    return cache_dir("classifiers")


def stored_paths(name: str, fingerprint: str) -> tuple[Path, Path]:
    """The weights (.pt) and record (.json) of data set ``name`` with ``fingerprint``."""
    stem = store_folder() / f"{name}-{fingerprint[:12]}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def name_of(data: DataConfig | ImageDataset) -> str:
    """The name a data set's classifier is stored and recorded under: a ``[data]`` section's
    ``dataset``, an ``ImageDataset``'s provenance source (``memory`` for arrays from Python)."""
    return data.provenance.source if isinstance(data, ImageDataset) else data.dataset


def images_of(data: DataConfig | ImageDataset) -> ImageDataset:
    """The images of ``data``: an ``ImageDataset`` as given, a ``[data]`` section loaded."""
    return data if isinstance(data, ImageDataset) else load_data(data)


def train_command(data: DataConfig | ImageDataset, epochs: str | None = None) -> str:
    """The call that trains the classifier of ``data`` (with ``epochs``, e.g. "N", when given):
    for a ``[data]`` section the command, its loading keys that differ from their defaults as
    ``--set`` flags; for images given from Python (an ``ImageDataset``), which no command can
    read, ``dt.train_classifier`` with the test fraction they were split with."""
    if isinstance(data, ImageDataset):
        details = data.provenance.details
        split = details.get("test_fraction")  # arrays split by load_memory: the same split again
        given = "origin" not in details and split not in (None, MEMORY_TEST_FRACTION)
        options = (f", test_fraction={split}" if given else "") + (
            f", epochs={epochs}" if epochs else ""
        )
        return f"dt.train_classifier(data=(images, labels){options})"
    keys = [k for k in LOADING_KEYS if getattr(data, k) != default_of(f"data.{k}")]
    flags = "".join(f" --set {shlex.quote(f'data.{k}={getattr(data, k)}')}" for k in keys)
    return f"diffusiontools classifier train{flags}" + (f" --epochs {epochs}" if epochs else "")


def train_for_dataset(
    data: DataConfig | ImageDataset,
    epochs: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict:
    """Train the classifier of the data set ``data`` (a ``[data]`` section, or an
    ``ImageDataset`` such as arrays handed over from Python) on its training split, store it in
    the cache and return its record (see the module docstring). ``epochs``: passes over the
    training images (None: ``classifier_training.resolved_epochs``).

    Raises UserError for MNIST, whose classifier ships in the package (``diffusiontools
    classifier train --out FILE`` regenerates those weights), for a data set without labels,
    and for ``epochs`` < 1.
    """
    name = name_of(data)
    if name == SHIPPED:
        raise UserError(
            f"data.dataset = {SHIPPED} is scored by the classifier shipped in the package; "
            "regenerate its weights with `diffusiontools classifier train --out FILE`"
        )
    dataset = images_of(data)
    epochs = resolved_epochs(epochs, len(dataset.train_images))
    model, test_accuracy = fit_classifier(dataset, epochs, seed, device)
    fingerprint = dataset.fingerprint()
    weights, record_path = stored_paths(name, fingerprint)
    with staged_outputs() as staging:  # weights and record appear together, or neither
        staged = staging.file(weights)
        torch.save(state_dict(model), staged)
        record = {
            "dataset": name,
            "fingerprint": fingerprint,
            "spec": dataset.spec.to_dict(),
            "test_accuracy": test_accuracy,
            "n_test": len(dataset.test_images),  # the images test_accuracy is measured on
            "epochs": epochs,
            "seed": seed,
            "weights": str(weights),
            "weights_sha256": file_sha256(staged),
        }
        staging.file(record_path).write_text(json.dumps(record, indent=2) + "\n")
    return record


def classifier_for(
    data: DataConfig | ImageDataset,
    device: torch.device | str,
    action: str = "evaluate",
    remedy: str = "",
) -> DatasetClassifier:
    """The classifier that scores images of the data set ``data`` (a ``[data]`` section, or an
    ``ImageDataset`` such as arrays handed over from Python), on ``device``: MNIST's shipped
    one, else the one stored for the data set's fingerprint; for a data set without labels,
    Inception features where they can be had offline (``inception_features.unlabelled_scoring``).

    Raises UserError naming ``action`` (what needs the classifier), the data set and the command
    that trains its classifier, ``remedy`` ending the sentence, when none is stored; and when a
    stored record names another data set or fingerprint than the file it is stored under.
    """
    name = name_of(data)
    if name == SHIPPED:
        record = {
            "dataset": SHIPPED,
            "weights": f"diffusiontools/assets/{WEIGHTS_FILE}",
            "weights_sha256": WEIGHTS_SHA256,
        }
        return DatasetClassifier(load_classifier(device), record)
    dataset = images_of(data)
    spec = dataset.spec
    if not spec.num_classes:  # no classes to train a classifier on: a classifier-free network
        return DatasetClassifier(*unlabelled_scoring(name, device))
    fingerprint = dataset.fingerprint()
    weights, record_path = stored_paths(name, fingerprint)
    if not record_path.is_file():
        raise UserError(
            f"{action}: samples of data.dataset = {name} need a classifier of that data "
            f"set (fingerprint {fingerprint[:12]}), and none is stored in {store_folder()}; "
            f"train one with `{train_command(data)}`{remedy}"
        )
    record = json.loads(record_path.read_text())
    check_record(record, record_path, name, dataset)
    if not weights.is_file() or file_sha256(weights) != record["weights_sha256"]:
        raise UserError(
            f"the classifier weights {weights} are missing or not those its record "
            f"{record_path.name} names (sha256); train again with `{train_command(data)}`"
        )
    state = torch.load(weights, map_location="cpu", weights_only=True)
    with torch.random.fork_rng(devices=[]):  # its random init, overwritten, must not move
        network = MnistClassifier(spec.channels, spec.height, spec.width, spec.num_classes)
    network.load_state_dict(state)
    accuracy = record.get("test_accuracy")
    if accuracy is not None and accuracy < WEAK_CLASSIFIER:
        logger.warning(
            "the classifier of data.dataset = %s has test accuracy %.4f on %s test images, "
            "below %s: the metrics that rest on it (Fréchet distance, KID, precision, recall, "
            "class metrics, the quality probe's columns) are weak; train it longer with `%s`",
            name,
            accuracy,
            record.get("n_test", "its"),
            WEAK_CLASSIFIER,
            train_command(data, epochs="N"),
        )
    return DatasetClassifier(network.to(device).eval(), record)


def check_record(record: dict, path: Path, name: str, dataset: ImageDataset) -> None:
    """Refuse a stored classifier whose record (at ``path``) is not of data set ``name`` with
    ``dataset``'s fingerprint and spec: one data set's samples are never scored by another's."""
    theirs = (record.get("dataset"), record.get("fingerprint"), record.get("spec"))
    ours = (name, dataset.fingerprint(), dataset.spec.to_dict())
    if theirs != ours:
        raise UserError(
            f"the classifier record {path} is of data set {theirs[0]} (fingerprint "
            f"{str(theirs[1])[:12]}), not of {name} (fingerprint {ours[1][:12]}); delete it and "
            f"train again"
        )
