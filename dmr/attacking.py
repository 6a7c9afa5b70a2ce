"""The attacks stage's work on one trained classifier: its off-manifold attack (with the
cross-check when set) and its on-manifold attack on every manifold kind, as record fields and
per-image arrays (dmr.outcomes), and the adversarial examples the report shows.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np

from dmr import robustness
from dmr.data.dataset import Dataset
from dmr.manifolds import Manifold, OnManifold
from dmr.specs import AttacksSpec

EXAMPLES = 8  # Test images per model whose adversarial examples are kept for the report.


def examples_path(workdir: str, variant: str, n: int, seed: int, family: str | None = None) -> str:
  prefix = f"{family}_" if family else ""
  return os.path.join(workdir, "examples", f"{prefix}{variant}_n{n}_seed{seed}.npz")


def test_rows(ds: Dataset, num_test: int) -> np.ndarray:
  return np.arange(min(num_test, len(ds.y_test)))


def counts(prefix: str, outcome: robustness.Outcome) -> dict:
  """Record fields of one attack: rates (paper, any restart), inputs evaluated and correct,
  successes per restart over the correct inputs, successes re-verified and rejected."""
  r = outcome.rates
  return {f"{prefix}_success": r.success, f"{prefix}_success_any": r.success_any,
          f"{prefix}_evaluated": r.evaluated, f"{prefix}_correct": r.correct,
          f"{prefix}_success_per_restart":
              [int(c) for c in (outcome.success & outcome.correct[:, None]).sum(axis=0)],
          f"{prefix}_verified": outcome.verified, f"{prefix}_rejected": outcome.rejected}


def on_manifold_arrays(kind: str, rows: np.ndarray, on: OnManifold,
                       outcome: robustness.Outcome) -> dict:
  """dmr.outcomes's on_<kind>_* arrays over test rows `rows` [M] from an attack on on.rows."""
  evaluated = np.isin(rows, on.rows)
  where = np.searchsorted(rows, on.rows)
  correct = np.zeros(len(rows), bool)
  correct[where] = outcome.correct
  success = np.zeros((outcome.success.shape[1], len(rows)), bool)
  success[:, where] = outcome.success.T
  return {f"on_{kind}_evaluated": evaluated, f"on_{kind}_correct": correct,
          f"on_{kind}_success": success}


def cross_check_fields(a: AttacksSpec, logits_fn, x: np.ndarray, y: np.ndarray,
                       off: robustness.Outcome, key: jax.Array) -> tuple[dict, dict]:
  """(record fields, outcome arrays) of the cross-check a.cross_check on the images x [A, ...]
  of the regular attack's outcome `off`: the cross-check's success over the correct inputs and
  the combined rates, an input broken when either attack breaks it (robustness.union)."""
  cross = robustness.cross_check(logits_fn, x, y, a.cross_check, a.off.eps, a.off.norm, key,
                                 a.batch_size)
  combined = robustness.union(off.success, cross)
  rates = robustness.rates(combined, off.correct)
  fields = {"off_manifold_cross_check": list(a.cross_check),
            "off_manifold_cross_check_success": robustness.rates(cross[:, None],
                                                                 off.correct).success_any,
            "off_manifold_combined_success": rates.success,
            "off_manifold_combined_success_any": rates.success_any}
  return fields, {"off_cross_success": cross, "off_combined_success": combined.T}


class Attacked(NamedTuple):
  """One classifier attacked: its record fields, its per-image arrays (dmr.outcomes), the
  off-manifold adversarial examples x_off [A, ...] and the first kind's on-manifold attack."""
  fields: dict
  arrays: dict
  x_off: np.ndarray
  first: OnManifold


def attack_classifier(logits_fn, ds: Dataset, kinds: dict[str, Manifold], a: AttacksSpec,
                      noise: jax.Array, mesh) -> Attacked:
  """Off- and on-manifold (every manifold of `kinds`) outcomes of one trained classifier, with
  the cross-check when a.cross_check is set. The first kind's fields are also recorded as
  on_manifold_*."""
  rows = test_rows(ds, a.num_test)
  x, y = np.asarray(ds.x_test[rows]), ds.y_test[rows]
  off, x_off = robustness.off_manifold_outcome(logits_fn, x, y, a.off, noise, a.batch_size, mesh)
  fields = counts("off_manifold", off)
  arrays = {"off_correct": off.correct, "off_success": off.success.T}
  if a.cross_check:
    cross_fields, cross_arrays = cross_check_fields(a, logits_fn, x, y, off, noise)
    fields.update(cross_fields)
    arrays.update(cross_arrays)
  on_rows = test_rows(ds, a.on_num_test)
  for i, (kind, manifold) in enumerate(kinds.items()):
    outcome, on = robustness.on_manifold_outcome(logits_fn, manifold, ds.y_test, on_rows,
                                                 a.on_manifold(kind), noise, a.on_batch_size,
                                                 mesh)
    fields.update(counts(f"on_{kind}", outcome))
    arrays.update(on_manifold_arrays(kind, on_rows, on, outcome))
    if i == 0:
      fields.update(counts("on_manifold", outcome))
      first = on
  return Attacked(fields, arrays, x_off, first)


def kept_examples(ds: Dataset, attacked: Attacked) -> dict[str, np.ndarray]:
  """The first EXAMPLES test images of the first kind's attack: clean, off-manifold adversarial,
  on-manifold start and on-manifold adversarial."""
  first, shown = attacked.first, attacked.first.rows[:EXAMPLES]
  return {"x": np.asarray(ds.x_test[shown]), "x_off": attacked.x_off[shown],
          "x_on": first.x_on[:EXAMPLES], "x_on_adv": first.x_adv[:EXAMPLES]}


def success_text(fields: dict) -> str:
  """The success rates of an attacked model's record fields, e.g. "off-manifold 98.2% (any
  restart 99.0%, 412 verified), on learned 12.5% (any restart 14.1%, 57 verified)"."""
  parts = []
  for prefix in sorted(p[:-len("_success")] for p in fields if p.endswith("_success")
                       and p != "on_manifold_success"):  # on_manifold_*: the first kind again.
    extras = [f"any restart {100 * fields[prefix + '_success_any']:.1f}%"
              if prefix + "_success_any" in fields else "",
              f"{fields[prefix + '_verified']} verified" if prefix + "_verified" in fields else ""]
    extras = ", ".join(e for e in extras if e)
    name = prefix.replace("off_manifold", "off-manifold").replace("_", " ")
    parts.append(f"{name} {100 * fields[prefix + '_success']:.1f}%"
                 + (f" ({extras})" if extras else ""))
  return ", ".join(parts)
