"""The class each sample of a set was asked to be, read from the set's record: the provenance
of the samples evaluate draws from a class-conditional model, or a samples NPZ's metadata.

Both record it as ``asked_classes``, one class index per sample
(``training.sample_files.asked_fields``); a file written by a version that did not record
``asked_classes`` still names its one class as ``digit``, or the cycle of every class as
``labels`` ("cycled 0-9", ``sampling.plan.SamplingPlan.labels``: sample i asked as i % 10).
Where a set records none of them, its asked classes are unknown and the reason says why: the
score that needs them (``read_as_asked``) is left out of that set's metrics.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import UserError

ASKED_KEY = "asked_classes"
ARRAY_REASON = "images given as an array record no class asked for"
# SamplingPlan.labels of generation.class_labels' cycle; ASCII digits, as the plan writes them
CYCLED = re.compile(r"cycled 0-([0-9]+)")
NO_CLASSES = "the data set has no classes to ask for"


def recorded_asked(
    record: dict, n: int, num_classes: int, where: str
) -> tuple[np.ndarray | None, str | None]:
    """The classes (n,) int64 in 0..num_classes - 1 that the n images of the set ``where``
    were asked to be, from its ``record``, and None; or None and the reason they are unknown.

    1. ``asked_classes``: one class index per image, as ``sample`` and ``evaluate`` write;
    2. else ``digit`` (an int): the one class every image was drawn as;
    3. else ``labels`` "cycled 0-(K-1)", K the data's ``num_classes``: image i was asked as
       class i % K;
    4. else unknown: no label took effect where ``labels`` is recorded as None (an
       unconditional model, or guidance 0), or the file records no class per sample.

    Raises UserError for recorded classes that are not one index in 0..num_classes - 1 per
    image, or a cycle of another number of classes: such a file was not written by ``sample``
    for these images (or this data).
    """
    if ASKED_KEY in record:
        asked = record[ASKED_KEY]
        if not (isinstance(asked, list) and len(asked) == n and all(map(_is_index, asked))):
            raise UserError(
                f"{where} records meta '{ASKED_KEY}' that is not a list of {n} class indices "
                "(one per image): write it as diffusiontools sample does"
            )
    elif record.get("digit") is not None:
        if not _is_index(record["digit"]):
            raise UserError(
                f"{where} records meta 'digit' = {record['digit']!r}, not a class index: write "
                "it as diffusiontools sample does"
            )
        asked = [record["digit"]] * n
    elif isinstance(record.get("labels"), str) and (cycle := CYCLED.fullmatch(record["labels"])):
        if not num_classes:
            return None, NO_CLASSES
        # The cycle runs over the model's classes, which are the data's: compared as text, so
        # that no recorded number, however long, is converted.
        if cycle[1] != str(num_classes - 1):
            raise UserError(
                f"{where} records meta 'labels' = {record['labels']!r}, asked classes "
                f"0..{cycle[1]}, but the data set it is scored against has classes "
                f"0..{num_classes - 1}: score it against its own data"
            )
        asked = [i % num_classes for i in range(n)]
    elif "labels" in record and record["labels"] is None:
        drawn = "with sampling.guidance = 0" if record.get("guidance") == 0 else "unconditionally"
        return None, f"its samples were drawn {drawn}: no class was asked for"
    else:
        labels = record.get("labels")
        found = "" if labels is None else f"; its 'labels' = {labels!r} is not 'cycled 0-K'"
        return None, (
            f"its file records no class asked for per sample (meta '{ASKED_KEY}', which "
            f"diffusiontools sample writes for a class-conditional model, 'digit' or 'labels'"
            f"{found})"
        )
    if not num_classes:
        return None, NO_CLASSES
    if min(asked) < 0 or max(asked) >= num_classes:  # Python ints: no overflow on any value
        raise UserError(
            f"{where} records asked classes {min(asked)}..{max(asked)}, but the data set "
            f"it is scored against has classes 0..{num_classes - 1}: score it against its own "
            "data"
        )
    return np.asarray(asked, dtype=np.int64), None


def without_asked(record: dict) -> dict:
    """``record`` without its per-sample classes: the provenance metrics.json keeps of a set
    (one index per sample would fill it)."""
    return {key: value for key, value in record.items() if key != ASKED_KEY}


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
