"""docs/lecture.ipynb runs top to bottom (on its tiny setting) and is committed clean."""

import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "lecture.ipynb"
TINY_ENV = "KNOBSIM_NOTEBOOK_TINY"  # the notebook's one switch: every run a few steps
TIMEOUT_S = 300  # per cell; the whole notebook takes well under a minute when tiny


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, (f"code cells {dirty} of {NOTEBOOK.name} have outputs: clear them "
                       "(jupyter nbconvert --clear-output --inplace docs/lecture.ipynb)")


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv(TINY_ENV, "1")  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel python:', sys.executable)"))
    # kernel "python3" is this interpreter's own ipykernel: jupyter_client starts the spec's
    # "python" as sys.executable, so the notebook imports the knobsim under test.
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.time()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    wall = time.time() - t0
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = "\n".join(_text(c) for c in code)
    assert _text(code[-1]).strip() == f"kernel python: {sys.executable}"
    assert "setting: TINY" in text
    assert "L(N) fit: E = " in text and "the exact floor is" in text
    pngs = sum(1 for c in code for o in c.outputs if "image/png" in o.get("data", {}))
    assert pngs >= 6, f"expected every figure of the lecture, got {pngs}"
    assert (tmp_path / "lecture-runs" / "transformer" / "figures" / "dials.png").exists()
    assert (tmp_path / "lecture-runs" / "sweep" / "results.csv").exists()
    print(f"notebook ran in {wall:.0f} s")
