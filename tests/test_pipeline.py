"""End-to-end runs of every stage: FONTS smoke (default suite) and Fashion-MNIST smoke (slow)."""
import json
import os

import pytest

from dmr.data import fashion_mnist
from tests.helpers import main_command, run_main

SUCCESS_FIELDS = ("off_manifold_success", "off_manifold_success_any", "on_manifold_success",
                  "on_manifold_success_any")


def check_run(workdir: str, variants: set, manifold_kind: str) -> str:
  with open(os.path.join(workdir, "results.json")) as f:
    res = json.load(f)
  assert {r["variant"] for r in res["records"]} == variants
  for r in res["records"]:
    assert 0.0 <= r["test_error"] <= 1.0
    for field in SUCCESS_FIELDS:
      assert 0.0 <= r[field] <= 1.0, (field, r)
    # The worst case over restarts is never below the paper's average over restarts.
    assert r["off_manifold_success_any"] >= r["off_manifold_success"]
    assert r["on_manifold_success_any"] >= r["on_manifold_success"]
  distances = res["manifold"][manifold_kind]
  assert distances["test_distance"] >= 0 and distances["off_adversarial_distance"] > 0
  assert 0.0 <= res["manifold"]["local"]["angle_degrees"] <= 90.0
  with open(os.path.join(workdir, "report", "report.md")) as f:
    report = f.read()
  for figure in ("test_error_vs_n.png", "on_manifold_success_vs_n.png", "distances.png",
                 "examples.png"):
    assert os.path.exists(os.path.join(workdir, "report", figure)), figure
    assert f"({figure})" in report
  return report


def test_fonts_smoke_runs_every_stage(tmp_path):
  workdir = str(tmp_path)
  out = run_main(workdir, config="configs/fonts.py:smoke")
  assert f"Report: {workdir}/report/report.md" in out.stdout
  report = check_run(workdir, {"normal", "off_adv", "stn_augm", "stn_adv", "on_adv_true"},
                     "true")
  assert "4. Robustness and generalization are not contradicting: **" in report
  rerun = run_main(workdir, config="configs/fonts.py:smoke")
  assert "skip distances: finished" in rerun.stderr


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_fashion_smoke_runs_every_stage(tmp_path):
  workdir = str(tmp_path)
  run_main(workdir)
  report = check_run(workdir, {"normal", "off_adv", "on_adv_learned"}, "learned")
  assert "1. Regular adversarial examples leave the manifold: **" in report
