"""report.md and claims.json: for each fingerprint group its claims' summary, verdicts,
tables and figures, written into one output directory."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from dmr import results
from dmr.report.claims import judge_claims
from dmr.report.verdicts import CLAIM4_FAMILY, Claim
from dmr.report.figures import (plot_distances, plot_examples, plot_metric_vs_n, plot_shares,
                                 plot_success_vs_error)
from dmr.report.pooling import Group, load_groups
from dmr.report.text import (claim_lines, cross_check_note, manifold_table, markdown_table,
                             summary_lines)

CLAIMS_FILE = "claims.json"
FAMILY_TITLES = {CLAIM4_FAMILY: "Claim 4's own models, normal and off_adv at one N under their "
                                "own architecture and epochs (judged in claim 4)"}


def group_section(group: Group, dataset: str, out: str, suffix: str, examples: Optional[dict],
                  known_manifold: Optional[bool]) -> tuple[list[str], list[Claim]]:
  """The markdown lines and the claims of one fingerprint group; its figures, their names ending
  in `suffix`, are written into out."""
  models = group.models
  figures = {
      "Off-manifold share of the perturbations": plot_shares(
          group, f"{out}/off_manifold_share{suffix}.png"),
      "Test error vs N": plot_metric_vs_n(
          models, "test_error", f"{out}/test_error_vs_n{suffix}.png"),
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
                                   *cross_check_note(models)]
  for family, members in sorted(group.families.items()):
    lines += [f"## The {family} family", "", f"{FAMILY_TITLES.get(family, family)}; never pooled "
              "with the models above.", "", markdown_table(members), "",
              *cross_check_note(members)]
  if group.manifold:
    lines += ["## Distances to the manifold", "", manifold_table(group.manifold), ""]
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
  results.write_json_atomic(os.path.join(out, CLAIMS_FILE), stored)
  report = os.path.join(out, "report.md")
  with open(report + ".tmp", "w") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(report + ".tmp", report)
  return report


def written_claims(workdir: str) -> Optional[list[dict]]:
  """The claims the report of `workdir` wrote (<workdir>/report/claims.json), one dict per claim
  and fingerprint group as `claims_summary` gives them; None when it wrote none."""
  try:
    with open(os.path.join(workdir, "report", CLAIMS_FILE)) as f:
      groups = json.load(f)["groups"]
  except FileNotFoundError:
    return None
  return [{"fingerprint": g["fingerprint"], **c} for g in groups for c in g["claims"]]
