"""The attacks stage's work on one trained classifier: its off-manifold attack (with the
cross-check when set) and its on-manifold attack on every manifold kind, as typed outcomes
(dmr.records) and per-image arrays (dmr.outcomes), and the adversarial examples the report
shows.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np

from dmr import records, robustness
from dmr.data.dataset import Dataset
from dmr.manifolds import Manifold, OnManifold
from dmr.specs import AttacksSpec

EXAMPLES = 8  # Test images per model whose adversarial examples are kept for the report.


def examples_path(workdir: str, variant: str, n: int, seed: int, family: str | None = None) -> str:
  prefix = f"{family}_" if family else ""
  return os.path.join(workdir, "examples", f"{prefix}{variant}_n{n}_seed{seed}.npz")


def test_rows(ds: Dataset, num_test: int) -> np.ndarray:
  return np.arange(min(num_test, len(ds.y_test)))


def cross_check(a: AttacksSpec, logits_fn, x: np.ndarray, y: np.ndarray,
                off: robustness.Outcome, key: jax.Array) -> tuple[records.CrossCheck, dict]:
  """(record, outcome arrays) of the cross-check a.cross_check on the images x [A, ...] of the
  regular attack's outcome `off`: the cross-check's success over the correct inputs and the
  combined rates, an input broken when either attack breaks it (robustness.union)."""
  cross = robustness.cross_check(logits_fn, x, y, a.cross_check, a.off.eps, a.off.norm, key,
                                 a.batch_size)
  combined = robustness.union(off.success, cross)
  rates = robustness.rates(combined, off.correct)
  checked = records.CrossCheck(tuple(a.cross_check),
                               robustness.rates(cross[:, None], off.correct).success_any,
                               rates.success, rates.success_any)
  return checked, records.cross_check_arrays(cross, combined)


class Attacked(NamedTuple):
  """One classifier attacked: its outcomes (their record fields: outcomes.fields()), its
  per-image arrays (dmr.outcomes), the off-manifold adversarial examples x_off [A, ...] and the
  first kind's on-manifold attack."""
  outcomes: records.AttackOutcomes
  arrays: dict
  x_off: np.ndarray
  first: OnManifold


def attack_classifier(logits_fn, ds: Dataset, kinds: dict[str, Manifold], a: AttacksSpec,
                      noise: jax.Array, mesh) -> Attacked:
  """Off- and on-manifold (every manifold of `kinds`) outcomes of one trained classifier, with
  the cross-check when a.cross_check is set (records.AttackOutcomes)."""
  rows = test_rows(ds, a.num_test)
  x, y = np.asarray(ds.x_test[rows]), ds.y_test[rows]
  off, x_off = robustness.off_manifold_outcome(logits_fn, x, y, a.off, noise, a.batch_size, mesh)
  arrays, checked = records.off_arrays(off), None
  if a.cross_check:
    checked, cross_arrays = cross_check(a, logits_fn, x, y, off, noise)
    arrays.update(cross_arrays)
  on_rows, on_rates, attacks_on = test_rows(ds, a.on_num_test), [], []
  for kind, manifold in kinds.items():
    outcome, on = robustness.on_manifold_outcome(logits_fn, manifold, ds.y_test, on_rows,
                                                 a.on_manifold(kind), noise, a.on_batch_size,
                                                 mesh)
    on_rates.append((kind, records.AttackRates.of(outcome)))
    arrays.update(records.on_arrays(kind, on_rows, on, outcome))
    attacks_on.append(on)
  attacked = records.AttackOutcomes(records.AttackRates.of(off), tuple(on_rates), checked)
  return Attacked(attacked, arrays, x_off, attacks_on[0])


def kept_examples(ds: Dataset, attacked: Attacked) -> dict[str, np.ndarray]:
  """The first EXAMPLES test images of the first kind's attack: clean, off-manifold adversarial,
  on-manifold start and on-manifold adversarial."""
  first, shown = attacked.first, attacked.first.rows[:EXAMPLES]
  return {"x": np.asarray(ds.x_test[shown]), "x_off": attacked.x_off[shown],
          "x_on": first.x_on[:EXAMPLES], "x_on_adv": first.x_adv[:EXAMPLES]}
