"""results.json and per-image outcomes -> report/report.md, report/claims.json and png figures.

Every number in the report is computed from results.json, the per-image outcome files its records
name (dmr/outcomes.py) and the example images the attacks stage saved; nothing is hard-coded. Each
claim gets a verdict, held / not held / inconclusive / not measured, with the 95% interval that
decided it (docs/protocol.md#claims). Records that predate per-image outcomes fall back to their
stored rates, without intervals, and their claims stay inconclusive.

Several workdirs (sweeps on several machines) are merged: models are pooled by config
fingerprint, never across fingerprints, and the intervals are recomputed from the outcomes:

  python -m dmr.report --workdirs A B --out DIR [--dataset fashion_mnist]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Callable, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure  # Figures without pyplot: no backend is selected.

from dmr import outcomes, results, stats
from dmr.stats import HELD, INCONCLUSIVE, NOT_HELD, NOT_MEASURED, Verdict

METRICS = {
    "test_error": "test error",
    "off_manifold_success": "off-manifold success (paper rate)",
    "off_manifold_success_any": "off-manifold success (any restart)",
    "on_manifold_success": "on-manifold success (paper rate)",
    "on_manifold_success_any": "on-manifold success (any restart)",
}
TITLES = {
    1: "Regular adversarial examples leave the manifold",
    2: "On-manifold adversarial examples exist",
    3: "On-manifold adversarial examples are generalization errors",
    4: "Robustness and generalization are not contradicting",
}
# Thresholds of the verdicts (docs/protocol.md#claims), stated in the report next to each verdict.
CLAIM1_MIN_LEAVING = 0.5  # share of the perturbation's squared norm leaving the manifold
CLAIM2_MIN_SUCCESS = 0.05  # on-manifold attacks fool the normal models on >= 5% of inputs
CLAIM4_MAX_ERROR_GAP = 0.03  # robust model's test error within 3 points of the normal one
CLAIM4_MAX_OFF_SUCCESS = 0.5  # and the regular attack succeeds on at most half the inputs
NEAR_CHANCE_POINTS = 0.05  # a test error interval reaching within 5 points of 1 - 1/K
MIN_SEEDS = 2  # claim 3 compares training runs: one model per setting hides their spread
CLASSES = {"fashion_mnist": 10, "emnist": 10, "celeb_a": 2, "fonts": 10}
MANIFOLD_KINDS = ("true", "learned", "learned_agnostic")  # claim 1 and on-manifold rates: first found
ON_VARIANTS = ("on_adv_true", "on_adv_learned")
CLAIM4_FAMILY = "claim4"  # The records of claim 4's own models (dmr.train.classifier.CLAIM4).
SETTLE_SEEDS = "more models per setting: --config.models_per_size=3 (or launch/sweep.py --seeds=0,1,2)"
SETTLE_CHANCE = "models that learn: more --config.train.epochs or larger --config.training_sizes"
SETTLE_OUTCOMES = "a rerun in a new workdir: these records predate the per-image outcomes"
NO_INTERVAL = "no interval: per-image outcomes missing"


@dataclasses.dataclass(frozen=True)
class Model:
  """One trained model: its results.json record and the arrays of its outcomes.npz ({} when the
  record names none)."""
  record: dict
  outcomes: dict

  @property
  def setting(self) -> tuple[str, int]:
    return self.record["variant"], self.record["n"]


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


@dataclasses.dataclass(frozen=True)
class Measure:
  """A quantity over models: its point value and, when per-image outcomes exist, its interval."""
  value: float
  interval: Optional[stats.Interval]
  seeds: int  # fewest models in any setting it pools


@dataclasses.dataclass(frozen=True)
class Claim:
  """A claim's verdict, the sentence with its evidence and the figure that shows it."""
  number: int
  verdict: Verdict
  evidence: str = ""
  figure: str = ""
  interval_text: str = ""  # what the deciding interval measures, e.g. "share 87% [83, 90]"

  def as_dict(self) -> dict:
    verdict = self.verdict.as_dict()
    return {"claim": self.number, "title": TITLES[self.number], "verdict": verdict.pop("status"),
            **verdict, "interval_text": self.interval_text, "evidence": self.evidence,
            "figure": self.figure}


# ---- Loading and merging ----------------------------------------------------------------------


def _reference_order(key: dict) -> tuple:
  """Sort key of claim 1's reference model: normal, largest N, first seed."""
  return key["variant"] != "normal", -key["n"], key["seed"]


def load_groups(workdirs: Sequence[str]) -> list[Group]:
  """The models of `workdirs` grouped by fingerprint, sorted by (variant, n, seed) so that merged
  workdirs give the same intervals as one run. A model found in several workdirs is taken once."""
  groups: dict[Optional[str], Group] = {}
  for workdir in workdirs:
    res = results.load(workdir)
    for r in res["records"]:
      group = groups.setdefault(r.get("fingerprint"), Group(r.get("fingerprint")))
      models = group.families.setdefault(r["family"], []) if "family" in r else group.models
      if any(results.is_model(m.record, results.record_key(r)) for m in models):
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
      models.sort(key=lambda m: results.sort_key(m.record))
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
  if not group.manifold or (ref and current and _reference_order(ref) < _reference_order(current)):
    group.manifold = manifold
    group.distances = outcomes.load(os.path.join(workdir, "distances"))


# ---- Per-image quantities ---------------------------------------------------------------------


def on_kind(arrays: dict) -> Optional[str]:
  return next((k for k in MANIFOLD_KINDS if f"on_{k}_success" in arrays), None)


def _test_error(o: dict) -> Optional[np.ndarray]:
  return 1.0 - o["test_correct"].astype(np.float64) if "test_correct" in o else None


