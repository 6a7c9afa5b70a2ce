"""The models of one or several workdirs, pooled by config fingerprint (never across
fingerprints), each with its record and per-image outcomes, and claim 1's measurements attached
to the group of its reference model."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

from dmr import outcomes, records, results


@dataclasses.dataclass(frozen=True)
class Model:
  """One trained model: its results.json record and the arrays of its outcomes.npz ({} when the
  record names none)."""
  record: dict
  outcomes: dict

  @property
  def key(self) -> records.ModelKey:
    return records.ModelKey.of(self.record)

  @property
  def attacks(self) -> Optional[records.AttackOutcomes]:
    """Its attack outcomes (None before the attacks stage)."""
    return records.AttackOutcomes.parse(self.record)

  @property
  def setting(self) -> tuple[str, int]:
    return self.key.variant, self.key.n


@dataclasses.dataclass
class Group:
  """The models of one config fingerprint, pooled over workdirs, with the claim-1 measurements
  (results.json's manifold section and the arrays of distances/outcomes.npz) of its reference
  model. `models`: the sweep's, which claims 1-3, the tables and figures use; `families`: the
  models of a family of their own by family name (records with a "family", e.g. claim 4's),
  never pooled with the sweep's."""
  fingerprint: Optional[str]
  workdirs: list[str] = dataclasses.field(default_factory=list)
  models: list[Model] = dataclasses.field(default_factory=list)
  families: dict[str, list[Model]] = dataclasses.field(default_factory=dict)
  manifold: dict = dataclasses.field(default_factory=dict)
  distances: dict = dataclasses.field(default_factory=dict)
  duplicates: int = 0  # records of a model already taken from an earlier workdir

  @property
  def every_model(self) -> list[Model]:
    """The sweep's models, then every family's."""
    return self.models + [m for _, ms in sorted(self.families.items()) for m in ms]

  @property
  def count(self) -> int:
    return len(self.every_model)


def _reference_order(key: records.ModelKey) -> tuple:
  """Sort key of claim 1's reference model: normal, largest N, first seed."""
  return key.variant != "normal", -key.n, key.seed


def load_groups(workdirs: Sequence[str]) -> list[Group]:
  """The models of `workdirs` grouped by fingerprint, sorted by (variant, n, seed) so that merged
  workdirs give the same intervals as one run. A model found in several workdirs is taken once."""
  groups: dict[Optional[str], Group] = {}
  for workdir in workdirs:
    res = results.load(workdir)
    for r in res["records"]:
      group = groups.setdefault(r.get("fingerprint"), Group(r.get("fingerprint")))
      key = records.ModelKey.of(r)
      models = group.families.setdefault(key.family, []) if key.family else group.models
      if any(m.key == key for m in models):
        group.duplicates += 1
        continue
      arrays = outcomes.load(os.path.dirname(os.path.join(workdir, r["outcomes"]))) \
          if "outcomes" in r else {}
      models.append(Model(r, arrays))
      if workdir not in group.workdirs:
        group.workdirs.append(workdir)
    _attach_manifold(groups, workdir, res)
  for group in groups.values():
    for models in (group.models, *group.families.values()):
      models.sort(key=lambda m: m.key.order)
  return sorted(groups.values(), key=lambda g: (g.fingerprint is None, g.fingerprint or ""))


def _attach_manifold(groups: dict, workdir: str, res: dict) -> None:
  """Gives the workdir's manifold section to the group of its reference model, unless that group
  already has one from a model earlier in the reference order."""
  manifold = res["manifold"]
  if not manifold:
    return
  ref = manifold.get("model")
  owner = next((r for r in res["records"] if ref and all(r.get(k) == v for k, v in ref.items())),
               res["records"][0] if res["records"] else {})
  group = groups.setdefault(owner.get("fingerprint"), Group(owner.get("fingerprint")))
  current = group.manifold.get("model")
  if not group.manifold or (ref and current and _reference_order(records.ModelKey.of(ref))
                            < _reference_order(records.ModelKey.of(current))):
    group.manifold = manifold
    group.distances = outcomes.load(os.path.join(workdir, "distances"))


def by_setting(models: list[Model], variant: str) -> dict[int, list[Model]]:
  """The models of `variant` by N, N ascending."""
  table: dict[int, list[Model]] = {}
  for m in models:
    if m.key.variant == variant:
      table.setdefault(m.key.n, []).append(m)
  return dict(sorted(table.items()))
