"""The report's text: rates, differences and shares with their intervals, the claims' summary
and verdict lines, and the markdown tables of the models and of claim 1's distances."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dmr.report.measures import METRICS, Measure, setting_measures
from dmr.report.pooling import Model
from dmr.stats import HELD, INCONCLUSIVE, NOT_HELD, NOT_MEASURED, NOT_SHOWN, SHOWN

if TYPE_CHECKING:
  from dmr.report.verdicts import Claim

TITLES = {
    1: "Regular adversarial examples leave the manifold",
    2: "On-manifold adversarial examples exist",
    3: "On-manifold adversarial examples are generalization errors",
    4: "Robustness and generalization are not contradicting",
}


def pct(x: float) -> str:
  return f"{100 * x:.1f}"


def rate_text(m: Measure) -> str:
  """"12.3% [10.1, 14.6]" (a rate) or "12.3% (no interval)"."""
  if m.interval is None:
    return f"{pct(m.value)}% (no interval)"
  return f"{pct(m.value)}% [{pct(m.interval.lo)}, {pct(m.interval.hi)}]"


def points_text(m: Measure) -> str:
  """A difference of rates in percentage points, signed."""
  if m.interval is None:
    return f"{100 * m.value:+.1f} points (no interval)"
  return (f"{100 * m.value:+.1f} points [{100 * m.interval.lo:+.1f}, "
          f"{100 * m.interval.hi:+.1f}]")


def residual_text(m: Measure) -> str:
  """A projection-based claim-1 ratio sum ||r(x_adv) - r(x)||^2 / sum ||delta||^2, "residual
  ratio 0.850 [0.801, 0.897]": not a share (projection error enters it, so it can leave [0, 1])."""
  if m.interval is None:
    return f"residual ratio {m.value:.3f} (no interval)"
  return f"residual ratio {m.value:.3f} [{m.interval.lo:.3f}, {m.interval.hi:.3f}]"


def and_words(numbers: list[int]) -> str:
  """"1", "1 and 2", "1, 2 and 3"."""
  words = [str(n) for n in numbers]
  return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def summary_lines(claims: list[Claim]) -> list[str]:
  """The one-screen summary: a table of the claims, then what this run's scale settles."""
  lines = ["| claim | verdict | 95% interval | figure |", "|---|---|---|---|"]
  for c in claims:
    figure = f"[{c.figure}]({c.figure})" if c.figure else "-"
    lines.append(f"| {c.number}. {TITLES[c.number]} | **{c.verdict.status}** | "
                 f"{c.interval_text or '-'} | {figure} |")
  settled = [c.number for c in claims if c.verdict.status in (HELD, NOT_HELD, SHOWN)]
  lines += ["", "This run's scale settles "
            + (f"claim{'s' if len(settled) > 1 else ''} {and_words(settled)}." if settled
               else "none of the claims.")]
  for c in claims:
    if c.verdict.status in (INCONCLUSIVE, NOT_MEASURED, NOT_SHOWN):
      lines.append(f"- Claim {c.number} is {c.verdict.status}: {c.verdict.reason}; to settle "
                   f"it: {c.verdict.settle}.")
  return lines


def claim_lines(claims: list[Claim]) -> list[str]:
  """One line per claim: its verdict, its evidence and, unless settled, why and what settles it."""
  lines = []
  for c in claims:
    v = c.verdict
    body = f": {c.evidence}." if c.evidence else "."
    why = f" Why {v.status}: {v.reason}; to settle it: {v.settle}." if v.reason else ""
    lines.append(f"{c.number}. {TITLES[c.number]}: **{v.status}**{body}{why}")
  return lines


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
                 + " | ".join("-" if c is None else rate_text(c) for c in cells) + " |")
  return "\n".join(lines)


def manifold_table(manifold: dict) -> str:
  """Every number of results.json's manifold section; a share outside [0, 1] says why."""
  lines = ["| quantity | value |", "|---|---:|"]
  for group, values in sorted(manifold.items()):
    if isinstance(values, dict) and group != "model":
      for key, value in sorted(values.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
          note = (" (a residual ratio outside [0, 1]: projection error, see claim 1)"
                  if key == "off_manifold_fraction" and not 0 <= value <= 1 else "")
          lines.append(f"| {group}: {key} | {value:.4g}{note} |")
  return "\n".join(lines)


def cross_check_attacks(models: list[Model]) -> list[tuple[str, ...]]:
  """The cross-check attacks of each model that had one."""
  return [m.attacks.cross_check.attacks for m in models
          if m.attacks and m.attacks.cross_check is not None]


def cross_check_note(models: list[Model]) -> list[str]:
  """A line saying which off-manifold rates above count the cross-check too."""
  names = sorted({", ".join(attacks) for attacks in cross_check_attacks(models)})
  if not names:
    return []
  return [f"Off-manifold success counts an input broken when the paper's attack or the "
          f"cross-check ({'; '.join(names)}) breaks it.", ""]