def _off_success(o: dict, reduce: Callable, name: Optional[str] = None) -> Optional[np.ndarray]:
  """Per correctly classified attacked image: its restarts' success, reduced over restarts;
  name: the outcome array [R, A] (default: the union of the paper's attack and the cross-check
  when the model had one, else the paper's attack)."""
  name = name or ("off_combined_success" if "off_combined_success" in o else "off_success")
  if name not in o:
    return None
  return reduce(o[name][:, o["off_correct"].astype(bool)].astype(np.float64), axis=0)


def _cross_check_success(o: dict) -> Optional[np.ndarray]:
  """Per correctly classified attacked image: the cross-check broke it (1.0) or not."""
  if "off_cross_success" not in o:
    return None
  return o["off_cross_success"][o["off_correct"].astype(bool)].astype(np.float64)


def _on_success(o: dict, reduce: Callable) -> Optional[np.ndarray]:
  kind = on_kind(o)
  if kind is None:
    return None
  counted = o[f"on_{kind}_evaluated"].astype(bool) & o[f"on_{kind}_correct"].astype(bool)
  return reduce(o[f"on_{kind}_success"][:, counted].astype(np.float64), axis=0)


PER_IMAGE: dict[str, Callable[[dict], Optional[np.ndarray]]] = {
    "test_error": _test_error,
    "off_manifold_success": lambda o: _off_success(o, np.mean),
    "off_manifold_success_any": lambda o: _off_success(o, np.max),
    # Not in the tables: claim 4 states the two attacks of the union apart.
    "off_manifold_paper_success": lambda o: _off_success(o, np.mean, "off_success"),
    "off_manifold_cross_check_success": _cross_check_success,
    "on_manifold_success": lambda o: _on_success(o, np.mean),
    "on_manifold_success_any": lambda o: _on_success(o, np.max),
}


def per_image(models: list[Model], metric: str) -> Optional[list[np.ndarray]]:
  """One array of per-image outcomes per model (None unless every model has them; models whose
  array is empty, e.g. no correctly classified input, are left out)."""
  arrays = [PER_IMAGE[metric](m.outcomes) for m in models]
  if not arrays or any(a is None for a in arrays):
    return None
  return [a for a in arrays if a.size] or None


def stored(models: list[Model], metric: str) -> list[float]:
  return [m.record[metric] for m in models
          if m.record.get(metric) is not None and not math.isnan(m.record[metric])]


def measure(models: list[Model], metric: str) -> Optional[Measure]:
  """The rate `metric` pooled over `models` (images and seeds), or None when not measured."""
  arrays = per_image(models, metric)
  if arrays is not None:
    interval = stats.rate_interval(arrays)
    return Measure(interval.estimate, interval, len(arrays))
  values = stored(models, metric)
  return Measure(float(np.mean(values)), None, len(values)) if values else None


def difference(a: list[Model], b: list[Model], metric: str, paired: bool) -> Optional[Measure]:
  """mean(metric of b) - mean(metric of a), with a paired (same images) or unpaired interval."""
  arrays_a, arrays_b = per_image(a, metric), per_image(b, metric)
  seeds = min(len(a), len(b))
  if arrays_a is not None and arrays_b is not None:
    fn = stats.difference_interval if paired else stats.unpaired_difference_interval
    interval = fn(arrays_a, arrays_b)
    return Measure(interval.estimate, interval, seeds)
  values_a, values_b = stored(a, metric), stored(b, metric)
  if not values_a or not values_b:
    return None
  return Measure(float(np.mean(values_b) - np.mean(values_a)), None, seeds)


def by_setting(models: list[Model], variant: str) -> dict[int, list[Model]]:
  table: dict[int, list[Model]] = {}
  for m in models:
    if m.record["variant"] == variant:
      table.setdefault(m.record["n"], []).append(m)
  return dict(sorted(table.items()))


def chance_error(dataset: str) -> float:
  if dataset not in CLASSES:
    raise ValueError(f"dataset={dataset!r} is unknown to the report; known: {sorted(CLASSES)}")
  return 1.0 - 1.0 / CLASSES[dataset]


def near_chance(models: list[Model], settings, chance: float) -> list[str]:
  """Descriptions of the settings (variant, n) whose test error reaches within
  NEAR_CHANCE_POINTS of chance (the interval's upper end, or the stored value)."""
  near = []
  for variant, n in sorted(set(settings)):
    m = measure([x for x in models if x.setting == (variant, n)], "test_error")
    if m is not None and (m.interval.hi if m.interval else m.value) >= chance - NEAR_CHANCE_POINTS:
      near.append(f"{variant} N={n} ({_rate_text(m)})")
  return near


# ---- Text --------------------------------------------------------------------------------------


def _pct(x: float) -> str:
  return f"{100 * x:.1f}"


def _rate_text(m: Measure) -> str:
  """"12.3% [10.1, 14.6]" (a rate) or "12.3% (no interval)"."""
  if m.interval is None:
    return f"{_pct(m.value)}% (no interval)"
  return f"{_pct(m.value)}% [{_pct(m.interval.lo)}, {_pct(m.interval.hi)}]"


def _points_text(m: Measure) -> str:
  """A difference of rates in percentage points, signed."""
  if m.interval is None:
    return f"{100 * m.value:+.1f} points (no interval)"
  return (f"{100 * m.value:+.1f} points [{100 * m.interval.lo:+.1f}, "
          f"{100 * m.interval.hi:+.1f}]")


