"""What a resumed run may change, and the one-line refusal of every other change.

A checkpoint carries the config it was trained with. Resuming with a config that differs in a key
that shapes the optimisation (lr, T, schedule, network, batch, degradation, seed, ...) would
continue one run under the settings of another while the run folder claimed the new ones, so such
a difference is refused. The keys below only say how long to train, how often to save or
validate or measure sample quality, where to run, where to find the same data, how to log
progress, or how to sample: they may change, and the resumed run uses the new values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config import SECTIONS, Config
from ..data import recorded_shape
from ..errors import UserError
from .run_folder import RunFolder

MAY_CHANGE_ON_RESUME = frozenset(
    {
        "training.epochs",
        "training.max_steps",
        "training.save_every",
        "training.val_batches",
        "training.eval_every",  # measured with the network in eval mode: training is unchanged
        "training.eval_samples",
        "training.device",
        "training.compile",
        "training.channels_last",
        # Only adds a progress log (metrics.csv is always written): switching TensorBoard on for
        # a long run is what a resume is for; its event files start at the resumed step.
        "training.log",
        "data.dir",  # the data itself must be the same: see check_same_data
        "data.source",
    }
)
MAY_CHANGE_SECTIONS = frozenset({"sampling"})

# The provenance entries that identify the training data (data.json, and every checkpoint).
DATA_IDENTITY = ("source", "md5", "subset", "n_train_split", "n_val_split")
# How the commands that load a run and take where its data lie now (``load(data_dir=)``) find
# the run's data that moved since training; resume finds them by the config's keys.
DATA_DIR_REMEDY = "give data_dir=THEIR_PATH, where the run's data lie now"
CONFIG_REMEDY = "point data.dir or DIFFUSIONTOOLS_DATA at the run's data"
SHAPE_REMEDY = "point data.dir at the run's data"  # images of another shape are not MNIST's


def flat(config: Config) -> dict[str, Any]:
    """``{"section.key": value}`` for every key of every section."""
    return {
        f"{section}.{key}": value
        for section in SECTIONS
        for key, value in dataclasses.asdict(getattr(config, section)).items()
    }


def may_change(key: str) -> bool:
    return key in MAY_CHANGE_ON_RESUME or key.partition(".")[0] in MAY_CHANGE_SECTIONS


def resumed_config(stored: Config, requested: Config, run_dir: Any) -> Config:
    """The config a resumed run goes on with: ``requested``, whose differences from ``stored``
    (the checkpoint's) must all be keys that may change on resume; the run keeps its name.

    Raises UserError listing every other differing key with its old and new value.
    """
    old, new = flat(stored), flat(requested)
    refused = [
        f"{k} {old[k]!r} -> {new[k]!r}" for k in old if old[k] != new[k] and not may_change(k)
    ]
    if refused:
        allowed = ", ".join(sorted(MAY_CHANGE_ON_RESUME)) + ", sampling.*"
        raise UserError(
            f"resume=True: the run in {run_dir} was trained with other settings: "
            f"{'; '.join(refused)}; only {allowed} may change on resume (start a new run with "
            "another --out, or --overwrite, to change the others)"
        )
    return dataclasses.replace(requested, name=stored.name)


def changed_settings(stored: Config, resumed: Config) -> list[str]:
    """``"key old -> new"`` for each key a resume changed (:func:`resumed_config`): the log
    names them, since a resume takes them from the config given now, not from the run's."""
    old, new = flat(stored), flat(resumed)
    return [f"{k} {old[k]!r} -> {new[k]!r}" for k in old if old[k] != new[k]]


def _data_json(run_dir: Any) -> dict | None:
    """The data record a run folder's data.json holds, or None where there is none."""
    path = RunFolder(run_dir).data_record if isinstance(run_dir, str | Path) else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def check_same_data(
    stored: dict | None,
    found: dict,
    run_dir: Any,
    action: str = "resume=True",
    keys=DATA_IDENTITY,
    remedy: str | None = None,
) -> None:
    """Refuse to ``action`` (resume, evaluate, reconstruct) a run on other data than it trained
    on: ``stored`` is its checkpoint's provenance (None: a checkpoint from before provenance was
    checkpointed, whose run folder's data.json is read instead), ``found`` the data's now; the
    ``keys`` the record holds are compared, and for arrays handed over from Python (source
    ``memory``) the data set's fingerprint. ``remedy``: how the caller finds the run's data (None:
    by the config's data.dir; :data:`DATA_DIR_REMEDY`: by ``data_dir=``)."""
    stored = stored or _data_json(run_dir)
    if not stored:
        return  # no record of the data at all: nothing to compare with
    if stored.get("source") == "memory":
        # No file names the arrays: the data set's fingerprint (its images, labels and split,
        # after conversion) does, and it alone: the same images in another layout or type
        # (channels last, a tensor) are other bytes but the same data.
        old, new = (record.get("dataset", {}).get("fingerprint") for record in (stored, found))
        if old != new:
            raise UserError(
                f"{action}: the arrays given are not the ones the run in {run_dir} trained on "
                f"(fingerprint {old} -> {new}); pass the same images and labels as data="
            )
        return
    # Then the shape, named as such: otherwise a network of one shape meets images of another
    # and fails deep inside loading or sampling, in words that name neither.
    trained, now = recorded_shape(stored), recorded_shape(found)
    if trained != now:
        # The same files at another side: data.image_size resized one of them.
        same = [_dataset_name(found), _identity(found, "md5"), _sha256s(found)] == [
            _dataset_name(stored),
            _identity(stored, "md5"),
            _sha256s(stored),
        ]
        resize = f", or set data.image_size = {trained[-1]}, the run's side" if same else ""
        raise UserError(
            f"{action}: data.dataset = {_dataset_name(found)} gives {_shape_text(now)} images, "
            f"but the run in {run_dir} trained on {_shape_text(trained)} images of data.dataset "
            f"= {_dataset_name(stored)}; {remedy or SHAPE_REMEDY}{resize}"
        )
    differing = [
        f"{k} {stored[k]!r} -> {found.get(k)!r}"
        for k in keys
        if k in stored and _identity(stored, k) != _identity(found, k)
    ]
    # The files' sha256s tell apart what the keys cannot: a folder's images (recorded without
    # an md5) replaced by as many others. A record from before sha256s were kept has none.
    trained_files, files_now = _sha256s(stored), _sha256s(found)
    if trained_files and files_now and trained_files != files_now:
        differing.append(f"files sha256 {trained_files!r} -> {files_now!r}")
    if differing:
        raise UserError(
            f"{action}: the data found now is not the data the run in {run_dir} trained on "
            f"({'; '.join(differing)}); {remedy or CONFIG_REMEDY}"
        )


def _identity(record: dict, key: str) -> Any:
    """What ``key`` of a data record says of the data themselves: the md5s' values alone (an
    NPZ file's md5 is keyed by its path, and data moved since training are the same data)."""
    value = record.get(key)
    return sorted(value.values()) if key == "md5" and isinstance(value, dict) else value


def _dataset_name(record: dict) -> str:
    """The data set a :func:`~diffusiontools.data.data_record` names (its registry name; a
    record from before data sets were named: its source, e.g. "mnist")."""
    return record.get("dataset", {}).get("provenance", {}).get("source", record.get("source"))


def _sha256s(record: dict) -> list[str]:
    """The sha256s (first 12 digits) of the files a record's data set was read from, sorted:
    where the files lie (data.dir may change on resume) is left out."""
    files = record.get("dataset", {}).get("provenance", {}).get("files", {})
    return sorted(sums["sha256"][:12] for sums in files.values() if "sha256" in sums)


def _shape_text(shape: tuple[int, int, int]) -> str:
    return "x".join(map(str, shape))  # (C, H, W) as "CxHxW"
