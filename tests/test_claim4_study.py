"""launch/claim4_study.py's pure parts: cells, commands, intervals, summaries, log times."""
import importlib.util
import json
import math
import os

import numpy as np
import pytest

from dmr import config as dmr_config

_PATH = os.path.join(os.path.dirname(__file__), "..", "launch", "claim4_study.py")
_spec = importlib.util.spec_from_file_location("claim4_study", _PATH)
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)


def test_parse_cell_names_its_workdir_and_refuses_bad_cells():
  cell = study.parse_cell("paper40:20000:20:3")
  assert cell == study.Cell("paper40", 20000, 20, 3)
  assert cell.name == "paper40_n20000_e20"
  for bad in ("paper40:20000:20", "pgd7:5000:10:3", "sign10:0:10:3", "sign10:5k:10:3"):
    with pytest.raises(SystemExit, match="ATTACK:N:EPOCHS:SEEDS"):
      study.parse_cell(bad)


@pytest.mark.parametrize("name", sorted(study.TRAINING_ATTACKS))
def test_every_training_attack_reaches_the_eps_ball(name):
  """dmr.config refuses a training attack with steps x step_size < eps: every one passes."""
  a = study.TRAINING_ATTACKS[name]
  c = dmr_config.base("fonts", "claims")
  assert a["steps"] * a["step_size"] >= c.adversarial_training.off_eps * (1 - 1e-6)


def test_cell_command_trains_one_variant_with_its_attack_and_enough_data():
  argv = study.cell_command(study.Cell("sign20", 40000, 20, 3), "/w", "py")
  assert argv[:4] == ["py", "-m", "dmr.main", "--config=configs/fonts.py:claims"]
  for flag in ("--workdir=/w", "--config.variants=('off_adv',)", "--config.training_sizes=(40000,)",
               "--config.models_per_size=3", "--config.train.epochs=20",
               "--config.data.num_train=40000", "--config.adversarial_training.steps=20",
               "--config.adversarial_training.optimizer=sign",
               "--config.adversarial_training.step_size=0.0375",
               "--config.attack.cross_check=('apgd-ce','apgd-t')"):
    assert flag in argv
  normal = study.cell_command(study.Cell("normal", 5000, 10, 3), "/w", "py")
  assert "--config.variants=('normal',)" in normal
  assert "--config.data.num_train=20000" in normal  # The claims preset's, below it.
  assert not any("adversarial_training" in a for a in normal)


def test_t_interval_matches_students_t():
  e = study.t_interval([0.1, 0.2, 0.3])
  half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) x SD / sqrt(3)
  assert e.value == pytest.approx(0.2)
  assert (e.low, e.high) == pytest.approx((0.2 - half, 0.2 + half))
  single = study.t_interval([0.4])
  assert single.value == 0.4 and math.isnan(single.low) and math.isnan(single.high)


def test_paired_image_interval_and_wilson():
  a = np.array([1, 1, 0, 0] * 25, bool)
  b = np.array([1, 0, 0, 0] * 25, bool)
  e = study.paired_image_interval(a, b)
  d = a.astype(float) - b
  half = 1.959963984540054 * d.std(ddof=1) / 10
  assert (e.value, e.low, e.high) == pytest.approx((0.25, 0.25 - half, 0.25 + half))
  w = study.wilson(0, 100)
  assert w.value == 0 and w.low == pytest.approx(0, abs=1e-12)
  assert w.high == pytest.approx(0.0370, abs=1e-4)


def _records(errors_normal, errors_adv, union):
  records = []
  for seed, (en, ea, u) in enumerate(zip(errors_normal, errors_adv, union)):
    records.append({"variant": "normal", "n": 5000, "seed": seed, "test_error": en})
    records.append({"variant": "off_adv", "n": 5000, "seed": seed, "test_error": ea,
                    "off_manifold_success_any": u - 0.1, "off_manifold_cross_check_success": u,
                    "off_manifold_combined_success_any": u, "off_manifold_evaluated": 500,
                    "off_manifold_correct": 400})
  return records


