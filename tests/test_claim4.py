"""Claim 4's own model family (config.claim4) and the cross-check attack (attack.cross_check):
the validated config, the union of the two attacks, the family's records kept out of claims 1-3,
the run plan and fingerprint, and an end-to-end FONTS smoke run."""
import json
import os
import types

import numpy as np
import pytest

from dmr import config, fingerprint, outcomes, plan, report, results, robustness, stats
from dmr.errors import UserError
from tests.helpers import get_config, run_main


@pytest.mark.parametrize("field, value, message", [
    ("claim4.architecture", "resnt", "config.claim4.architecture='resnt' is invalid; allowed: None "
     "(claim 4 uses the sweep's models) or one of ['conv', 'mlp', 'resnet', 'vgg']."),
    ("claim4.epochs", 0, "config.claim4.epochs=0 is invalid; allowed: None (train.epochs) or a "
     "positive integer."),
    ("claim4.training_size", 5000, "config.claim4.training_size=5000 is invalid; allowed: sizes up "
     "to 1000, the size of the training set."),
    ("attack.cross_check", (), "config.attack.cross_check=() is invalid; allowed: None or a "
     "non-empty tuple of ('apgd-ce', 'apgd-dlr', 'apgd-t', 'square')."),
    ("attack.cross_check", ("apgd-x",), "config.attack.cross_check=('apgd-x',) is invalid"),
])
def test_claim4_and_cross_check_fields_are_validated(field, value, message):
  c = get_config("fonts", "smoke")
  config._set(c, field, value)
  with pytest.raises(UserError) as e:
    config.validate(c)
  assert str(e.value).startswith(message)


def test_square_cross_check_is_linf_only_and_presets_set_claim4_for_fonts_paper_only():
  c = get_config("fonts", "smoke")
  c.attack.norm, c.attack.cross_check = "l2", ("square",)
  with pytest.raises(UserError, match=r"\('apgd-ce', 'apgd-dlr', 'apgd-t'\) \(square: linf only\)"):
    config.validate(c)
  paper = get_config("fonts", "paper")
  config.validate(paper)
  assert (paper.claim4.architecture, paper.claim4.epochs, paper.attack.cross_check) == (
      "resnet", 80, ("apgd-ce", "apgd-t"))
  for dataset, preset in (("fonts", "quick"), ("fonts", "claims"), ("fashion", "paper")):
    c = get_config(dataset, preset)
    assert (c.claim4.architecture, c.attack.cross_check) == (None, None), (dataset, preset)


def test_union_counts_an_input_broken_by_either_attack():
  # 4 inputs, 2 restarts of the paper's attack; input 3 is misclassified (not counted).
  paper = np.array([[1, 0], [0, 0], [0, 0], [1, 1]], bool)
  cross = np.array([0, 1, 0, 1], bool)
  correct = np.array([1, 1, 1, 0], bool)
  combined = robustness.union(paper, cross)
  np.testing.assert_array_equal(combined, [[1, 0], [1, 1], [0, 0], [1, 1]])
  assert robustness.rates(paper, correct).success == pytest.approx(1 / 6)
  assert robustness.rates(cross[:, None], correct).success == pytest.approx(1 / 3)
  assert robustness.rates(combined, correct).success == pytest.approx(3 / 6)
  assert robustness.rates(combined, correct).success_any == pytest.approx(2 / 3)
  # The report's off-manifold success reads the union when the model has one.
  arrays = {"off_correct": correct, "off_success": paper.T, "off_cross_success": cross,
            "off_combined_success": combined.T}
  np.testing.assert_allclose(report.PER_IMAGE["off_manifold_success"](arrays), [.5, 1, 0])
  np.testing.assert_allclose(report.PER_IMAGE["off_manifold_paper_success"](arrays), [.5, 0, 0])
  np.testing.assert_allclose(report.PER_IMAGE["off_manifold_cross_check_success"](arrays),
                             [0, 1, 0])


