"""The four claims' verdicts for one fingerprint group: held / not held / inconclusive / not
measured (claim 4, an existence claim: shown / not shown at these configurations), each with the
95% interval that decided it (docs/protocol.md#claims). Every number a verdict compares with is
in THRESHOLDS."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from dmr import records, stats
from dmr.report.measures import Measure, difference, measure, share, true_shares
from dmr.report.pooling import Group, Model, by_setting, load_groups
from dmr.report.text import (TITLES, cross_check_attacks, pct, points_text, rate_text,
                             residual_text)
from dmr.stats import HELD, INCONCLUSIVE, NOT_HELD, NOT_MEASURED, NOT_SHOWN, SHOWN, Verdict


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """The thresholds of the verdicts: dmr's own choice, not the paper's, each stated in the
  report next to its verdict."""
  # Claim 1 (records without the true share): the projection-based residual ratio above half,
  # most of the perturbation off the manifold (also what a tangent direction must stay below).
  claim1_min_leaving: float = 0.5
  # Claim 1 (true share): the regular perturbations' share orthogonal to the tangent space at
  # least 25 points above the on-manifold perturbations' (interval ends compared): a quarter of
  # the squared norm, more than the curvature of the manifold over a perturbation's length gives
  # a perturbation along it (0 for a flat manifold).
  claim1_min_margin: float = 0.25
  # Claim 2: on-manifold attacks fool the normal models on at least 5% of (input, restart)
  # pairs: clearly above the rare successes a finite attack budget gives by chance.
  claim2_min_success: float = 0.05
  # Claim 3: a test error change and an on-manifold success change below 0 are a gain; the
  # sign alone is the claim.
  claim3_max_change: float = 0.0
  # Claims 3 and 4 compare training runs: with 2 seeds the seed-level interval under-covers the
  # spread between them (89% at FONTS's spread, docs/statistics.md#two-seeds); 3 keep 93.5%.
  min_seeds: int = 3
  # Claim 4 (an existence claim): a configuration is accurate when the upper end of its test
  # error gap, off_adv minus normal, lies below 2 points: about 4 times the between-seed SD of a
  # setting's test error (0.56 points, docs/statistics.md), so equally accurate variants pass
  # with 3 seeds and one that trades visible accuracy for robustness does not ...
  claim4_max_error_gap: float = 0.02
  # ... and robust when the upper end of the worst case over restarts of the paper's attack and
  # the cross-check (dmr.attacks.evaluate's ensemble) lies below 25% at eps 0.3: three inputs in
  # four withstand every attack, where a normal model is broken on nearly all.
  claim4_max_off_success: float = 0.25
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


def _margin_verdict(regular: Measure, on: Measure, margin: float, settle: str) -> Verdict:
  """Held when regular's interval lies `margin` above on's (lower end above on's upper end plus
  margin), not held when its upper end lies below on's lower end plus margin, else
  inconclusive."""
  above = regular.interval.lo - on.interval.hi > margin
  below = regular.interval.hi - on.interval.lo < margin
  if above or below:
    return Verdict(HELD if above else NOT_HELD, regular.interval)
  return Verdict(INCONCLUSIVE, regular.interval, (
      f"the share's interval is not {pct(margin)} points clear of the on-manifold "
      f"perturbations' ({rate_text(regular)} against {rate_text(on)})"), settle)


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


def _distance_text(d: dict) -> str:
  if "test_distance" not in d:
    return ""
  return (f"; mean distance to it {d['test_distance']:.3f} for test images, "
          f"{d['off_adversarial_distance']:.3f} for regular and "
          f"{d['on_adversarial_distance']:.3f} for on-manifold adversarial examples")


def _reference_text(group: Group) -> str:
  """"the 3 models of normal N=5000" (manifold section "models": every model measured) or "the
  reference model normal N=5000 seed 0"."""
  ref, measured = group.manifold.get("model"), group.manifold.get("models") or []
  if not ref:
    return "the reference model"
  if len(measured) > 1:
    return f"the {len(measured)} models of {ref['variant']} N={ref['n']}"
  return f"the reference model {ref['variant']} N={ref['n']} seed {ref['seed']}"


