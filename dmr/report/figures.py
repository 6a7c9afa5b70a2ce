"""The report's figures, png files written with matplotlib (without pyplot: no backend is
selected): rates against N with their 95% intervals, on-manifold success against test error,
claim 1's shares and distances, and the paper's Figure 1 of adversarial examples."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from matplotlib.figure import Figure

from dmr import records
from dmr.report.claims import claim1_kind
from dmr.report.verdicts import THRESHOLDS
from dmr.report.measures import (METRICS, Measure, measure, setting_measures, share,
                                 true_shares)
from dmr.report.pooling import Group, Model


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
  points = [(measure([m], "test_error"), measure([m], "on_manifold_success"), m.key.variant)
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
  """Claim 1: the true shares orthogonal to the tangent space (regular perturbations, random
  directions, on-manifold perturbations) when the run has them, else the projection-based
  residual ratios (regular, tangent and random directions, on-manifold), with 95% intervals."""
  kind = claim1_kind(group)
  if not kind:
    return None
  bars = {label.split(" ")[0]: m for label, m in true_shares(group.distances, kind).items()}
  residual = not bars
  if residual:
    bars = {label: share(group.distances, f"{kind}_{prefix}") for label, prefix in
            (("regular", ""), ("tangent", "tangent_"), ("random", "random_"),
             ("on-manifold", "on_"))}
  bars = {k: v for k, v in bars.items() if v is not None}
  if not bars:
    return None
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  ms = list(bars.values())
  scale = 1 if residual else 100
  errors = _error_bars(ms)
  ax.bar(range(len(ms)), [scale * m.value for m in ms], capsize=4, label="95% interval",
         yerr=None if errors is None else errors * scale / 100)
  if residual:
    ax.axhline(THRESHOLDS.claim1_min_leaving, color="k", ls="--", lw=1, label="threshold")
  ax.set_xticks(range(len(ms)), list(bars), fontsize=8)
  ax.set_ylabel(f"residual ratio, {kind} manifold (not a share)" if residual else
                f"share orthogonal to the {kind} manifold [%]")
  return _save(fig, ax, path)


def plot_distances(manifold: dict, path: str) -> Optional[str]:
  """Bar chart of the mean distance to each manifold of test images and adversarial examples."""
  groups = {kind: manifold[kind] for kind in records.KINDS
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
