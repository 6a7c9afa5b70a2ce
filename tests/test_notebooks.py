"""The colab/ notebooks: each runs top to bottom with DMR_PRESET=smoke in a kernel of this Python
(the venv's) and shows its figures; the repository stores them without outputs."""
import glob
import json
import os
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import REPO

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "colab", "*.ipynb")))
KERNEL = "dmr-tests"
CELL_TIMEOUT = 600  # seconds: generous, for a loaded machine
WHICH_PYTHON = "import sys; print(sys.executable)"


def install_kernel_spec(jupyter_dir) -> None:
  """A kernel spec named KERNEL that starts this Python, found through JUPYTER_PATH."""
  spec_dir = jupyter_dir / "kernels" / KERNEL
  spec_dir.mkdir(parents=True)
  spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
          "display_name": "dmr tests", "language": "python"}
  (spec_dir / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def kernel_environment(tmp_path_factory):
  """The environment of the notebook kernels: smoke preset, one CPU device, and a compilation
  cache shared by the notebooks (they compile the same training and attack steps)."""
  root = tmp_path_factory.mktemp("notebooks")
  install_kernel_spec(root / "jupyter")
  with pytest.MonkeyPatch.context() as env:
    env.setenv("JUPYTER_PATH", str(root / "jupyter"))
    env.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
    env.setenv("IPYTHONDIR", str(root / "ipython"))
    env.setenv("DMR_PRESET", "smoke")
    env.setenv("JAX_PLATFORMS", "cpu")
    env.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    env.setenv("JAX_COMPILATION_CACHE_DIR", str(root / "jax-cache"))
    env.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    yield


def draws(cell) -> bool:
  """The cell shows a figure or an image: plt.show(), a helper named show..., Image(...)."""
  return re.search(r"show\w*\(|Image\(", cell.source) is not None


def shows_an_image(cell) -> bool:
  return any("image/png" in output.get("data", {}) for output in cell.outputs)


def execute(notebook: nbformat.NotebookNode, cwd) -> None:
  """Runs every cell in a fresh kernel; raises nbclient's CellExecutionError on a failing cell."""
  NotebookClient(notebook, kernel_name=KERNEL, timeout=CELL_TIMEOUT,
                 resources={"metadata": {"path": str(cwd)}}).execute()


@pytest.mark.slow  # a kernel per notebook; the default suite checks how they are stored
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_top_to_bottom_with_the_smoke_preset(path, kernel_environment, tmp_path):
  notebook = nbformat.read(path, as_version=4)
  notebook.cells.append(nbformat.v4.new_code_cell(WHICH_PYTHON))
  execute(notebook, tmp_path)
  assert notebook.cells[-1].outputs[0]["text"].strip() == sys.executable
  drawing = [cell for cell in notebook.cells if cell.cell_type == "code" and draws(cell)]
  assert drawing and all(shows_an_image(cell) for cell in drawing), "a figure was not shown"


def test_a_failing_cell_fails_the_run(kernel_environment, tmp_path):
  notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")])
  with pytest.raises(Exception, match="ZeroDivisionError"):
    execute(notebook, tmp_path)


def test_there_are_three_notebooks():
  assert [os.path.basename(p) for p in NOTEBOOKS] == [
      "01_quickstart.ipynb", "02_attacks_in_your_model.ipynb", "03_reproduce_a_claim.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_stored_without_outputs(path):
  notebook = nbformat.read(path, as_version=4)
  nbformat.validate(notebook)
  code = [cell for cell in notebook.cells if cell.cell_type == "code"]
  assert code and all(not cell.outputs and cell.execution_count is None for cell in code), (
      f"run `python colab/strip_outputs.py {os.path.relpath(path, REPO)}`")


def test_strip_outputs_empties_outputs_and_counts(tmp_path):
  cell = nbformat.v4.new_code_cell("print(1)", execution_count=3,
                                   outputs=[nbformat.v4.new_output("stream", text="1\n")])
  path = tmp_path / "run.ipynb"
  nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
  subprocess.run([sys.executable, os.path.join(REPO, "colab", "strip_outputs.py"), str(path)],
                 check=True, capture_output=True)
  stripped = nbformat.read(path, as_version=4).cells[0]
  assert stripped.outputs == [] and stripped.execution_count is None
  assert stripped.source == "print(1)"
