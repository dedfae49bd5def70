"""One side-by-side table of an evaluation's metrics: rows = metrics, columns = runs.

Read from the dict that ``evaluate`` writes to metrics.json, so that the Markdown table
(metrics.md) and the HTML pages show exactly the same cells.
"""

from __future__ import annotations

import html
import math

from ..data.dataset import are_digits, unnamed_classes

WEAK_CLASSIFIER = 0.9  # test accuracy below which the classifier's metrics are called weak

# (key in metrics.json, row name shown, digits after the point)
ROWS = [
    ("total_variance", "total variance (images)", 2),
    ("total_variance_unclamped", "total variance, unclamped (the report's)", 2),
    ("kl_faithful", "KL, report's grid sum", 3),
    ("kl_grid_normalised", "KL, normalised grid", 3),
    ("kl_monte_carlo", "KL, Monte Carlo", 3),
    ("frechet_distance", "Fréchet distance (classifier features)", 2),
    ("kid", "KID (mean ± std over subsets)", 4),
    ("precision", "precision (k=3)", 3),
    ("recall", "recall (k=3)", 3),
    ("class_entropy", "class entropy (nats, max ln K)", 3),  # K: the data's classes
    ("mean_confidence", "mean classifier confidence", 3),
    ("recognisable_fraction", "recognisable fraction (conf. >= 0.9)", 3),
    ("read_as_asked", "read as the class asked for", 3),
    ("frame_mean", "frame mean (outer 3 px, /255)", 2),
    ("frame_above_5", "fraction of frames above 5/255", 3),
    ("mid_grey_fraction", "mid-grey pixel fraction (25..230)", 3),
    ("memorisation_median_distance", "median distance to nearest train image", 3),
    ("memorisation_ratio", "memorisation ratio (sample / test median)", 3),
    ("memorisation_below_test_p1", "fraction below test 1st percentile", 3),
]