def test_summarize_pairs_seeds_and_judges_the_claim():
  records = _records([0.20, 0.22, 0.24], [0.21, 0.24, 0.24], [0.10, 0.12, 0.14])
  records.append({"variant": "off_adv", "n": 5000, "seed": 3, "test_error": 0.5})  # Not attacked.
  s = study.summarize(records)
  assert s["seeds"] == 3 and s["attacked_images"] == 500
  assert s["gap"] == pytest.approx(study.t_interval([0.01, 0.02, 0.0]))
  assert s["union"].value == pytest.approx(0.12)
  assert s["paper"].value == pytest.approx(0.02)
  assert study.shows_claim(s, max_gap=0.1, max_success=0.25)
  assert not study.shows_claim(s, max_gap=0.03, max_success=0.25)  # Gap's bound 4.5 points.
  assert not study.shows_claim(s, max_gap=0.1, max_success=0.15)
  two = study.summarize(records[:4])
  assert two["seeds"] == 2 and not study.shows_claim(two, max_gap=1, max_success=1)
  assert study.summarize(records[:1]) is None


def test_summarize_one_seed_uses_images():
  records = _records([0.2], [0.25], [0.1])
  wrong = {"normal": np.array([1, 0, 0, 0] * 50, bool),
           "off_adv": np.array([1, 1, 0, 0] * 50, bool)}
  s = study.summarize(records, lambda r: wrong[r["variant"]])
  assert s["gap"] == study.paired_image_interval(wrong["off_adv"], wrong["normal"])
  assert s["union"] == study.wilson(40, 400)


def test_model_seconds_times_each_model_from_the_previous_event():
  log = [
      "I1207 16:29:07.000000 1 main.py:238] stage classifiers",
      "W1207 16:29:08.000000 1 _p_o_s_t.py:310] 1 extra bytes",
      "I1207 16:30:55.500000 1 experiments.py:142] normal n=5000 seed=0: test error 0.2350",
      "I1207 16:32:05.500000 1 experiments.py:142] off_adv n=5000 seed=0: test error 0.3",
      "I1207 23:59:59.000000 1 main.py:238] stage attacks",
      "I1207 00:01:00.000000 1 experiments.py:303] off_adv n=5000 seed=0: off-manifold 40.0%",
  ]
  assert study.model_seconds(log) == {("classifiers", "normal", 0): pytest.approx(108.5),
                                      ("classifiers", "off_adv", 0): pytest.approx(70.0),
                                      ("attacks", "off_adv", 0): pytest.approx(61.0)}


def _write_cell(root, name, records):
  os.makedirs(root / name)
  for r in records:
    r["outcomes"] = f"{r['variant']}{r['seed']}.npz"
    np.savez(root / name / r["outcomes"], test_correct=np.arange(200) % (4 + r["seed"]) != 0)
  (root / name / "results.json").write_text(json.dumps({"records": records}))


def test_load_cell_pairs_off_adv_with_the_normal_models_of_another_cell(tmp_path):
  """A cell training off_adv alone takes the normal models of the same N and epochs from the
  NORMAL cell, else from any other cell (and never those of other epochs)."""
  both = _records([0.2], [0.3], [0.5])
  _write_cell(tmp_path, "sign10_n5000_e10", both)
  _write_cell(tmp_path, "paper40_n5000_e10", _records([0.9], [0.25], [0.4])[1:])
  _write_cell(tmp_path, "normal_n5000_e20", _records([0.1], [0.1], [0.1])[:1])
  s = study.load_cell(study.Cell("paper40", 5000, 10, 1), str(tmp_path))
  assert s["normal_error"].value == 0.2 and s["off_adv_error"].value == 0.25
  assert s["union"] == study.wilson(160, 400)
  assert study.load_cell(study.Cell("paper40", 5000, 20, 1), str(tmp_path)) is None
  _write_cell(tmp_path, "normal_n5000_e10", _records([0.15], [0.0], [0.0])[:1])
  shared = study.load_cell(study.Cell("paper40", 5000, 10, 1), str(tmp_path))
  assert shared["normal_error"].value == 0.15  # The NORMAL cell's first.


def test_rate_intervals_stay_within_zero_and_one():
  s = study.summarize(_records([0.2, 0.2, 0.2], [0.2, 0.2, 0.2], [0.99, 1.0, 0.9]))
  assert s["union"].high == 1.0 and s["union"].low < 1.0
