"""The four claims' verdicts for one fingerprint group: held / not held / inconclusive / not
measured, each with the 95% interval that decided it (docs/protocol.md#claims). Every number a
verdict compares with is in THRESHOLDS."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from dmr import records, stats
from dmr.report.measures import Measure, difference, measure, share
from dmr.report.pooling import Group, Model, by_setting, load_groups
from dmr.report.text import (TITLES, cross_check_attacks, pct, points_text, rate_text,
                             share_text)
from dmr.stats import HELD, INCONCLUSIVE, NOT_HELD, NOT_MEASURED, Verdict


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """The thresholds of the verdicts: dmr's own choice, not the paper's, each stated in the
  report next to its verdict."""
  # Claim 1: the share of the perturbation's squared norm leaving the manifold; above half, most
  # of the perturbation is off the manifold (also what a tangent direction must stay below).
  claim1_min_leaving: float = 0.5
  # Claim 2: on-manifold attacks fool the normal models on at least 5% of (input, restart)
  # pairs: clearly above the rare successes a finite attack budget gives by chance.
  claim2_min_success: float = 0.05
  # Claim 3: a test error change and an on-manifold success change below 0 are a gain; the
  # sign alone is the claim.
  claim3_max_change: float = 0.0
  # Claim 3 compares training runs: one model per setting hides their spread.
  min_seeds: int = 2
  # Claim 4: the robust model's test error within 3 points of the normal one ("accurate") ...
  claim4_max_error_gap: float = 0.03
  # ... and the regular attack succeeding on at most half the inputs ("robust").
  claim4_max_off_success: float = 0.5
  # A setting whose test error interval reaches within 5 points of chance (1 - 1/K) did not
  # learn: its verdicts would describe untrained models.
  near_chance_points: float = 0.05


THRESHOLDS = Thresholds()

CLASSES = {"fashion_mnist": 10, "emnist": 10, "celeb_a": 2, "fonts": 10}
ON_VARIANTS = ("on_adv_true", "on_adv_learned")
CLAIM4_FAMILY = "claim4"  # The records of claim 4's own models (dmr.train.classifier.CLAIM4).
SETTLE_SEEDS = ("more models per setting: --config.models_per_size=3 (or launch/sweep.py "
                "--seeds=0,1,2)")
SETTLE_CHANCE = "models that learn: more --config.train.epochs or larger --config.training_sizes"
SETTLE_OUTCOMES = "a rerun in a new workdir: these records predate the per-image outcomes"
NO_INTERVAL = "no interval: per-image outcomes missing"


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


def chance_error(dataset: str) -> float:
  if dataset not in CLASSES:
    raise ValueError(f"dataset={dataset!r} is unknown to the report; known: {sorted(CLASSES)}")
  return 1.0 - 1.0 / CLASSES[dataset]


def near_chance(models: list[Model], settings, chance: float) -> list[str]:
  """Descriptions of the settings (variant, n) whose test error reaches within
  THRESHOLDS.near_chance_points of chance (the interval's upper end, or the stored value)."""
  near = []
  for variant, n in sorted(set(settings)):
    m = measure([x for x in models if x.setting == (variant, n)], "test_error")
    if m is not None and (m.interval.hi if m.interval else m.value) >= (
        chance - THRESHOLDS.near_chance_points):
      near.append(f"{variant} N={n} ({rate_text(m)})")
  return near


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


def claim1_kind(group: Group) -> Optional[str]:
  """The manifold kind claim 1 is measured on: the first of records.KINDS with distances."""
  return next((k for k in records.KINDS if isinstance(group.manifold.get(k), dict)
               or f"{k}_leaving_sq" in group.distances), None)


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
  figure, limit = "off_manifold_share.png", THRESHOLDS.claim1_min_leaving
  kind = claim1_kind(group)
  if kind is None:
    return Claim(1, Verdict(NOT_MEASURED, reason="no distances stage in this run",
                            settle='add "distances" to --config.stages'))
  d = group.manifold.get(kind, {})
  regular = share(group.distances, f"{kind}_")
  if regular is None and "off_manifold_fraction" in d:
    regular, figure = Measure(d["off_manifold_fraction"], None, 1), "distances.png"
  if regular is None:
    return Claim(1, Verdict(NOT_MEASURED, reason=f"no off-manifold share for the {kind} manifold",
                            settle='add "distances" to --config.stages'))
  tangent, random, on = (share(group.distances, f"{kind}_{prefix}")
                         for prefix in ("tangent_", "random_", "on_"))
  references = [f"{label}: {share_text(m)}" for label, m in
                (("tangent directions", tangent), ("random directions", random),
                 ("on-manifold perturbations", on)) if m]
  evidence = (f"{share_text(regular)} of the regular perturbations' squared norm leaves the "
              f"{kind} manifold"
              + (f" ({'; '.join(references)})" if references else "")
              + (f"; mean distance to it {d['test_distance']:.3f} for test images, "
                 f"{d['off_adversarial_distance']:.3f} for regular and "
                 f"{d['on_adversarial_distance']:.3f} for on-manifold adversarial examples"
                 if "test_distance" in d else "")
              + (_fit_text(d) if tangent else "")
              + _angle_text(group.manifold.get("local", {}))
              + f" (held: the share's interval above {pct(limit)}% and above the "
                "on-manifold perturbations'"
              + (f", the tangent directions' below {pct(limit)}%)" if tangent
                 else ")"))
  text = (f"share {share_text(regular)} (threshold {pct(limit)}%"
          + (f", tangent directions {rate_text(tangent)}" if tangent else "")
          + (f", on-manifold perturbations {rate_text(on)})" if on else ")"))
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
      return Claim(1, Verdict(INCONCLUSIVE, regular.interval, f"manifold fit too coarse{detail}",
                              settle_fit), evidence, figure, text)
    if not 0.0 <= regular.value <= 1.0:
      return Claim(1, Verdict(INCONCLUSIVE, regular.interval,
                              "manifold fit too coarse: the share lies outside 0-100%",
                              settle_fit), evidence, figure, text)
  elif tangent.interval.hi >= limit:
    return Claim(1, Verdict(INCONCLUSIVE, regular.interval, (
        f"manifold fit too coarse: {rate_text(tangent)} of a direction along the manifold "
        f"leaves it by this measure, reaching {pct(limit)}%, so the measure cannot "
        "tell a perturbation along the manifold from one leaving it"), settle_fit),
                 evidence, figure, text)
  settle = "more attacked images: a larger --config.distances.num_test"
  verdict = _judge(regular, limit, True, "the off-manifold share", settle)
  if on is not None and verdict.status != NOT_HELD:
    above, below = regular.interval.lo > on.interval.hi, regular.interval.hi < on.interval.lo
    if below:
      verdict = Verdict(NOT_HELD, regular.interval)
    elif not above:
      verdict = Verdict(INCONCLUSIVE, regular.interval,
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
  evidence = (f"on-manifold attacks fool the normal models of N={n} on {rate_text(success)} "
              f"of (input, restart) pairs, over {len(normal)} model{'s' * (len(normal) > 1)} "
              f"(held: the interval above {pct(THRESHOLDS.claim2_min_success)}%)")
  text = f"success {rate_text(success)} (threshold {pct(THRESHOLDS.claim2_min_success)}%)"
  near = near_chance(group.models, [("normal", n)], chance)
  if near:
    return _near_chance_claim(2, near, chance, evidence, figure, text)
  verdict = _judge(success, THRESHOLDS.claim2_min_success, True, "the on-manifold success",
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
  no_change = THRESHOLDS.claim3_max_change
  if gaps:
    settings += [(v, n) for n in gaps for v in ("normal", on_variant)]
    per_n = [_judge(g, no_change, False, f"the test error change at N={n}",
                    _more_seeds(g, no_change)) for n, g in gaps.items()]
    parts.append(_any_n(per_n))
    changes = ", ".join(f"{points_text(g)} at N={n}" for n, g in gaps.items())
    texts.append(f"{on_variant} training changes test error by {changes}")
    intervals.append(f"test error change {changes}")
  attacked = [n for n in normal if measure(normal[n], "on_manifold_success") is not None]
  if len(attacked) >= 2:
    small, large = attacked[0], attacked[-1]
    drop = difference(normal[small], normal[large], "on_manifold_success", paired=False)
    settings += [("normal", small), ("normal", large)]
    parts.append(_judge(drop, no_change, False, "the on-manifold success change",
                        "more attacked images and models: a larger "
                        "--config.on_manifold_attack.num_test and --config.models_per_size"))
    texts.append(f"normal models' on-manifold success changes by {points_text(drop)} from "
                 f"N={small} to N={large}")
    intervals.append(f"success change N={small} -> {large} {points_text(drop)}")
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
    if seeds < THRESHOLDS.min_seeds:
      verdict = Verdict(INCONCLUSIVE, verdict.interval, (
          f"too few seeds: {seeds} model per setting, so the interval covers the test images "
          "but not the spread between training runs"), SETTLE_SEEDS)
  return Claim(3, verdict, evidence, figure, text)


def _claim4_models_text(models: list[Model], family: bool) -> str:
  """Which models claim 4 judged: its own family (architecture, epochs) or the sweep's."""
  if not family:
    return "the sweep's models"
  trained = sorted({records.family_training(m.record) for m in models})
  return ("claim 4's own models ("
          + "; ".join(f"{a}, {e} epoch{'s' * (e != 1)}" for a, e in trained) + ")")


def _claim4_attack_text(robust: list[Model]) -> str:
  """Which regular attack claim 4's success counts: the paper's alone, or its union with the
  cross-check, then with each attack's own success."""
  names = next(iter(cross_check_attacks(robust)), None)
  if not names:
    return "the paper's attack alone"
  alone = [f"{label}: {rate_text(m)}" for label, m in (
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
  n, max_gap, max_success = (sizes[-1], THRESHOLDS.claim4_max_error_gap,
                             THRESHOLDS.claim4_max_off_success)
  gap = difference(normal[n], robust[n], "test_error", paired=True)
  success = measure(robust[n], "off_manifold_success")
  evidence = (f"on {_claim4_models_text(normal[n] + robust[n], family)}, at N={n}, off_adv "
              f"training changes test error by {points_text(gap)} (normal: "
              f"{rate_text(measure(normal[n], 'test_error'))}) and the regular attack succeeds "
              f"on {rate_text(success)}, counting {_claim4_attack_text(robust[n])} (held: the "
              f"gap's interval below {100 * max_gap:.0f} points and the success's below "
              f"{pct(max_success)}%)")
  text = f"gap {points_text(gap)}, success {rate_text(success)}"
  near = near_chance(models, [("normal", n), ("off_adv", n)], chance)
  if near:
    return _near_chance_claim(4, near, chance, evidence, figure, text)
  verdict = _all_of([
      _judge(gap, max_gap, False, "the test error gap", _more_seeds(gap, max_gap)),
      _judge(success, max_success, False, "the off-manifold success",
             "more attacked images: a larger --config.attack.num_test")])
  return Claim(4, verdict, evidence, figure, text)


def _known_manifold(group: Group) -> bool:
  return "true" in group.manifold or any(records.on_kind(m.outcomes) == "true" or
                                         m.key.variant == "on_adv_true"
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


