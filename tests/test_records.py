"""Typed records: every outcome type round-trips through the field names results.json stores, on
real records of smoke runs (tests/data/: Fashion-MNIST; FONTS; FONTS with claim 4's own family
and the cross-check), and builds from the per-input outcomes of dmr.robustness with the numbers
its rates give."""
import json
import os

import numpy as np
import pytest

from dmr import records, results, robustness
from dmr.records import AttackOutcomes, AttackRates, CrossCheck, ModelKey

DATA = os.path.join(os.path.dirname(__file__), "data")
SMOKE = ("smoke-fashion", "smoke-fonts", "smoke-claim4")  # claim4: cross-check and family


def smoke_records(name: str) -> list[dict]:
  return results.load(os.path.join(DATA, name))["records"]


def attack_fields(record: dict) -> dict:
  """The fields of a record the attack outcomes own."""
  prefixes = (records.OFF, "on_")
  return {k: v for k, v in record.items() if k.startswith(prefixes) and k != "outcomes"}


@pytest.mark.parametrize("name", SMOKE)
def test_attack_outcomes_of_real_records_round_trip_to_the_same_fields(name):
  attacked = [r for r in smoke_records(name) if records.is_attacked(r)]
  assert attacked
  for record in attacked:
    outcomes = AttackOutcomes.parse(record)
    assert outcomes.fields() == attack_fields(record)
    assert AttackOutcomes.parse(outcomes.fields()) == outcomes
    assert outcomes.off.success == record["off_manifold_success"]
    for kind, rates in outcomes.on:
      assert rates == AttackRates.parse(record, f"on_{kind}")
      assert rates.fields(f"on_{kind}")[f"on_{kind}_verified"] == record[f"on_{kind}_verified"]


def test_fonts_smoke_records_every_kind_and_the_first_kind_copy():
  record = next(r for r in smoke_records("smoke-fonts") if records.is_attacked(r))
  outcomes = AttackOutcomes.parse(record)
  assert [kind for kind, _ in outcomes.on] == ["true", "learned", "learned_agnostic"]
  assert outcomes.on_rates() == outcomes.on_rates("true")
  assert outcomes.on_rates("true").fields("on_manifold") == {
      k: v for k, v in record.items() if k.startswith("on_manifold_")}


def test_a_record_without_the_first_kind_copy_parses_the_same():
  record = next(r for r in smoke_records("smoke-fashion") if records.is_attacked(r))
  trimmed = {k: v for k, v in record.items() if not k.startswith("on_manifold_")}
  assert AttackOutcomes.parse(trimmed) == AttackOutcomes.parse(record)


def test_records_before_kind_specific_fields_give_their_on_manifold_rates():
  """Records of the first versions: rates only, on_manifold_* without a kind."""
  old = {"variant": "normal", "n": 500, "seed": 0, "test_error": 0.2,
         "off_manifold_success": 0.9, "off_manifold_correct": 80,
         "on_manifold_success": 0.3, "on_manifold_success_any": 0.4}
  outcomes = AttackOutcomes.parse(old)
  assert outcomes.off == AttackRates(0.9, correct=80)
  assert outcomes.on == ((None, AttackRates(0.3, 0.4)),)
  assert outcomes.on_rates().success == 0.3
  assert records.is_trained(old) and not records.is_attacked(old)  # the attacks stage redoes it


def test_trained_and_attacked_follow_the_stages():
  trained = {"variant": "normal", "n": 200, "seed": 0, "test_error": 0.5}
  assert records.is_trained(trained) and not records.is_attacked(trained)
  assert AttackOutcomes.parse(trained) is None
  assert not records.is_trained({"variant": "normal", "n": 200, "seed": 0})
  for name in SMOKE:
    for r in smoke_records(name):
      assert records.is_trained(r)
      assert records.is_attacked(r) == ("off_manifold_success" in r)