def _share_text(m: Measure) -> str:
  """The claim-1 share, with the reason whenever it lies outside its meaningful range [0, 1]."""
  text = _rate_text(m)
  if not 0.0 <= m.value <= 1.0:
    text += (" (outside 0-100%: the distances to the manifold are not precise enough against "
             "the perturbation's length, so the residual change r(x_adv) - r(x) includes "
             "projection error, of the size the tangent reference measures)")
  return text


def _data_factor(interval: stats.Interval, threshold: float) -> float | None:
  """How many times the data would shrink the interval's half-width to the estimate's distance
  from the threshold (widths scale as 1 / sqrt(count)); None when the estimate is on it."""
  gap = abs(interval.estimate - threshold)
  return ((interval.hi - interval.lo) / 2 / gap) ** 2 if gap else None


def _more_data(interval: stats.Interval, threshold: float) -> str:
  factor = _data_factor(interval, threshold)
  return f" (about {math.ceil(factor)}x as many)" if factor and factor > 1 else ""


def _more_seeds(m: Measure, threshold: float) -> str:
  """The models per setting that would settle m: its seeds times _data_factor (twice as many
  without an estimate), at least one more."""
  factor = _data_factor(m.interval, threshold) if m.interval else None
  target = 2 * m.seeds if factor is None else max(m.seeds + 1, math.ceil(m.seeds * factor))
  return f"more models per setting: --config.models_per_size={target}"


def _near_chance_claim(number: int, near: list[str], chance: float, evidence: str,
                       figure: str, text: str) -> Claim:
  return Claim(number, Verdict(INCONCLUSIVE, reason=(
      f"models near chance (test error {100 * chance:.0f}%): " + ", ".join(near)),
      settle=SETTLE_CHANCE), evidence, figure, text)


def _judge(m: Measure, threshold: float, held_above: bool, what: str, settle: str) -> Verdict:
  """stats.decide on m's interval; inconclusive without interval."""
  if m.interval is None:
    return Verdict(INCONCLUSIVE, reason=NO_INTERVAL, settle=SETTLE_OUTCOMES)
  return stats.decide(m.interval, threshold, held_above=held_above, what=what,
                      settle=settle + _more_data(m.interval, threshold))


def _all_of(verdicts: list[Verdict]) -> Verdict:
  """Held when every part held, not held when any part is not held, else the first inconclusive
  part."""
  for status in (NOT_HELD, INCONCLUSIVE):
    first = next((v for v in verdicts if v.status == status), None)
    if first:
      return first
  return verdicts[0]


def _any_n(verdicts: list[Verdict]) -> Verdict:
  """Across N: not held when some N is not held, held when some N held (and none is not held),
  else the first inconclusive N."""
  for status in (NOT_HELD, HELD):
    first = next((v for v in verdicts if v.status == status), None)
    if first:
      return first
  return verdicts[0]


# ---- The claims --------------------------------------------------------------------------------


def _claim1_kind(group: Group) -> Optional[str]:
  return next((k for k in MANIFOLD_KINDS if isinstance(group.manifold.get(k), dict)
               or f"{k}_leaving_sq" in group.distances), None)


def _share(arrays: dict, prefix: str) -> Optional[Measure]:
  """sum(<prefix>leaving_sq) / sum(<prefix>perturbation_sq) over images with a perturbation."""
  leaving, total = arrays.get(prefix + "leaving_sq"), arrays.get(prefix + "perturbation_sq")
  if leaving is None or total is None:
    return None
  kept = total > 0
  if not np.any(kept):  # No example of this kind (e.g. no on-manifold success): no share.
    return None
  interval = stats.ratio_interval(leaving[kept], total[kept])
  return Measure(interval.estimate, interval, 1)


def _fit_text(d: dict) -> str:
  """The test images' mean distance to the manifold against the perturbations' mean norm."""
  if "test_distance" not in d or "perturbation_norm" not in d:
    return ""
  coarse = d["test_distance"] > d["perturbation_norm"]
  return (f"; the test images' mean distance to the manifold, {d['test_distance']:.3f}, is "
          f"{'above' if coarse else 'below'} the perturbations' mean norm "
          f"{d['perturbation_norm']:.3f}"
          + (" (a caveat, not judged: the tangent reference measures what this costs the share)"
             if coarse else ""))