def test_a_family_record_is_its_own_model(tmp_path):
  results.update_record(tmp_path, "normal", 200, 0, test_error=0.1)
  results.update_record(tmp_path, "normal", 200, 0, "claim4", test_error=0.2)
  results.update_record(tmp_path, "normal", 200, 0, off_manifold_success=0.5)
  assert results.find_record(tmp_path, "normal", 200, 0) == {
      "variant": "normal", "n": 200, "seed": 0, "test_error": 0.1, "off_manifold_success": 0.5}
  assert results.find_record(tmp_path, "normal", 200, 0, "claim4")["test_error"] == 0.2
  assert [r.get("family") for r in results.load(tmp_path)["records"]] == [None, "claim4"]


TEST, ATTACKED = 400, 200


def add(workdir, variant, error, off, family=None, on=0.3):
  """A model (variant, N=1000, seed 0) of `family` misclassifying the first `error` share of the
  test images, the regular attack fooling the first `off` share, the on-manifold one `on`."""
  wrong = np.arange(TEST) < error * TEST
  fooled = np.tile(np.arange(ATTACKED) < off * ATTACKED, (2, 1))
  directory = os.path.join("models", *([family] if family else []), variant, "n1000", "seed0")
  outcomes.save(os.path.join(workdir, directory), test_correct=~wrong,
                off_correct=np.ones(ATTACKED, bool), off_success=fooled,
                on_true_evaluated=np.ones(ATTACKED, bool), on_true_correct=np.ones(ATTACKED, bool),
                on_true_success=np.tile(np.arange(ATTACKED) < on * ATTACKED, (2, 1)))
  fields = {"architecture": "resnet", "epochs": 80} if family else {}
  results.update_record(workdir, variant, 1000, 0, family, test_error=float(wrong.mean()),
                        off_manifold_success=off, on_manifold_success=on, fingerprint="f",
                        outcomes=os.path.join(directory, outcomes.FILENAME), **fields)


def test_claim4_family_judges_claim4_and_stays_out_of_claims_1_to_3(tmp_path):
  add(tmp_path, "normal", 0.10, 0.9, on=0.40)
  add(tmp_path, "on_adv_true", 0.12, 0.9)
  add(tmp_path, "normal", 0.30, 0.95, family="claim4", on=0.02)
  add(tmp_path, "off_adv", 0.31, 0.05, family="claim4")
  path = report.write_report(str(tmp_path), "fonts")
  text = open(path).read()
  got = {c["claim"]: c for c in json.load(open(tmp_path / "report" / "claims.json"))["groups"][0]
         ["claims"]}
  # Claim 2: the sweep's normal model alone (on-manifold success 40%, not the family's 2%).
  assert got[2]["evidence"].startswith("on-manifold attacks fool the normal models of N=1000 on "
                                       "40.0% [")
  assert "over 1 model " in got[2]["evidence"]
  # Claim 3: the sweep's test error change, +2 points (not against the family's 30%).
  assert "on_adv_true training changes test error by +2.0 points" in got[3]["evidence"]
  # Claim 4 on the family: gap +1 point, success 5%; the sweep has no off_adv model at all. One
  # seed and no cross-check attack cannot show an existence claim.
  assert got[4]["evidence"].startswith("claim 4's own models (resnet, 80 epochs) at N=1000 "
                                       "(1 seed): off_adv changes test error by +1.0 points")
  assert "succeeds on 5.0% [" in got[4]["evidence"]
  assert ("succeeds on 5.0% [2.7, 9.0], counting the paper's attack alone (does not show it: 1 "
          "seed, fewer than 3; no cross-check attack") in got[4]["evidence"]
  assert got[4]["verdict"] == stats.NOT_SHOWN
  results_table = text.split("## Results")[1].split("## The claim4 family")[0]
  assert "| normal | 1000 | 1 | 10.0% [" in results_table
  assert "off_adv" not in results_table and "30.0% [25.7" not in results_table
  family_table = text.split("## The claim4 family")[1].split("## Figures")[0]
  assert "| off_adv | 1000 | 1 | 31.0% [" in family_table
  assert "4 models from 1 workdir" in text


