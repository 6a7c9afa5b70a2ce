"""End-to-end smoke run of `python -m dmr.main` on real Fashion-MNIST: the run contract."""
import json
import os

import pytest

from dmr.data import fashion_mnist
from tests.helpers import CLASSIFIERS_ONLY, run_main


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_smoke_run_writes_the_run_contract(tmp_path):
  workdir = str(tmp_path)
  out = run_main(workdir, *CLASSIFIERS_ONLY, "--config.training_sizes=(500,)", "--config.train.epochs=2")
  assert f"Results: {workdir}/results.json" in out.stdout
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  assert config["dataset"] == "fashion_mnist" and config["training_sizes"] == [500]
  with open(os.path.join(workdir, "results.json")) as f:
    records = json.load(f)["records"]
  assert [(r["variant"], r["n"], r["seed"]) for r in records] == [("normal", 500, 0)]
  # 500 real images, 2 epochs: far better than chance (0.9), far from perfect.
  assert 0.05 < records[0]["test_error"] < 0.5
  metrics_file = os.path.join(workdir, "models", "normal", "n500", "seed0", "metrics.jsonl")
  with open(metrics_file) as f:
    metrics = [json.loads(line) for line in f]
  assert metrics[-1]["step"] == 10 and metrics[-1]["loss"] < metrics[0]["loss"]