def claim1(group: Group, chance: float) -> Claim:
  """The share of the regular perturbations leaving the manifold, beside the same share of
  directions along the manifold at the same images (the tangent reference: the measure's floor),
  of random directions and of on-manifold perturbations.

  Inconclusive when the tangent reference's interval reaches the threshold (the measure cannot
  tell a perturbation along the manifold from one leaving it); else held when the share's
  interval lies above the threshold (so above the tangent reference's too) and above the
  on-manifold perturbations'. Records without the tangent reference fall back to the flag
  fit_too_coarse and to shares outside 0-100% for "manifold fit too coarse".
  """
  figure = "off_manifold_share.png"
  kind = _claim1_kind(group)
  if kind is None:
    return Claim(1, Verdict(NOT_MEASURED, reason="no distances stage in this run",
                            settle='add "distances" to --config.stages'))
  d = group.manifold.get(kind, {})
  share = _share(group.distances, f"{kind}_")
  if share is None and "off_manifold_fraction" in d:
    share, figure = Measure(d["off_manifold_fraction"], None, 1), "distances.png"
  if share is None:
    return Claim(1, Verdict(NOT_MEASURED, reason=f"no off-manifold share for the {kind} manifold",
                            settle='add "distances" to --config.stages'))
  tangent, random, on = (_share(group.distances, f"{kind}_{prefix}")
                         for prefix in ("tangent_", "random_", "on_"))
  references = [f"{label}: {_share_text(m)}" for label, m in
                (("tangent directions", tangent), ("random directions", random),
                 ("on-manifold perturbations", on)) if m]
  evidence = (f"{_share_text(share)} of the regular perturbations' squared norm leaves the "
              f"{kind} manifold"
              + (f" ({'; '.join(references)})" if references else "")
              + (f"; mean distance to it {d['test_distance']:.3f} for test images, "
                 f"{d['off_adversarial_distance']:.3f} for regular and "
                 f"{d['on_adversarial_distance']:.3f} for on-manifold adversarial examples"
                 if "test_distance" in d else "")
              + (_fit_text(d) if tangent else "")
              + _angle_text(group.manifold.get("local", {}))
              + f" (held: the share's interval above {_pct(CLAIM1_MIN_LEAVING)}% and above the "
                "on-manifold perturbations'"
              + (f", the tangent directions' below {_pct(CLAIM1_MIN_LEAVING)}%)" if tangent
                 else ")"))
  text = (f"share {_share_text(share)} (threshold {_pct(CLAIM1_MIN_LEAVING)}%"
          + (f", tangent directions {_rate_text(tangent)}" if tangent else "")
          + (f", on-manifold perturbations {_rate_text(on)})" if on else ")"))
  ref = group.manifold.get("model")
  near = near_chance(group.models, [(ref["variant"], ref["n"])], chance) if ref else []
  if near:
    return _near_chance_claim(1, near, chance, evidence, figure, text)
  settle_fit = ("a closer projection: more --config.distances.projection_steps" if kind == "true"
                else "a closer VAE-GAN fit: more --config.vaegan.epochs (and "
                     "--config.vaegan.channels, --config.vaegan.max_train_images)")
  if tangent is None:
    coarse = d.get("fit_too_coarse") or group.manifold.get("fit_too_coarse")
    if coarse:
      detail = f" ({coarse})" if isinstance(coarse, str) else ""
      return Claim(1, Verdict(INCONCLUSIVE, share.interval, f"manifold fit too coarse{detail}",
                              settle_fit), evidence, figure, text)
    if not 0.0 <= share.value <= 1.0:
      return Claim(1, Verdict(INCONCLUSIVE, share.interval,
                              "manifold fit too coarse: the share lies outside 0-100%",
                              settle_fit), evidence, figure, text)
  elif tangent.interval.hi >= CLAIM1_MIN_LEAVING:
    return Claim(1, Verdict(INCONCLUSIVE, share.interval, (
        f"manifold fit too coarse: {_rate_text(tangent)} of a direction along the manifold "
        f"leaves it by this measure, reaching {_pct(CLAIM1_MIN_LEAVING)}%, so the measure cannot "
        "tell a perturbation along the manifold from one leaving it"), settle_fit),
                 evidence, figure, text)
  settle = "more attacked images: a larger --config.distances.num_test"
  verdict = _judge(share, CLAIM1_MIN_LEAVING, True, "the off-manifold share", settle)
  if on is not None and verdict.status != NOT_HELD:
    above, below = share.interval.lo > on.interval.hi, share.interval.hi < on.interval.lo
    if below:
      verdict = Verdict(NOT_HELD, share.interval)
    elif not above:
      verdict = Verdict(INCONCLUSIVE, share.interval,
                        "intervals overlap: the share's and the on-manifold perturbations'",
                        settle)
  return Claim(1, verdict, evidence, figure, text)


def _angle_text(local: dict) -> str:
  angle, random = local.get("angle_degrees"), local.get("random_direction_angle_degrees")
  if angle is None or random is None:
    return ""
  return (f"; the perturbation makes {angle:.1f}° with the local subspace of the nearest "
          f"training images (a random direction: {random:.1f}°; not judged)")


def claim2(group: Group, chance: float) -> Claim:
  """On-manifold success of the normal models of the largest attacked N (the most accurate: if
  on-manifold adversarial examples exist for them, they exist), pooled over its seeds."""
  figure = "on_manifold_success_vs_n.png"
  attacked = {n: ms for n, ms in by_setting(group.models, "normal").items()
              if measure(ms, "on_manifold_success") is not None}
  if not attacked:
    return Claim(2, Verdict(NOT_MEASURED, reason="no on-manifold attacks on normal models",
                            settle='add "attacks" to --config.stages and "normal" to '
                                   '--config.variants'))
  n, normal = max(attacked.items())
  success = measure(normal, "on_manifold_success")
  evidence = (f"on-manifold attacks fool the normal models of N={n} on {_rate_text(success)} "
              f"of (input, restart) pairs, over {len(normal)} model{'s' * (len(normal) > 1)} "
              f"(held: the interval above {_pct(CLAIM2_MIN_SUCCESS)}%)")
  text = f"success {_rate_text(success)} (threshold {_pct(CLAIM2_MIN_SUCCESS)}%)"
  near = near_chance(group.models, [("normal", n)], chance)
  if near:
    return _near_chance_claim(2, near, chance, evidence, figure, text)
  verdict = _judge(success, CLAIM2_MIN_SUCCESS, True, "the on-manifold success",
                   "more attacked images: a larger --config.on_manifold_attack.num_test")
  return Claim(2, verdict, evidence, figure, text)


