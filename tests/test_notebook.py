"""examples/quickstart.ipynb runs top to bottom (on a tiny budget), as a student would run it."""

from __future__ import annotations

from pathlib import Path

import nbclient  # dev dependencies: make test installs them, so a missing one fails loudly
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
TINY = """MAX_STEPS = 30
RUN = "runs/notebook-quickstart"
N_EVAL = 20
TSNE_REFERENCE = 60
TEST_REFERENCE = 100
DEVICE = "cpu"
"""


@pytest.mark.slow
def test_the_quickstart_notebook_runs_every_cell(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = TINY
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError naming the cell that failed
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # the data, samples, sevens twice, the reverse process
    table = notebook.cells[-1].outputs[-1]["data"]
    assert "Fréchet" in table.get("text/markdown", table.get("text/plain", ""))
    assert (tmp_path / "runs" / "notebook-quickstart" / "checkpoints" / "latest.pt").is_file()
