"""results.json -> report/report.md with tables, png figures and one verdict per claim.

Every number in the report is computed from results.json (and the example images the attacks
stage saved); nothing is hard-coded. A claim whose inputs are missing from this run is reported
as "not measured in this run".
"""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np
from matplotlib.figure import Figure  # Figures without pyplot: no backend is selected.

from dmr import results

METRICS = {
    "test_error": "test error",
    "off_manifold_success": "off-manifold success (paper rate)",
    "off_manifold_success_any": "off-manifold success (any restart)",
    "on_manifold_success": "on-manifold success (paper rate)",
    "on_manifold_success_any": "on-manifold success (any restart)",
}
# Thresholds of the verdicts, stated in the report next to each verdict.
# Claim 1: most of a regular perturbation leaves the manifold, (d(x_adv)^2 - d(x)^2) / ||delta||^2
# (a distance ratio would depend on how well the manifold fits test images, not on the attack).
# The angle to the local subspace of the nearest training images is reported beside its value
# for a random direction, but not judged: in 784 dimensions a random direction is already ~75°
# from a 49-dim subspace, so the angle alone cannot tell "orthogonal" from "random".
CLAIM1_MIN_LEAVING = 0.5
CLAIM2_MIN_SUCCESS = 0.05  # on-manifold attacks fool the normal models on >= 5% of inputs
CLAIM4_MAX_ERROR_GAP = 0.03  # robust model's test error within 3 points of the normal one
CLAIM4_MAX_OFF_SUCCESS = 0.5  # and the regular attack succeeds on at most half the inputs


def aggregate(records: list[dict], metric: str) -> dict[str, dict[int, tuple[float, float, int]]]:
  """{variant: {n: (mean, std, number of models)}} of `metric` over seeds (missing values skipped)."""
  table: dict[str, dict[int, list[float]]] = {}
  for r in records:
    if r.get(metric) is not None and not math.isnan(r[metric]):
      table.setdefault(r["variant"], {}).setdefault(r["n"], []).append(r[metric])
  return {v: {n: (float(np.mean(x)), float(np.std(x)), len(x)) for n, x in sorted(by_n.items())}
          for v, by_n in table.items()}