def claim3(group: Group, chance: float) -> Claim:
  """(a) On-manifold adversarial training lowers test error at some N and raises it at none;
  (b) normal models' on-manifold success is lower at the largest N than at the smallest."""
  figure = "test_error_vs_n.png"
  normal = by_setting(group.models, "normal")
  on_variant = next((v for v in ON_VARIANTS if by_setting(group.models, v)), None)
  on = by_setting(group.models, on_variant) if on_variant else {}
  parts, texts, intervals, settings = [], [], [], []
  gaps = {n: difference(normal[n], on[n], "test_error", paired=True)
          for n in normal if n in on}
  gaps = {n: g for n, g in gaps.items() if g is not None}
  if gaps:
    settings += [(v, n) for n in gaps for v in ("normal", on_variant)]
    per_n = [_judge(g, 0.0, False, f"the test error change at N={n}", _more_seeds(g, 0.0))
             for n, g in gaps.items()]
    parts.append(_any_n(per_n))
    changes = ", ".join(f"{_points_text(g)} at N={n}" for n, g in gaps.items())
    texts.append(f"{on_variant} training changes test error by {changes}")
    intervals.append(f"test error change {changes}")
  attacked = [n for n in normal if measure(normal[n], "on_manifold_success") is not None]
  if len(attacked) >= 2:
    small, large = attacked[0], attacked[-1]
    drop = difference(normal[small], normal[large], "on_manifold_success", paired=False)
    settings += [("normal", small), ("normal", large)]
    parts.append(_judge(drop, 0.0, False, "the on-manifold success change",
                        "more attacked images and models: a larger "
                        "--config.on_manifold_attack.num_test and --config.models_per_size"))
    texts.append(f"normal models' on-manifold success changes by {_points_text(drop)} from "
                 f"N={small} to N={large}")
    intervals.append(f"success change N={small} -> {large} {_points_text(drop)}")
  if not parts:
    return Claim(3, Verdict(NOT_MEASURED, reason="needs normal and on-manifold adversarially "
                            "trained models at one N, or attacked normal models at two N",
                            settle='--config.variants including "normal" and "'
                                   f'{ON_VARIANTS[1]}" (FONTS: "{ON_VARIANTS[0]}")'))
  evidence = "; ".join(texts) + " (held: every interval that decides lies below 0)"
  verdict = _all_of(parts)
  text = "; ".join(intervals)
  near = near_chance(group.models, settings, chance)
  if near:
    return _near_chance_claim(3, near, chance, evidence, figure, text)
  if verdict.reason != NO_INTERVAL:
    seeds = min(len([m for m in group.models if m.setting == s]) for s in settings)
    if seeds < MIN_SEEDS:
      verdict = Verdict(INCONCLUSIVE, verdict.interval, (
          f"too few seeds: {seeds} model per setting, so the interval covers the test images "
          "but not the spread between training runs"), SETTLE_SEEDS)
  return Claim(3, verdict, evidence, figure, text)


def _claim4_models_text(models: list[Model], family: bool) -> str:
  """Which models claim 4 judged: its own family (architecture, epochs) or the sweep's."""
  if not family:
    return "the sweep's models"
  trained = sorted({(m.record.get("architecture"), m.record.get("epochs")) for m in models})
  return "claim 4's own models (" + "; ".join(f"{a}, {e} epoch{'s' * (e != 1)}" for a, e in trained) + ")"


def _claim4_attack_text(robust: list[Model]) -> str:
  """Which regular attack claim 4's success counts: the paper's alone, or its union with the
  cross-check, then with each attack's own success."""
  names = next((m.record["off_manifold_cross_check"] for m in robust
                if "off_manifold_cross_check" in m.record), None)
  if not names:
    return "the paper's attack alone"
  alone = [f"{label}: {_rate_text(m)}" for label, m in (
      ("the paper's attack alone", measure(robust, "off_manifold_paper_success")),
      ("the cross-check alone", measure(robust, "off_manifold_cross_check_success"))) if m]
  return (f"the paper's attack or the cross-check {', '.join(names)}, whichever breaks the input"
          + (f" ({'; '.join(alone)})" if alone else ""))


def claim4(group: Group, chance: float, known_manifold: bool) -> Claim:
  """At the largest N trained with off_adv: its test error gap to normal and the regular
  attack's success on it (with the cross-check when the models had one). Judged on claim 4's own
  model family when the group has it, else on the sweep's models. Checked where the manifold is
  known (FONTS), as the paper does."""
  if not known_manifold:
    return Claim(4, Verdict(NOT_MEASURED, reason="checked on FONTS only, whose manifold is known",
                            settle="run configs/fonts.py"))
  family = CLAIM4_FAMILY in group.families
  models = group.families.get(CLAIM4_FAMILY) or group.models
  figure = "" if family else "off_manifold_success_vs_n.png"
  normal, robust = by_setting(models, "normal"), by_setting(models, "off_adv")
  sizes = [n for n in robust if n in normal
           and measure(robust[n], "off_manifold_success") is not None]
  if not sizes:
    return Claim(4, Verdict(NOT_MEASURED, reason="needs attacked off_adv and normal models at "
                            f"one N ({_claim4_models_text(models, family)})",
                            settle='--config.variants including "normal" and "off_adv"'))
  n = sizes[-1]
  gap = difference(normal[n], robust[n], "test_error", paired=True)
  success = measure(robust[n], "off_manifold_success")
  evidence = (f"on {_claim4_models_text(normal[n] + robust[n], family)}, at N={n}, off_adv "
              f"training changes test error by {_points_text(gap)} (normal: "
              f"{_rate_text(measure(normal[n], 'test_error'))}) and the regular attack succeeds "
              f"on {_rate_text(success)}, counting {_claim4_attack_text(robust[n])} (held: the gap's "
              f"interval below {100 * CLAIM4_MAX_ERROR_GAP:.0f} points and the success's below "
              f"{_pct(CLAIM4_MAX_OFF_SUCCESS)}%)")
  text = f"gap {_points_text(gap)}, success {_rate_text(success)}"
  near = near_chance(models, [("normal", n), ("off_adv", n)], chance)
  if near:
    return _near_chance_claim(4, near, chance, evidence, figure, text)
  verdict = _all_of([
      _judge(gap, CLAIM4_MAX_ERROR_GAP, False, "the test error gap",
             _more_seeds(gap, CLAIM4_MAX_ERROR_GAP)),
      _judge(success, CLAIM4_MAX_OFF_SUCCESS, False, "the off-manifold success",
             "more attacked images: a larger --config.attack.num_test")])
  return Claim(4, verdict, evidence, figure, text)