def test_plan_and_fingerprint_know_the_claim4_family(tmp_path):
  c = get_config("fonts", "smoke")
  c.variants, c.training_sizes, c.models_per_size = ("normal",), (300, 200), 1
  c.stages, c.manifolds = ("classifiers", "attacks"), ("true",)
  before = fingerprint.result_fields(c)
  assert not any(k.startswith("claim4") or k == "attack.cross_check" for k in before)
  c.claim4.architecture, c.claim4.epochs = "mlp", 3
  c.attack.cross_check = ("apgd-ce", "apgd-t")
  after = fingerprint.result_fields(c)
  assert fingerprint.differences(before, after) == [
      "attack.cross_check: '(unset)' -> ['apgd-ce', 'apgd-t']",
      "claim4.architecture: '(unset)' -> 'mlp'", "claim4.epochs: '(unset)' -> 3"]
  c.claim4.training_size = 200  # Chooses which models exist, as training_sizes does.
  assert fingerprint.result_fields(c) == after
  ds = types.SimpleNamespace(num_classes=10, image_shape=(28, 28, 1))
  units = plan.make(c, str(tmp_path), ds)
  train = {u.name: u for u in units if u.stage == "classifiers"}
  sweep, family = train["normal n=300 seed=0"], train["claim4 off_adv n=200 seed=0"]
  assert sweep.steps == 1 * 3 and family.steps == 3 * 2  # epochs x batches of 100
  assert family.checkpoint_bytes != sweep.checkpoint_bytes  # the MLP's state, not the conv's
  assert list(train) == ["normal n=300 seed=0", "normal n=200 seed=0",
                         "claim4 normal n=200 seed=0", "claim4 off_adv n=200 seed=0"]
  attack = [u for u in units if u.stage == "attacks"]
  assert [u.name for u in attack] == ["normal n=200 seed=0", "normal n=300 seed=0",
                                      "claim4 normal n=200 seed=0", "claim4 off_adv n=200 seed=0"]
  # 40 images in one batch: 3 steps x 2 restarts off and on the manifold, then APGD-CE (100
  # steps) and APGD-T (100 steps for each of 9 target classes).
  assert attack[0].steps == 12 + 100 + 900


@pytest.mark.slow  # end to end; the unit tests above cover each piece
def test_fonts_smoke_trains_attacks_and_reports_the_claim4_family(tmp_path):
  workdir = str(tmp_path / "run")
  run_main(workdir, "--config.stages=('classifiers','attacks','report')",
           "--config.variants=()", "--config.manifolds=('true',)",
           "--config.claim4.architecture=mlp", "--config.claim4.epochs=1",
           "--config.attack.cross_check=('apgd-ce','apgd-t')", "--config.attack.num_test=20",
           "--config.on_manifold_attack.num_test=20", "--config.progress=False",
           config="configs/fonts.py:smoke")
  records = results.load(workdir)["records"]
  assert [(r["family"], r["variant"], r["n"], r["architecture"], r["epochs"]) for r in records] == [
      ("claim4", "normal", 200, "mlp", 1), ("claim4", "off_adv", 200, "mlp", 1)]
  for r in records:
    assert r["outcomes"] == f"models/claim4/{r['variant']}/n200/seed0/outcomes.npz"
    o = outcomes.load(os.path.join(workdir, os.path.dirname(r["outcomes"])))
    np.testing.assert_array_equal(o["off_combined_success"],
                                  o["off_success"] | o["off_cross_success"][None])
    rates = robustness.rates(o["off_combined_success"].T, o["off_correct"])
    assert (r["off_manifold_combined_success"], r["off_manifold_cross_check"]) == (
        rates.success, ["apgd-ce", "apgd-t"])
  claim = json.load(open(os.path.join(workdir, "report", "claims.json")))["groups"][0]["claims"][3]
  assert claim["evidence"].startswith("claim 4's own models (mlp, 1 epoch) at N=200 (")
  assert ("counting the paper's attack or the cross-check apgd-ce, apgd-t, whichever breaks the "
          "input (the paper's attack alone: ") in claim["evidence"]


def test_claim1_reference_model_is_never_a_family_model(tmp_path):
  from dmr import experiments
  results.update_record(tmp_path, "normal", 200, 0, test_error=0.5)
  results.update_record(tmp_path, "normal", 1000, 0, "claim4", test_error=0.1)
  assert experiments.reference_model(str(tmp_path)) == {"variant": "normal", "n": 200, "seed": 0}