def test_attack_rates_of_an_outcome_count_correct_inputs_only():
  # 4 inputs, 2 restarts; input 0 misclassified: its successes do not count.
  correct = np.array([0, 1, 1, 1], bool)
  success = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], bool)
  rates = AttackRates.of(robustness.Outcome(correct, success, verified=2, rejected=1))
  assert (rates.success, rates.success_any) == pytest.approx((2 / 6, 2 / 3))  # float32 rates
  assert rates == AttackRates(rates.success, rates.success_any, evaluated=4, correct=3,
                              success_per_restart=(1, 1), verified=2, rejected=1)
  assert rates.fields("on_true") == {
      "on_true_success": rates.success, "on_true_success_any": rates.success_any,
      "on_true_evaluated": 4,
      "on_true_correct": 3, "on_true_success_per_restart": [1, 1], "on_true_verified": 2,
      "on_true_rejected": 1}
  out = AttackOutcomes(rates, (("learned", rates), ("true", rates)),
                       CrossCheck(("apgd-ce",), 0.5, 0.75, 1.0))
  fields = out.fields()
  assert fields["on_manifold_success"] == fields["on_learned_success"]
  assert fields["off_manifold_cross_check"] == ["apgd-ce"]
  # Parsed kinds come in KINDS order; the stored JSON reads back to equal values.
  parsed = AttackOutcomes.parse(json.loads(json.dumps(fields)))
  assert parsed.on == (("true", rates), ("learned", rates)) and parsed.cross_check == out.cross_check


def test_summary_names_every_attack_with_its_rates():
  rates = AttackRates(0.982, 0.99, verified=412)
  on = AttackRates(0.125, 0.141, verified=57)
  out = AttackOutcomes(rates, (("learned", on),), CrossCheck(("square",), 0.3, 0.985, 0.995))
  assert out.summary() == (
      "off-manifold 98.2% (any restart 99.0%, 412 verified), off-manifold combined 98.5% (any "
      "restart 99.5%), off-manifold cross check 30.0%, on learned 12.5% (any restart 14.1%, "
      "57 verified)")


def test_model_key_is_frozen_hashable_and_orders_records():
  key = ModelKey("off_adv", np.int64(500), 1)
  assert key.as_dict() == {"variant": "off_adv", "n": 500, "seed": 1}
  assert ModelKey.of({**key.as_dict(), "test_error": 0.1}) == key
  family = ModelKey("normal", 200, 0, "claim4")
  assert family.as_dict()["family"] == "claim4" and len({key, family, ModelKey.of(
      key.as_dict())}) == 2
  with pytest.raises(AttributeError):
    key.n = 3
  keys = [ModelKey.of(r) for r in smoke_records("smoke-fonts")]
  assert keys == sorted(keys, key=lambda k: k.order)
  assert results.model_key("normal", 200, 0, "claim4") == family.as_dict()


def test_on_arrays_place_attacked_rows_and_the_readers_count_them():
  rows = np.arange(5)
  on = type("On", (), {"rows": np.array([1, 3, 4])})()
  outcome = robustness.Outcome(np.array([1, 1, 0], bool), np.array([[1, 0], [0, 0], [1, 1]],
                                                                   bool), 1, 0)
  arrays = records.on_arrays("learned", rows, on, outcome)
  np.testing.assert_array_equal(arrays["on_learned_evaluated"], [0, 1, 0, 1, 1])
  np.testing.assert_array_equal(arrays["on_learned_correct"], [0, 1, 0, 1, 0])
  np.testing.assert_array_equal(arrays["on_learned_success"], [[0, 1, 0, 0, 1], [0, 0, 0, 0, 1]])
  assert records.on_kind(arrays) == "learned"
  np.testing.assert_array_equal(records.on_success(arrays), [[1, 0], [0, 0]])


def test_records_before_kind_specific_fields_write_back_the_same_fields():
  old = {"off_manifold_success": 0.9, "on_manifold_success": 0.3, "on_manifold_correct": 50}
  outcomes = AttackOutcomes.parse(old)
  assert outcomes.fields() == old
  assert outcomes.summary() == "off-manifold 90.0%, on manifold 30.0%"


def test_cross_check_and_family_of_real_records():
  recs = smoke_records("smoke-claim4")
  assert [ModelKey.of(r) for r in recs] == [
      ModelKey("normal", 200, 0), ModelKey("normal", 200, 0, "claim4"),
      ModelKey("off_adv", 200, 0, "claim4")]
  for record in recs:
    cross = AttackOutcomes.parse(record).cross_check
    assert cross.attacks == ("apgd-ce", "apgd-t")
    assert cross.fields() == {k: v for k, v in record.items()
                              if k.startswith(("off_manifold_cross", "off_manifold_combined"))}
    assert cross.combined_success >= AttackOutcomes.parse(record).off.success
  assert [records.family_training(r) for r in recs] == [(None, None), ("mlp", 1), ("mlp", 1)]