def _known_manifold(group: Group) -> bool:
  return "true" in group.manifold or any(on_kind(m.outcomes) == "true" or
                                         m.record["variant"] == "on_adv_true"
                                         for m in group.every_model)


def judge_claims(group: Group, dataset: str, known_manifold: Optional[bool] = None) -> list[Claim]:
  """The four claims' verdicts for one group. known_manifold: the run has the true manifold
  (FONTS), where claim 4 is checked (default: inferred from the group's measurements)."""
  chance = chance_error(dataset)
  known = _known_manifold(group) if known_manifold is None else known_manifold
  return [claim1(group, chance), claim2(group, chance), claim3(group, chance),
          claim4(group, chance, known)]


def claims_summary(workdir: str, dataset: str) -> list[dict]:
  """The claims of `workdir` (claim, title, verdict, interval, reason, settle, ...), one dict per
  claim and fingerprint group (key "fingerprint"), for printing at the end of a run."""
  return [{"fingerprint": g.fingerprint, **c.as_dict()}
          for g in load_groups([workdir]) for c in judge_claims(g, dataset)]


# ---- Tables and figures ------------------------------------------------------------------------


def setting_measures(models: list[Model], metric: str) -> dict[str, dict[int, Measure]]:
  """{variant: {n: Measure}} of `metric`, pooled over the seeds of each setting."""
  table: dict[str, dict[int, Measure]] = {}
  for variant in sorted({m.record["variant"] for m in models}):
    for n, ms in by_setting(models, variant).items():
      m = measure(ms, metric)
      if m is not None:
        table.setdefault(variant, {})[n] = m
  return table


def markdown_table(models: list[Model]) -> str:
  """One row per (variant, n): every metric with its 95% interval, in percent."""
  tables = {metric: setting_measures(models, metric) for metric in METRICS}
  present = [metric for metric in METRICS if tables[metric]]
  keys = sorted({m.setting for m in models})
  lines = ["| variant | N | models | " + " | ".join(METRICS[m] for m in present) + " |",
           "|---|---:|---:|" + "---:|" * len(present)]
  for variant, n in keys:
    cells = [tables[m].get(variant, {}).get(n) for m in present]
    count = sum(1 for m in models if m.setting == (variant, n))
    lines.append(f"| {variant} | {n} | {count} | "
                 + " | ".join("-" if c is None else _rate_text(c) for c in cells) + " |")
  return "\n".join(lines)


def _save(fig, ax, path: str) -> str:
  """Adds legend and grid to ax, writes fig as png to path; returns path."""
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return path


def _error_bars(measures: list[Measure]) -> Optional[np.ndarray]:
  """[2, k] distances from the values to their interval ends (None when any has no interval)."""
  if any(m.interval is None for m in measures):
    return None
  # Clipped at 0: a value on its interval's end may sit a rounding error outside it.
  return 100 * np.maximum(np.array([[m.value - m.interval.lo for m in measures],
                                    [m.interval.hi - m.value for m in measures]]), 0.0)


def plot_metric_vs_n(models: list[Model], metric: str, path: str) -> Optional[str]:
  """Line plot of `metric` with its 95% interval against N, one line per variant."""
  table = setting_measures(models, metric)
  if not table:
    return None
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  for variant, by_n in table.items():
    ms = list(by_n.values())
    ax.errorbar(list(by_n), [100 * m.value for m in ms], yerr=_error_bars(ms), marker="o",
                capsize=3, label=variant)
  ax.set_xscale("log")
  ax.set_xlabel("training set size N")
  ax.set_ylabel(f"{METRICS[metric]} [%]")
  ax.set_title("bars: 95% intervals", fontsize=8)
  return _save(fig, ax, path)


def plot_success_vs_error(models: list[Model], path: str) -> Optional[str]:
  """Scatter of on-manifold success against test error, one point per model."""
  points = [(measure([m], "test_error"), measure([m], "on_manifold_success"), m.record["variant"])
            for m in models]
  points = [(e.value, s.value, v) for e, s, v in points if e is not None and s is not None]
  if not points:
    return None
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  for variant in sorted({p[2] for p in points}):
    ax.scatter([100 * p[0] for p in points if p[2] == variant],
               [100 * p[1] for p in points if p[2] == variant], label=variant)
  ax.set_xlabel("test error [%]")
  ax.set_ylabel("on-manifold success [%]")
  return _save(fig, ax, path)


def plot_shares(group: Group, path: str) -> Optional[str]:
  """Claim 1: the off-manifold share of regular perturbations, tangent and random directions and
  on-manifold perturbations, with 95% intervals and the threshold."""
  kind = _claim1_kind(group)
  shares = {label: _share(group.distances, f"{kind}_{prefix}") for label, prefix in
            (("regular", ""), ("tangent", "tangent_"), ("random", "random_"),
             ("on-manifold", "on_"))} if kind else {}
  shares = {k: v for k, v in shares.items() if v is not None}
  if not shares:
    return None
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  ms = list(shares.values())
  ax.bar(range(len(ms)), [100 * m.value for m in ms], yerr=_error_bars(ms), capsize=4,
         label="share, 95% interval")
  ax.axhline(100 * CLAIM1_MIN_LEAVING, color="k", ls="--", lw=1, label="threshold")
  ax.set_xticks(range(len(ms)), [f"{k} perturbations" for k in shares], fontsize=8)
  ax.set_ylabel(f"share leaving the {kind} manifold [%]")
  return _save(fig, ax, path)