def claim1(group: Group, chance: float) -> Claim:
  """Claim 1 on the manifold kind with distances: judged on the true share (the part of each
  perturbation orthogonal to the manifold's tangent space, `_claim1_true_share`) when the
  distances stage wrote it, else on the projection-based residual ratio (`_claim1_residual`)."""
  kind = claim1_kind(group)
  if kind is None:
    return Claim(1, Verdict(NOT_MEASURED, reason="no distances stage in this run",
                            settle='add "distances" to --config.stages'))
  shares = true_shares(group.distances, kind)
  if "regular perturbations" in shares:
    return _claim1_true_share(group, kind, shares, chance)
  return _claim1_residual(group, kind, chance)


def _claim1_true_share(group: Group, kind: str, shares: dict[str, Measure],
                       chance: float) -> Claim:
  """The share of the regular perturbations' squared norm orthogonal to the tangent space at
  x's projection, in [0, 1], pooled over the models the distances stage measured, beside a
  random direction's (about 1 - k / D) and the on-manifold perturbations'. Held when its
  interval lies THRESHOLDS.claim1_min_margin above the on-manifold perturbations' and reaches the
  random direction's; not held when it lies below the random direction's or less than the margin
  above the on-manifold perturbations'. The projection-based ratios are shown, not judged."""
  regular, margin = shares["regular perturbations"], THRESHOLDS.claim1_min_margin
  random, on = shares.get("random directions"), shares.get("on-manifold perturbations")
  d = group.manifold.get(kind, {})
  residual = share(group.distances, f"{kind}_")
  references = [f"{label}: {rate_text(m)}" for label, m in shares.items() if m is not regular]
  evidence = (f"{rate_text(regular)} of the regular perturbations' squared norm is orthogonal to "
              f"the {kind} manifold's tangent space, over {_reference_text(group)}"
              + (f" ({'; '.join(references)})" if references else "")
              + (f"; the projection-based residual ratio, not judged: {residual_text(residual)}"
                 if residual else "")
              + _distance_text(d) + _angle_text(group.manifold.get("local", {}))
              + f" (held: the share's interval at least {pct(margin)} points above the "
                "on-manifold perturbations' and not below the random direction's)")
  text = (f"share {rate_text(regular)} (random directions {rate_text(random) if random else '-'}"
          f", on-manifold perturbations {rate_text(on) if on else '-'}; margin {pct(margin)} "
          "points)")
  figure = "off_manifold_share.png"
  ref = group.manifold.get("model")
  near = near_chance(group.models, [(ref["variant"], ref["n"])], chance) if ref else []
  if near:
    return _near_chance_claim(1, near, chance, evidence, figure, text)
  settle = "more attacked images: a larger --config.distances.num_test"
  if random is not None and regular.interval.hi < random.interval.lo:
    verdict = Verdict(NOT_HELD, regular.interval)
  elif on is not None:
    verdict = _margin_verdict(regular, on, margin, settle)
  else:
    verdict = _judge(regular, THRESHOLDS.claim1_min_leaving, True, "the off-manifold share",
                     settle)
  return Claim(1, verdict, evidence, figure, text)


