"""One side-by-side table of an evaluation's metrics: rows = metrics, columns = runs.

Read from the dict that ``evaluate`` writes to metrics.json, so that the Markdown table
(metrics.md) and the HTML pages show exactly the same cells.
"""

from __future__ import annotations

import html

# (key in metrics.json, row name shown, digits after the point)
ROWS = [
    ("total_variance", "total variance (report)", 2),
    ("kl_faithful", "KL, report's grid sum", 3),
    ("kl_grid_normalised", "KL, normalised grid", 3),
    ("kl_monte_carlo", "KL, Monte Carlo", 3),
    ("frechet_distance", "Fréchet distance (classifier features)", 2),
    ("kid", "KID (mean ± std over subsets)", 4),
    ("precision", "precision (k=3)", 3),
    ("recall", "recall (k=3)", 3),
    ("class_entropy", "class entropy (nats, max 2.303)", 3),
    ("mean_confidence", "mean classifier confidence", 3),
    ("recognisable_fraction", "recognisable fraction (conf. >= 0.9)", 3),
    ("frame_mean", "frame mean (outer 3 px, /255)", 2),
    ("frame_above_5", "fraction of frames above 5/255", 3),
    ("mid_grey_fraction", "mid-grey pixel fraction (25..230)", 3),
    ("memorisation_median_distance", "median distance to nearest train image", 3),
    ("memorisation_ratio", "memorisation ratio (sample / test median)", 3),
    ("memorisation_below_test_p1", "fraction below test 1st percentile", 3),
]


def cell(entry: dict, digits: int) -> str:
    """'value [low, high]', with '± std' for KID and '(no CI)' where no interval was possible;
    'not computed' where the metric itself could not be (metrics.json's note says why)."""
    if entry["value"] is None:
        return "not computed"

    def number(x: float) -> str:
        return f"{x + 0.0:.{digits}f}"  # + 0.0 turns -0.0 (entropy of one class) into 0.0

    text = number(entry["value"])
    if "std" in entry:
        text += f" ± {number(entry['std'])}"
    if entry["ci"] is None:
        return text + " (no CI)"
    low, high = entry["ci"]
    return f"{text} [{number(low)}, {number(high)}]"


def table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header (metric column + one per run) and rows of cell strings, n first; then, where
    ``results`` has a ``reference`` (the test images' own values), a column of those values for
    the metrics that need no reference set and "" for the others. A metric that an older
    metrics.json lacks shows "–"."""
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
    for key, name, digits in ROWS:
        cells = [
            cell(run["metrics"][key], digits) if key in run["metrics"] else "–"
            for run in runs.values()
        ]
        value = reference["values"].get(key) if reference else None
        rows.append(row(name, cells, "" if value is None else f"{value + 0.0:.{digits}f}"))
    histograms = [
        "–" if run["class_histogram"] is None else " ".join(map(str, run["class_histogram"]))
        for run in runs.values()
    ]
    rows.append(row("class histogram (digits 0-9)", histograms, ""))
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """Any header and rows of cell strings as a GitHub Markdown table, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_table(results: dict) -> str:
    """The table as GitHub Markdown; [low, high] are 95% intervals (half-sampling for the
    set-level metrics, the bootstrap for per-sample means: docs/evaluation.md)."""
    return markdown(*table(results))


def html_table(results: dict) -> str:
    """The same table as an HTML <table> (escaped; no styling beyond the page's CSS)."""
    header, rows = table(results)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