def plot_distances(manifold: dict, path: str) -> Optional[str]:
  """Bar chart of the mean distance to each manifold of test images and adversarial examples."""
  groups = {kind: manifold[kind] for kind in MANIFOLD_KINDS
            if isinstance(manifold.get(kind), dict) and "test_distance" in manifold[kind]}
  if not groups:
    return None
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  labels = ["test images", "regular adversarial", "on-manifold adversarial"]
  keys = ["test_distance", "off_adversarial_distance", "on_adversarial_distance"]
  width = 0.8 / len(groups)
  for i, (kind, d) in enumerate(groups.items()):
    values = [d.get(k, math.nan) for k in keys]
    ax.bar(np.arange(3) + i * width, values, width, label=f"{kind} manifold")
  ax.set_xticks(np.arange(3) + width * (len(groups) - 1) / 2, labels, fontsize=8)
  ax.set_ylabel("mean L2 distance to the manifold")
  return _save(fig, ax, path)


def plot_examples(examples: dict[str, np.ndarray], path: str) -> Optional[str]:
  """Rows: test image, regular adversarial, its difference, on-manifold image, on-manifold
  adversarial, its difference (the paper's Figure 1). Arrays [B, H, W, C] in [0, 1]."""
  rows = [("x", "test image"), ("x_off", "regular adv."), (None, "difference"),
          ("x_on", "on-manifold"), ("x_on_adv", "on-manifold adv."), (None, "difference")]
  if not all(k in examples for k in ("x", "x_off", "x_on", "x_on_adv")):
    return None
  count = min(8, len(examples["x"]))
  fig = Figure(figsize=(1.2 * count, 1.3 * len(rows)))
  axes = fig.subplots(len(rows), count)
  axes = np.asarray(axes).reshape(len(rows), count)
  previous = None
  for i, (key, title) in enumerate(rows):
    for j in range(count):
      if key is None:  # Difference of the two rows above, centred at grey.
        image = 0.5 + 0.5 * (examples[previous[1]][j] - examples[previous[0]][j])
      else:
        image = examples[key][j]
      image = np.clip(image, 0, 1)
      axes[i, j].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray",
                        vmin=0, vmax=1)
      axes[i, j].set_xticks([])
      axes[i, j].set_yticks([])
    axes[i, 0].set_ylabel(title, fontsize=7)
    if key in ("x_off", "x_on_adv"):
      previous = ("x" if key == "x_off" else "x_on", key)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return path