def markdown_table(records: list[dict]) -> str:
  """One row per (variant, n): every metric's mean +- std over seeds, in percent."""
  present = [m for m in METRICS if any(m in r for r in records)]
  tables = {m: aggregate(records, m) for m in present}
  keys = sorted({(r["variant"], r["n"]) for r in records})
  lines = ["| variant | N | models | " + " | ".join(METRICS[m] for m in present) + " |",
           "|---|---:|---:|" + "---:|" * len(present)]
  for variant, n in keys:
    cells = []
    for m in present:
      mean, std, _ = tables[m].get(variant, {}).get(n, (math.nan, math.nan, 0))
      cells.append("-" if math.isnan(mean) else f"{100 * mean:.1f} ± {100 * std:.1f}")
    count = sum(1 for r in records if (r["variant"], r["n"]) == (variant, n))
    lines.append(f"| {variant} | {n} | {count} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _save(fig, ax, path: str) -> str:
  """Adds legend and grid to ax, writes fig as png to path; returns path."""
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return path


def plot_metric_vs_n(records: list[dict], metric: str, path: str) -> Optional[str]:
  """Line plot of `metric` (mean +- std over seeds) against N, one line per variant."""
  table = aggregate(records, metric)
  if not table:
    return None
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  for variant, by_n in sorted(table.items()):
    ns = list(by_n)
    means = np.array([by_n[n][0] for n in ns])
    stds = np.array([by_n[n][1] for n in ns])
    ax.errorbar(ns, 100 * means, yerr=100 * stds, marker="o", capsize=3, label=variant)
  ax.set_xscale("log")
  ax.set_xlabel("training set size N")
  ax.set_ylabel(f"{METRICS[metric]} [%]")
  return _save(fig, ax, path)


def plot_success_vs_error(records: list[dict], path: str) -> Optional[str]:
  """Scatter of on-manifold success against test error, one point per model."""
  points = [(r["test_error"], r["on_manifold_success"], r["variant"]) for r in records
            if r.get("on_manifold_success") is not None and "test_error" in r]
  if not points:
    return None
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  for variant in sorted({p[2] for p in points}):
    xs = [100 * p[0] for p in points if p[2] == variant]
    ys = [100 * p[1] for p in points if p[2] == variant]
    ax.scatter(xs, ys, label=variant)
  ax.set_xlabel("test error [%]")
  ax.set_ylabel("on-manifold success [%]")
  return _save(fig, ax, path)


def plot_distances(manifold: dict, path: str) -> Optional[str]:
  """Bar chart of the mean distance to each manifold of test images and adversarial examples."""
  groups = {kind: manifold[kind] for kind in ("learned", "true") if kind in manifold}
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
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  return path


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


def _mean_of(records, variant, metric, n=None):
  values = [r[metric] for r in records if r["variant"] == variant and r.get(metric) is not None
            and (n is None or r["n"] == n)]
  return float(np.mean(values)) if values else None


def claim1(manifold: dict) -> str:
  kind = "true" if "true" in manifold else "learned" if "learned" in manifold else None
  if kind is None:
    return "not measured in this run (no distances stage)."
  d = manifold[kind]
  fraction = d["off_manifold_fraction"]
  angle = manifold.get("local", {}).get("angle_degrees")
  held = fraction >= CLAIM1_MIN_LEAVING
  random_angle = manifold.get("local", {}).get("random_direction_angle_degrees")
  angle_text = (f"; the perturbation makes {angle:.1f}° with the local subspace of the nearest "
                f"training images (a random direction: {random_angle:.1f}°)"
                if angle is not None and random_angle is not None else "")
  return (f"**{'held' if held else 'not held'}**: {100 * fraction:.0f}% of the squared norm of "
          f"the regular perturbations (mean L2 {d['perturbation_norm']:.2f}) leaves the {kind} "
          f"manifold: distance {d['test_distance']:.3f} for test images, "
          f"{d['off_adversarial_distance']:.3f} for adversarial examples, "
          f"{d['on_adversarial_distance']:.3f} for on-manifold ones{angle_text} (threshold: "
          f">= {100 * CLAIM1_MIN_LEAVING:.0f}% leaves).")


def claim2(records: list[dict]) -> str:
  success = _mean_of(records, "normal", "on_manifold_success")
  if success is None:
    return "not measured in this run (no on-manifold attacks on normal models)."
  held = success >= CLAIM2_MIN_SUCCESS
  any_rate = _mean_of(records, "normal", "on_manifold_success_any")
  return (f"**{'held' if held else 'not held'}**: on-manifold attacks fool the normally trained "
          f"models on {100 * success:.1f}% of (input, restart) pairs on average"
          + (f" ({100 * any_rate:.1f}% of inputs with any restart)" if any_rate is not None else "")
          + f" (threshold: >= {100 * CLAIM2_MIN_SUCCESS:.0f}%).")


def claim3(records: list[dict]) -> str:
  on_variant = next((v for v in ("on_adv_true", "on_adv_learned")
                     if any(r["variant"] == v for r in records)), None)
  sizes = sorted({r["n"] for r in records if r["variant"] == "normal"})
  parts, verdicts = [], []
  gaps = []
  for n in sizes if on_variant else []:
    normal = _mean_of(records, "normal", "test_error", n)
    on = _mean_of(records, on_variant, "test_error", n)
    if normal is not None and on is not None:
      gaps.append((n, normal, on))
  if gaps:
    mean_gap = float(np.mean([on - normal for _, normal, on in gaps]))
    verdicts.append(mean_gap < 0)
    parts.append(f"{on_variant} training changes test error by {100 * mean_gap:+.1f} points on "
                 "average (" + ", ".join(f"N={n}: {100 * normal:.1f}% -> {100 * on:.1f}%"
                                         for n, normal, on in gaps) + ")")
  success = [(n, _mean_of(records, "normal", "on_manifold_success", n)) for n in sizes]
  success = [(n, s) for n, s in success if s is not None]
  if len(success) >= 2:
    (n0, s0), (n1, s1) = success[0], success[-1]
    verdicts.append(s1 < s0)
    parts.append(f"on-manifold success of normal models goes from {100 * s0:.1f}% at N={n0} to "
                 f"{100 * s1:.1f}% at N={n1}")
  if not verdicts:
    return "not measured in this run (needs on-manifold adversarial training or several N)."
  held = all(verdicts)
  return f"**{'held' if held else 'not held'}**: " + "; ".join(parts) + "."


def claim4(records: list[dict], known_manifold: bool) -> str:
  """Checked where the manifold is known (FONTS), as the paper does."""
  if not known_manifold:
    return "checked on FONTS only, whose manifold is known (run configs/fonts.py)."
  sizes = sorted({r["n"] for r in records if r["variant"] == "off_adv"})
  if not sizes:
    return "not measured in this run (no off_adv models)."
  n = sizes[-1]
  normal = _mean_of(records, "normal", "test_error", n)
  robust = _mean_of(records, "off_adv", "test_error", n)
  off = _mean_of(records, "off_adv", "off_manifold_success", n)
  if normal is None or robust is None or off is None:
    return "not measured in this run (needs normal and off_adv models with attacks)."
  held = robust - normal <= CLAIM4_MAX_ERROR_GAP and off <= CLAIM4_MAX_OFF_SUCCESS
  return (f"**{'held' if held else 'not held'}**: at N={n}, the off_adv model has test error "
          f"{100 * robust:.1f}% (normal: {100 * normal:.1f}%) and the regular attack succeeds "
          f"on {100 * off:.1f}% (thresholds: within {100 * CLAIM4_MAX_ERROR_GAP:.0f} points, "
          f"<= {100 * CLAIM4_MAX_OFF_SUCCESS:.0f}%).")


def write_report(workdir: str, dataset: str, examples: Optional[dict] = None,
                 known_manifold: bool = False) -> str:
  """Writes workdir/report/report.md and its figures; returns the path of report.md.
  known_manifold: the run has the true manifold (FONTS), where claim 4 is checked."""
  res = results.load(workdir)
  records, manifold = res["records"], res["manifold"]
  out = os.path.join(workdir, "report")
  os.makedirs(out, exist_ok=True)
  figures = {
      "Test error vs N": plot_metric_vs_n(records, "test_error", f"{out}/test_error_vs_n.png"),
      "On-manifold success vs N": plot_metric_vs_n(records, "on_manifold_success",
                                                    f"{out}/on_manifold_success_vs_n.png"),
      "Off-manifold success vs N": plot_metric_vs_n(records, "off_manifold_success",
                                                    f"{out}/off_manifold_success_vs_n.png"),
      "On-manifold success vs test error": plot_success_vs_error(
          records, f"{out}/on_manifold_success_vs_test_error.png"),
      "Distance to the manifold": plot_distances(manifold, f"{out}/distances.png"),
      "Regular and on-manifold adversarial examples": plot_examples(
          examples or {}, f"{out}/examples.png"),
  }
  lines = [f"# dmr report: {dataset}", "",
           f"{len(records)} models; numbers are means ± std over seeds, in percent.", "",
           "## Claims", "",
           f"1. Regular adversarial examples leave the manifold: {claim1(manifold)}",
           f"2. On-manifold adversarial examples exist: {claim2(records)}",
           f"3. On-manifold adversarial examples are generalization errors: {claim3(records)}",
           f"4. Robustness and generalization are not contradicting: "
           f"{claim4(records, known_manifold)}", "",
           "## Results", "", markdown_table(records), ""]
  if manifold:
    lines += ["## Distances to the manifold", "", _manifold_table(manifold), ""]
  lines += ["## Figures", ""]
  for title, path in figures.items():
    if path:
      lines += [f"### {title}", "", f"![{title}]({os.path.basename(path)})", ""]
  report = os.path.join(out, "report.md")
  with open(report + ".tmp", "w") as f:
    f.write("\n".join(lines))
  os.replace(report + ".tmp", report)
  return report


def _manifold_table(manifold: dict) -> str:
  lines = ["| quantity | value |", "|---|---:|"]
  for group, values in sorted(manifold.items()):
    if isinstance(values, dict) and group != "model":
      for key, value in sorted(values.items()):
        if isinstance(value, (int, float)):
          lines.append(f"| {group}: {key} | {value:.4g} |")
  return "\n".join(lines)
