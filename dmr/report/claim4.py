"""Claim 4, an existence claim: shown when some configuration of off_adv and normal models is
both accurate and robust with enough seeds and the cross-check; else not shown at these
configurations, each listed with what kept it from showing the claim (docs/protocol.md#claims)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from dmr import records
from dmr.report.measures import Measure, difference, measure
from dmr.report.pooling import Group, Model, by_setting
from dmr.report.text import cross_check_attacks, pct, points_text, rate_text
from dmr.report.verdicts import (CLAIM4_FAMILY, NO_INTERVAL, THRESHOLDS, Claim,
                                 _near_chance_claim, near_chance)
from dmr.stats import NOT_MEASURED, NOT_SHOWN, SHOWN, Verdict


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