def _manifold_table(manifold: dict) -> str:
  """Every number of results.json's manifold section; a share outside [0, 1] says why."""
  lines = ["| quantity | value |", "|---|---:|"]
  for group, values in sorted(manifold.items()):
    if isinstance(values, dict) and group != "model":
      for key, value in sorted(values.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
          note = (" (outside [0, 1]: projection error, see claim 1)"
                  if key == "off_manifold_fraction" and not 0 <= value <= 1 else "")
          lines.append(f"| {group}: {key} | {value:.4g}{note} |")
  return "\n".join(lines)


# ---- The report --------------------------------------------------------------------------------


def summary_lines(claims: list[Claim]) -> list[str]:
  """The one-screen summary: a table of the claims, then what this run's scale settles."""
  lines = ["| claim | verdict | 95% interval | figure |", "|---|---|---|---|"]
  for c in claims:
    figure = f"[{c.figure}]({c.figure})" if c.figure else "-"
    lines.append(f"| {c.number}. {TITLES[c.number]} | **{c.verdict.status}** | "
                 f"{c.interval_text or '-'} | {figure} |")
  settled = [c.number for c in claims if c.verdict.status in (HELD, NOT_HELD)]
  lines += ["", "This run's scale settles "
            + (f"claim{'s' if len(settled) > 1 else ''} {_and(settled)}." if settled
               else "none of the claims.")]
  for c in claims:
    if c.verdict.status in (INCONCLUSIVE, NOT_MEASURED):
      lines.append(f"- Claim {c.number} is {c.verdict.status}: {c.verdict.reason}; to settle "
                   f"it: {c.verdict.settle}.")
  return lines


def _and(numbers: list[int]) -> str:
  words = [str(n) for n in numbers]
  return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def claim_lines(claims: list[Claim]) -> list[str]:
  lines = []
  for c in claims:
    v = c.verdict
    body = f": {c.evidence}." if c.evidence else "."
    why = f" Why {v.status}: {v.reason}; to settle it: {v.settle}." if v.reason else ""
    lines.append(f"{c.number}. {TITLES[c.number]}: **{v.status}**{body}{why}")
  return lines


FAMILY_TITLES = {CLAIM4_FAMILY: "Claim 4's own models, normal and off_adv at one N under their "
                                "own architecture and epochs (judged in claim 4)"}


def _cross_check_note(models: list[Model]) -> list[str]:
  """A line saying which off-manifold rates above count the cross-check too."""
  names = sorted({", ".join(m.record["off_manifold_cross_check"]) for m in models
                  if "off_manifold_cross_check" in m.record})
  if not names:
    return []
  return [f"Off-manifold success counts an input broken when the paper's attack or the "
          f"cross-check ({'; '.join(names)}) breaks it.", ""]


def group_section(group: Group, dataset: str, out: str, suffix: str, examples: Optional[dict],
                  known_manifold: Optional[bool]) -> tuple[list[str], list[Claim]]:
  """The markdown lines and the claims of one fingerprint group; its figures, their names ending
  in `suffix`, are written into out."""
  models = group.models
  figures = {
      "Off-manifold share of the perturbations": plot_shares(
          group, f"{out}/off_manifold_share{suffix}.png"),
      "Test error vs N": plot_metric_vs_n(models, "test_error", f"{out}/test_error_vs_n{suffix}.png"),
      "On-manifold success vs N": plot_metric_vs_n(
          models, "on_manifold_success", f"{out}/on_manifold_success_vs_n{suffix}.png"),
      "Off-manifold success vs N": plot_metric_vs_n(
          models, "off_manifold_success", f"{out}/off_manifold_success_vs_n{suffix}.png"),
      "On-manifold success vs test error": plot_success_vs_error(
          models, f"{out}/on_manifold_success_vs_test_error{suffix}.png"),
      "Distance to the manifold": plot_distances(group.manifold, f"{out}/distances{suffix}.png"),
      "Regular and on-manifold adversarial examples": plot_examples(
          examples or {}, f"{out}/examples{suffix}.png"),
  }
  written = {os.path.basename(p) for p in figures.values() if p}
  claims = [dataclasses.replace(c, figure=c.figure.replace(".png", f"{suffix}.png"))
            for c in judge_claims(group, dataset, known_manifold)]
  claims = [c if c.figure in written else dataclasses.replace(c, figure="") for c in claims]
  lines = summary_lines(claims) + ["", "## Claims", "", *claim_lines(claims), "",
                                   "## Results", "", markdown_table(models), "",
                                   *_cross_check_note(models)]
  for family, members in sorted(group.families.items()):
    lines += [f"## The {family} family", "", f"{FAMILY_TITLES.get(family, family)}; never pooled "
              "with the models above.", "", markdown_table(members), "",
              *_cross_check_note(members)]
  if group.manifold:
    lines += ["## Distances to the manifold", "", _manifold_table(group.manifold), ""]
  lines += ["## Figures", ""]
  for title, path in figures.items():
    if path:
      lines += [f"### {title}", "", f"![{title}]({os.path.basename(path)})", ""]
  return lines, claims


def write_report(workdirs, dataset: str, examples: Optional[dict] = None,
                 known_manifold: Optional[bool] = None, out: Optional[str] = None) -> str:
  """Writes report.md, claims.json and the figures into `out` (default: <workdir>/report for one
  workdir); returns the path of report.md. workdirs: one workdir or several, merged by config
  fingerprint. known_manifold: the run has the true manifold (FONTS), where claim 4 is checked
  (default: inferred)."""
  workdirs = [workdirs] if isinstance(workdirs, str) else list(workdirs)
  if out is None:
    if len(workdirs) != 1:
      raise ValueError("a report over several workdirs needs an output directory (out=...)")
    out = os.path.join(workdirs[0], "report")
  os.makedirs(out, exist_ok=True)
  groups = load_groups(workdirs)
  count = sum(g.count for g in groups)
  lines = [f"# dmr report: {dataset}", "",
           f"{count} models from {len(workdirs)} workdir{'s' if len(workdirs) > 1 else ''}; "
           "rates in percent with their 95% intervals (docs/protocol.md#claims)."]
  if len(groups) > 1:
    lines += ["", f"The records come from {len(groups)} different configs (fingerprints "
              + ", ".join(str(g.fingerprint) for g in groups)
              + "): each is reported on its own and never averaged with another."]
  duplicates = sum(g.duplicates for g in groups)
  if duplicates:
    lines += ["", f"{duplicates} records of models already read from an earlier workdir were "
              "skipped (the same model, variant, N and seed, is counted once)."]
  stored = {"groups": []}
  for i, group in enumerate(groups):
    suffix = f"_{i + 1}" if len(groups) > 1 else ""
    section, claims = group_section(group, dataset, out, suffix,
                                    examples if i == 0 else None, known_manifold)
    header = (f"config fingerprint {group.fingerprint or '(none)'}, {group.count} models "
              f"from {', '.join(group.workdirs) or 'no workdir'}")
    lines += ["", f"## Group {i + 1}: {header}" if len(groups) > 1 else f"Models: {header}.", ""]
    lines += section
    stored["groups"].append({"fingerprint": group.fingerprint, "workdirs": group.workdirs,
                             "models": group.count,
                             "claims": [c.as_dict() for c in claims]})
  results.write_json_atomic(os.path.join(out, "claims.json"), stored)
  report = os.path.join(out, "report.md")
  with open(report + ".tmp", "w") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(report + ".tmp", report)
  return report


def _dataset_of(workdir: str) -> Optional[str]:
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      return json.load(f).get("dataset")
  except FileNotFoundError:
    return None


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
  parser.add_argument("--workdirs", nargs="+", required=True, help="workdirs to merge")
  parser.add_argument("--out", required=True, help="directory of report.md and claims.json")
  parser.add_argument("--dataset", help="default: the dataset of the first workdir's config.json")
  args = parser.parse_args(argv)
  missing = [w for w in args.workdirs if not os.path.exists(results.path(w))]
  if missing:
    parser.error(f"no results.json in {', '.join(missing)}: pass workdirs of dmr runs")
  dataset = args.dataset or _dataset_of(args.workdirs[0])
  if dataset is None:
    parser.error(f"{args.workdirs[0]}/config.json names no dataset: pass --dataset")
  print(f"Report: {write_report(args.workdirs, dataset, out=args.out)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
