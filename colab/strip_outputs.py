"""Strips outputs, execution counts and run metadata from notebooks, in place.

  python colab/strip_outputs.py [NOTEBOOK.ipynb ...]   (default: every notebook in colab/)
"""
from __future__ import annotations

import glob
import os
import sys

import nbformat

RUN_METADATA = ("execution", "collapsed", "scrolled")


def strip(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
  """The notebook without outputs, execution counts and per-cell run metadata."""
  for cell in notebook.cells:
    for key in RUN_METADATA:
      cell.metadata.pop(key, None)
    if cell.cell_type == "code":
      cell.outputs = []
      cell.execution_count = None
  notebook.metadata.pop("widgets", None)
  return notebook


def main(paths: list[str]) -> None:
  paths = paths or sorted(glob.glob(os.path.join(os.path.dirname(__file__), "*.ipynb")))
  for path in paths:
    notebook = strip(nbformat.read(path, as_version=4))
    nbformat.write(notebook, path)
    print(f"stripped {path}")


if __name__ == "__main__":
  main(sys.argv[1:])
