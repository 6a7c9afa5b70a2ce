"""The four claims' verdicts for one fingerprint group: held / not held / inconclusive / not
measured (claim 4, an existence claim: shown / not shown at these configurations, dmr.report.claim4),
each with the 95% interval that decided it (docs/protocol.md#claims). Every number a verdict
compares with is in THRESHOLDS (dmr.report.verdicts)."""
from __future__ import annotations

from typing import Optional

from dmr import records, stats
from dmr.report.claim4 import claim4
from dmr.report.measures import Measure, difference, measure, share, true_shares
from dmr.report.pooling import Group, by_setting, load_groups
from dmr.report.text import pct, points_text, rate_text, residual_text
from dmr.report.verdicts import (NO_INTERVAL, ON_VARIANTS, SETTLE_SEEDS, THRESHOLDS, Claim,
                                 _all_of, _any_n, _judge, _more_seeds, _near_chance_claim,
                                 chance_error, near_chance)
from dmr.stats import HELD, INCONCLUSIVE, NOT_HELD, NOT_MEASURED, Verdict


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