def _claim1_residual(group: Group, kind: str, chance: float) -> Claim:
  """Records without the true share: the projection-based residual ratio of the regular
  perturbations, sum ||r(x_adv) - r(x)||^2 / sum ||delta||^2 (not a share: projection error
  enters it), beside the same ratio of directions along the manifold at the same images (the
  tangent reference: the measure's floor), of random directions and of on-manifold perturbations.

  Inconclusive when the tangent reference's interval reaches the threshold (the measure cannot
  tell a perturbation along the manifold from one leaving it); else held when the ratio's
  interval lies above the threshold (so above the tangent reference's too) and above the
  on-manifold perturbations'. Records without the tangent reference fall back to the flag
  fit_too_coarse and to ratios outside 0-1 for "manifold fit too coarse".
  """
  figure, limit = "off_manifold_share.png", THRESHOLDS.claim1_min_leaving
  d = group.manifold.get(kind, {})
  regular = share(group.distances, f"{kind}_")
  if regular is None and "off_manifold_fraction" in d:
    regular, figure = Measure(d["off_manifold_fraction"], None, 1), "distances.png"
  if regular is None:
    return Claim(1, Verdict(NOT_MEASURED, reason=f"no off-manifold share for the {kind} manifold",
                            settle='add "distances" to --config.stages'))
  tangent, random, on = (share(group.distances, f"{kind}_{prefix}")
                         for prefix in ("tangent_", "random_", "on_"))
  references = [f"{label}: {residual_text(m)}" for label, m in
                (("tangent directions", tangent), ("random directions", random),
                 ("on-manifold perturbations", on)) if m]
  evidence = (f"{residual_text(regular)} of the regular perturbations leaving the {kind} "
              "manifold (projection-based: the residual change over the perturbation's squared "
              "norm; projection error enters it, so it is not a share)"
              + (f" ({'; '.join(references)})" if references else "")
              + _distance_text(d)
              + (_fit_text(d) if tangent else "")
              + _angle_text(group.manifold.get("local", {}))
              + f" (held: the ratio's interval above {limit:.2f} and above the "
                "on-manifold perturbations'"
              + (f", the tangent directions' below {limit:.2f})" if tangent else ")"))
  text = (f"{residual_text(regular)} (threshold {limit:.2f}"
          + (f", tangent directions {residual_text(tangent)}" if tangent else "")
          + (f", on-manifold perturbations {residual_text(on)})" if on else ")"))
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
                              "manifold fit too coarse: the residual ratio lies outside 0-1",
                              settle_fit), evidence, figure, text)
  elif tangent.interval.hi >= limit:
    return Claim(1, Verdict(INCONCLUSIVE, regular.interval, (
        f"manifold fit too coarse: a direction along the manifold has the residual ratio "
        f"{residual_text(tangent)[len('residual ratio '):]}, reaching {limit:.2f}, so the "
        "measure cannot tell a perturbation along the manifold from one leaving it"),
        settle_fit), evidence, figure, text)
  settle = "more attacked images: a larger --config.distances.num_test"
  verdict = _judge(regular, limit, True, "the off-manifold share", settle)
  if on is not None and verdict.status != NOT_HELD:
    above, below = regular.interval.lo > on.interval.hi, regular.interval.hi < on.interval.lo
    if below:
      verdict = Verdict(NOT_HELD, regular.interval)
    elif not above:
      verdict = Verdict(INCONCLUSIVE, regular.interval,
                        "intervals overlap: the ratio's and the on-manifold perturbations'",
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
    parts.append(_across_sizes(gaps, no_change))
    changes = ", ".join(f"{points_text(g)} at N={n}" for n, g in gaps.items())
    texts.append(f"{on_variant} training changes test error by {changes}{_holm_text(gaps)}")
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
  evidence = "; ".join(texts) + (" (held: some N's change significantly below 0 after Holm's "
                                 "correction across the sizes and none above, and the success "
                                 "change's interval below 0)")
  verdict = _all_of(parts)
  text = "; ".join(intervals)
  near = near_chance(group.models, settings, chance)
  if near:
    return _near_chance_claim(3, near, chance, evidence, figure, text)
  if verdict.reason != NO_INTERVAL:
    seeds = min(len([m for m in group.models if m.setting == s]) for s in settings)
    if seeds < THRESHOLDS.min_seeds:
      verdict = Verdict(INCONCLUSIVE, verdict.interval, _too_few_seeds(seeds), SETTLE_SEEDS)
  return Claim(3, verdict, evidence, figure, text)


def _too_few_seeds(seeds: int) -> str:
  return (f"too few seeds: {seeds} model{'s' * (seeds != 1)} per setting, fewer than "
          f"{THRESHOLDS.min_seeds}, so the interval does not cover the spread between training "
          "runs")


def _holm_p_values(gaps: dict[int, Measure]) -> Optional[dict[int, float]]:
  """{n: Holm-adjusted p-value} of the test error changes against no change, when every N has a
  seed-level interval (else None)."""
  if not all(isinstance(g.interval, stats.SeedInterval) for g in gaps.values()):
    return None
  p = [g.interval.p_value(THRESHOLDS.claim3_max_change) for g in gaps.values()]
  return dict(zip(gaps, stats.holm_adjusted(p)))


def _holm_text(gaps: dict[int, Measure]) -> str:
  adjusted = _holm_p_values(gaps)
  if adjusted is None:
    return ""
  return (f" (Holm's correction across the {len(gaps)} size{'s' * (len(gaps) > 1)}, "
          "family-wise 5%: adjusted p " + ", ".join(f"{p:.3g} at N={n}"
                                                   for n, p in adjusted.items()) + ")")


def _across_sizes(gaps: dict[int, Measure], no_change: float) -> Verdict:
  """Claim 3(a) over the sizes N: held when Holm's step-down (family-wise 5%) rejects "no change"
  at some N with a gain and at none with a loss, not held when it rejects at some N with a loss,
  else inconclusive. Without seed-level intervals (one seed), each N's interval on its own."""
  adjusted = _holm_p_values(gaps)
  if adjusted is None:
    return _any_n([_judge(g, no_change, False, f"the test error change at N={n}",
                          _more_seeds(g, no_change)) for n, g in gaps.items()])
  rejected = {n: p <= 1 - stats.CONFIDENCE for n, p in adjusted.items()}
  loss = [n for n in gaps if rejected[n] and gaps[n].value > no_change]
  gain = [n for n in gaps if rejected[n] and gaps[n].value < no_change]
  if loss or gain:
    return Verdict(NOT_HELD if loss else HELD, gaps[(loss or gain)[0]].interval)
  n = min(adjusted, key=adjusted.get)
  return Verdict(INCONCLUSIVE, gaps[n].interval, (
      f"no N's test error change differs from 0 after Holm's correction across the "
      f"{len(gaps)} sizes (smallest adjusted p {adjusted[n]:.3g}, at N={n}: "
      f"{points_text(gaps[n])})"), _more_seeds(gaps[n], no_change))


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


@dataclasses.dataclass(frozen=True)
class Configuration:
  """One configuration of claim 4's models: off_adv and normal models at one N of one family
  (claim 4's own, or the sweep's), their test error gap and the worst-case success on off_adv."""
  label: str
  n: int
  normal: list
  robust: list
  gap: Optional[Measure]
  success: Optional[Measure]

  @property
  def seeds(self) -> int:
    return min(len(self.normal), len(self.robust))

  @property
  def cross_checked(self) -> bool:
    return len(cross_check_attacks(self.robust)) == len(self.robust)

  def obstacles(self, chance: float) -> list[str]:
    """Why this configuration does not show claim 4 ([] when it does)."""
    t, found = THRESHOLDS, []
    near = near_chance(self.normal + self.robust, [("normal", self.n), ("off_adv", self.n)],
                       chance)
    if near:
      found.append(f"near chance: {', '.join(near)}")
    if self.seeds < t.min_seeds:
      found.append(f"{self.seeds} seed{'s' * (self.seeds != 1)}, fewer than {t.min_seeds}")
    if not self.cross_checked:
      found.append("no cross-check attack (attack.cross_check), so its robustness is the "
                   "paper's attack's alone")
    if self.gap is None or self.gap.interval is None or self.success.interval is None:
      found.append(NO_INTERVAL)
      return found
    if self.gap.interval.hi >= t.claim4_max_error_gap:
      found.append(f"the gap's upper end {100 * self.gap.interval.hi:+.1f} points is not below "
                   f"{100 * t.claim4_max_error_gap:.0f}")
    if self.success.interval.hi >= t.claim4_max_off_success:
      found.append(f"the success's upper end {pct(self.success.interval.hi)}% is not below "
                   f"{pct(t.claim4_max_off_success)}%")
    return found

  def text(self) -> str:
    return (f"{self.label} at N={self.n} ({self.seeds} seed{'s' * (self.seeds != 1)}): off_adv "
            f"changes test error by {points_text(self.gap)} (normal: "
            f"{rate_text(measure(self.normal, 'test_error'))}) and the worst case over restarts "
            f"succeeds on {rate_text(self.success)}, counting "
            f"{_claim4_attack_text(self.robust)}")


def claim4_configurations(group: Group) -> list[Configuration]:
  """Claim 4's configurations: off_adv and normal at each N of claim 4's own family, then of the
  sweep, where the off_adv models were attacked."""
  found = []
  for models, family in ((group.families.get(CLAIM4_FAMILY, []), True), (group.models, False)):
    normal, robust = by_setting(models, "normal"), by_setting(models, "off_adv")
    for n in robust:
      success = measure(robust[n], "off_manifold_success_any")
      if n in normal and success is not None:
        gap = difference(normal[n], robust[n], "test_error", paired=True)
        found.append(Configuration(_claim4_models_text(normal[n] + robust[n], family), n,
                                   normal[n], robust[n], gap, success))
  return found


def claim4(group: Group, chance: float, known_manifold: bool) -> Claim:
  """An existence claim: shown when some configuration of off_adv and normal models (claim 4's
  own family at each of its N, or the sweep's at each N) has at least THRESHOLDS.min_seeds seeds,
  a test error gap whose interval lies below claim4_max_error_gap and a worst-case success of the
  paper's attack with the cross-check (dmr.attacks.evaluate's ensemble) whose interval lies
  below claim4_max_off_success; else not shown at these configurations, each listed with what
  kept it from showing the claim (inconclusive when every one is near chance). Checked where the
  manifold is known (FONTS), as the paper does."""
  if not known_manifold:
    return Claim(4, Verdict(NOT_MEASURED, reason="checked on FONTS only, whose manifold is known",
                            settle="run configs/fonts.py"))
  configurations = claim4_configurations(group)
  family = CLAIM4_FAMILY in group.families
  if not configurations:
    models = group.families.get(CLAIM4_FAMILY) or group.models
    return Claim(4, Verdict(NOT_MEASURED, reason="needs attacked off_adv and normal models at "
                            f"one N ({_claim4_models_text(models, family)})",
                            settle='--config.variants including "normal" and "off_adv"'))
  t = THRESHOLDS
  obstacles = [c.obstacles(chance) for c in configurations]
  shown = next((c for c, o in zip(configurations, obstacles) if not o), None)
  decisive = shown or configurations[0]
  evidence = ("; ".join(c.text() + (f" (does not show it: {'; '.join(o)})" if o else
                                   " (shows it)")
                        for c, o in zip(configurations, obstacles))
              + f" (shown: some configuration with at least {t.min_seeds} seeds, the gap's "
                f"interval below {100 * t.claim4_max_error_gap:.0f} points and the worst-case "
                f"success's below {pct(t.claim4_max_off_success)}% with the cross-check)")
  text = (f"gap {points_text(decisive.gap)}, success {rate_text(decisive.success)}"
          + (f" ({decisive.label} at N={decisive.n})" if len(configurations) > 1 else ""))
  figure = "" if family else "off_manifold_success_vs_n.png"
  if shown:
    return Claim(4, Verdict(SHOWN, shown.success.interval), evidence, figure, text)
  near = [n for c in configurations for n in near_chance(
      c.normal + c.robust, [("normal", c.n), ("off_adv", c.n)], chance)]
  if all(o[0].startswith("near chance") for o in obstacles):
    return _near_chance_claim(4, near, chance, evidence, figure, text)
  return Claim(4, Verdict(NOT_SHOWN, decisive.success.interval, (
      "no configuration is both accurate and robust with enough seeds and the cross-check: "
      + "; ".join(f"{c.label} at N={c.n}: {'; '.join(o)}"
                  for c, o in zip(configurations, obstacles))),
      "claim 4's own models with more seeds and the cross-check: --config.claim4.architecture, "
      "--config.models_per_size=3 and --config.attack.cross_check (the FONTS paper preset)"),
      evidence, figure, text)


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