def fixed(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals, never "-0.000": a value that rounds to zero (an entropy of
    one class, -0.0; a Monte Carlo "KL" of -0.0001) shows as 0."""
    return f"{round(x, digits) + 0.0:.{digits}f}"


def cell(entry: dict, digits: int) -> str:
    """'value [low, high]', with '± std' for KID and '(no CI)' where no interval was possible;
    'not computed' where the metric itself could not be (metrics.json's note says why)."""
    if entry["value"] is None:
        return "not computed"
    text = fixed(entry["value"], digits)
    if "std" in entry:
        text += f" ± {fixed(entry['std'], digits)}"
    if entry["ci"] is None:
        return text + " (no CI)"
    low, high = entry["ci"]
    return f"{text} [{fixed(low, digits)}, {fixed(high, digits)}]"


def table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header (metric column + one per run) and rows of cell strings, n first; then, where
    ``results`` has a ``reference`` (the test images' own values), a column of those values for
    the metrics that need no reference set and "" for the others. A metric that a set leaves
    out (its ``omitted`` says why: read as the class asked for, where no class was asked) or
    that an older metrics.json lacks shows "–"; a metric that no set has gets no row."""
    runs = results["runs"]
    reference = results.get("reference")
    header = ["metric", *runs, *([reference["label"]] if reference else [])]

    def row(name: str, cells: list[str], ref: str) -> list[str]:
        return [name, *cells, *([ref] if reference else [])]

    rows = [
        row(
            "samples (n)",
            [str(run["n_samples"]) for run in runs.values()],
            str(reference["n"]) if reference else "",
        )
    ]
    names = class_names(results)
    for key, name, digits in ROWS:
        if all(key not in run["metrics"] for run in runs.values()):
            continue
        if key == "class_entropy" and names:
            name = f"class entropy (nats, max {math.log(len(names)):.3f})"
        cells = [
            cell(run["metrics"][key], digits) if key in run["metrics"] else "–"
            for run in runs.values()
        ]
        value = reference["values"].get(key) if reference else None
        rows.append(row(name, cells, "" if value is None else fixed(value, digits)))
    histograms = [
        "–" if run["class_histogram"] is None else " ".join(map(str, run["class_histogram"]))
        for run in runs.values()
    ]
    rows.append(row(f"class histogram ({histogram_classes(names)})", histograms, ""))
    return header, rows


def class_names(results: dict) -> list[str]:
    """The classes the sets were scored on: the data's class names as metrics.json records them
    (``settings.data.spec``), else "0".."K-1" for the K bins of a set's histogram (an older
    metrics.json); [] for unlabelled data."""
    spec = results.get("settings", {}).get("data", {}).get("spec")
    if spec is not None:
        return list(spec.get("class_names", []))
    bins = [
        len(run["class_histogram"]) for run in results["runs"].values() if run["class_histogram"]
    ]
    return [str(k) for k in range(bins[0])] if bins else []


def histogram_classes(names: list[str]) -> str:
    """The histogram row's classes: "digits 0-9" for digit classes, else the class names, or
    "no classes" for unlabelled data."""
    if not names:
        return "no classes"
    if are_digits(names):
        return f"digits 0-{len(names) - 1}" if len(names) <= 10 else f"classes 0..{len(names) - 1}"
    if tuple(names) == unnamed_classes(len(names)):
        return f"classes 0..{len(names) - 1}"
    return ", ".join(names)


def classifier_note(results: dict) -> str | None:
    """A sentence on the classifier behind the class and feature metrics: its test accuracy and
    the test images it was measured on, where its record holds them (None where not)."""
    settings = results.get("settings", {})
    accuracy = settings.get("classifier_test_accuracy")
    if accuracy is None:
        return None
    n_test = settings.get("classifier_n_test")
    on = "" if n_test is None else f" on {n_test} test images"
    weak = (
        f"; below {WEAK_CLASSIFIER}, so the metrics that rest on it (Fréchet distance, KID, "
        "precision, recall, class entropy, confidence, recognisable fraction, read as the class "
        "asked for) are weak"
        if accuracy < WEAK_CLASSIFIER
        else ""
    )
    name = settings.get("classifier", {}).get("dataset", "the data set")
    return f"Classifier: {name}'s own, test accuracy {accuracy:.4f}{on}{weak}."


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """Any header and rows of cell strings as a GitHub Markdown table, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def shared_field_notes(results: dict) -> list[str]:
    """A sentence per set whose samples share a random field per batch (its source's
    ``shared_field``, ``training.sample_files.start_fields``): its intervals resample the samples
    with that field fixed, so they leave out how the field itself varies from seed to seed."""
    return [
        f"{label}: {run['source']['shared_field']}, so its intervals hold that field fixed and "
        "do not cover how the metrics vary with it: compare evaluations at several seeds."
        for label, run in results.get("runs", {}).items()
        if run.get("source", {}).get("shared_field")
    ]


def missing_notes(results: dict) -> list[str]:
    """A sentence per cell of the table without a value: a "–" of a metric that other sets
    have (why that set left it out, its ``omitted``: e.g. read as asked where no class was
    asked for) and a "not computed" (its metric's ``note``: e.g. a t-SNE mixture that could
    not be fitted)."""
    runs = results.get("runs", {})
    shown = {key for key, _, _ in ROWS if any(key in run["metrics"] for run in runs.values())}
    names = {key: name for key, name, _ in ROWS}
    left_out = [
        f"{label} has no {names[key]} ({reason})."
        for label, run in runs.items()
        for key, reason in run.get("omitted", {}).items()
        if key in shown and key not in run["metrics"]
    ]
    not_computed = [
        f"{label}, {names[key]}: {entry.get('note')}."
        for label, run in runs.items()
        for key, entry in run["metrics"].items()
        if key in names and entry.get("value", 0) is None
    ]
    return left_out + not_computed


def markdown_table(results: dict) -> str:
    """The table as GitHub Markdown; [low, high] are 95% intervals (half-sampling for the
    set-level metrics, the bootstrap for per-sample means: docs/evaluation.md); below it, a
    note on the classifier's test accuracy where its record holds one, one per set whose
    samples share a random field (:func:`shared_field_notes`) and one per cell without a value
    (:func:`missing_notes`)."""
    notes = [
        n
        for n in (classifier_note(results), *shared_field_notes(results), *missing_notes(results))
        if n
    ]
    return markdown(*table(results)) + "".join(f"\n{note}\n" for note in notes)


def html_table(results: dict) -> str:
    """The same table as an HTML <table> (escaped; no styling beyond the page's CSS)."""
    header, rows = table(results)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
