"""Claim 4 on FONTS by measured runs: off_adv against normal conv nets over a grid of training
attack x training size N x epochs, every off_adv model attacked at eps 0.3 by the paper's attack
and by dmr.attacks.evaluate's APGD-CE and APGD-T (docs/claim4.md).

  python launch/claim4_study.py run --root=runs/claim4 --cells=sign10:5000:10:3,paper40:5000:10:3
  python launch/claim4_study.py collect --root=runs/claim4 --cells=... --out=docs/claim4_table.md \
      --figure=docs/figures/claim4.png

A cell ATTACK:N:EPOCHS:SEEDS is one workdir ROOT/<ATTACK>_n<N>_e<EPOCHS> and one
`python -m dmr.main --config=configs/fonts.py:claims` run (`cell_command`) that trains `normal`
and `off_adv` at N with SEEDS seeds each and attacks the off_adv models; rerunning it skips
finished models (dmr resumes). `run` runs the cells in order, --jobs at a time, each logging to
ROOT/logs/<cell>.log. `collect` reads each cell's results.json and profile.json: the paired
test-error gap off_adv - normal per seed, off_adv's worst-case (any-restart) success of the paper's
attack, of the cross-check and of their union, with 95% t-intervals over seeds (one seed: the
paired per-image interval of the gap and Wilson's interval of the success, over test images), and
the cell's wall time; it writes a markdown table and a figure against N.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import math
import os
import re
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np
from scipy import stats as scipy_stats

from dmr import stats

CONFIDENCE = 0.95
# Training attacks (adversarial_training.*): each reaches its whole eps-ball, steps x step_size
# >= 0.3. sign: the claims preset's cut attack, a sign step of 2.5 eps / steps; paper40: dmr's
# `paper` preset (the authors' 40 Adam steps, at lr 0.3 / 40 rather than their 0.005).
TRAINING_ATTACKS = {
    "sign10": {"steps": 10, "optimizer": "sign", "step_size": 0.075},
    "sign20": {"steps": 20, "optimizer": "sign", "step_size": 0.0375},
    "paper40": {"steps": 40, "optimizer": "adam", "step_size": 0.0075},
}
# Every cell: the claims preset on the known manifold, normal and off_adv only, the off_adv
# models attacked with the cross-check; the on-manifold attack (which the attacks stage always
# runs) cut to 10 images and one step, as claim 4 reads none of it.
COMMON_OVERRIDES = (
    "--config.stages=('classifiers','attacks')",
    "--config.manifolds=('true',)",
    "--config.attack.variants=('off_adv',)",
    "--config.attack.cross_check=('apgd-ce','apgd-t')",
    "--config.on_manifold_attack.num_test=10",
    "--config.on_manifold_attack.steps=1",
    "--config.on_manifold_attack.restarts=1",
    "--config.progress=False",
)
NORMAL = "normal"  # The cell of the normal models at (N, epochs), shared by every training attack.
CLAIMS_TRAIN_ROWS = 20_000  # data.num_train of the FONTS claims preset.


class Cell(NamedTuple):
  attack: str  # a key of TRAINING_ATTACKS, or NORMAL: the cell of the normal models
  n: int
  epochs: int
  seeds: int

  @property
  def name(self) -> str:
    return f"{self.attack}_n{self.n}_e{self.epochs}"


def parse_cell(text: str) -> Cell:
  """Cell of "ATTACK:N:EPOCHS:SEEDS", e.g. "sign10:5000:10:3"."""
  parts = text.split(":")
  numbers_ok = all(p.isdigit() and int(p) > 0 for p in parts[1:])
  if len(parts) != 4 or parts[0] not in (NORMAL, *TRAINING_ATTACKS) or not numbers_ok:
    raise SystemExit(f"cell {text!r}: expected ATTACK:N:EPOCHS:SEEDS with ATTACK one of "
                     f"{[NORMAL, *TRAINING_ATTACKS]} and positive integers, e.g. sign10:5000:10:3")
  return Cell(parts[0], int(parts[1]), int(parts[2]), int(parts[3]))


def cell_command(cell: Cell, workdir: str, python: str = sys.executable) -> list[str]:
  """The dmr.main command line of `cell` into `workdir`: its normal models (cell.attack NORMAL)
  or its off_adv models."""
  attack = TRAINING_ATTACKS.get(cell.attack, {})
  variant = "normal" if cell.attack == NORMAL else "off_adv"
  return [python, "-m", "dmr.main", "--config=configs/fonts.py:claims", f"--workdir={workdir}",
          *COMMON_OVERRIDES, f"--config.variants=('{variant}',)",
          f"--config.training_sizes=({cell.n},)", f"--config.models_per_size={cell.seeds}",
          f"--config.train.epochs={cell.epochs}",
          f"--config.data.num_train={max(cell.n, CLAIMS_TRAIN_ROWS)}",
          *(f"--config.adversarial_training.{k}={v}" for k, v in attack.items())]


def run_cell(cell: Cell, root: str, first_seed: int = 0) -> int:
  """Runs (or resumes) `cell` into ROOT/<name>, logging to ROOT/logs/<name>.log; its exit code.
  first_seed: its models are seeds first_seed, ..., first_seed + cell.seeds - 1 (a second
  process adds seeds to a cell beside one still training its first)."""
  os.makedirs(os.path.join(root, "logs"), exist_ok=True)
  suffix = f".seed{first_seed}" if first_seed else ""
  log = os.path.join(root, "logs", cell.name + suffix + ".log")
  start = time.time()
  with open(log, "a") as f:
    argv = cell_command(cell, os.path.join(root, cell.name)) + [f"--config.seed={first_seed}"]
    code = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT)
  print(f"{cell.name}: exit {code} after {time.time() - start:.0f} s (log {log})", flush=True)
  return code


# --- collecting -------------------------------------------------------------------------------


class Estimate(NamedTuple):
  value: float
  low: float
  high: float


def t_interval(values, confidence: float = CONFIDENCE) -> Estimate:
  """Mean of per-seed values [S] with Student's t interval over seeds (S >= 2; S = 1: no
  interval, low = high = nan)."""
  v = np.asarray(values, np.float64)
  if len(v) < 2:
    return Estimate(float(v.mean()), math.nan, math.nan)
  half = scipy_stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
  return Estimate(float(v.mean()), float(v.mean() - half), float(v.mean() + half))


def clipped(e: Estimate) -> Estimate:
  """A rate's interval within [0, 1]."""
  return Estimate(e.value, max(0.0, e.low), min(1.0, e.high))


def paired_image_interval(wrong_a, wrong_b, confidence: float = CONFIDENCE) -> Estimate:
  """Mean of wrong_a - wrong_b (bool [T] per test image, one model each, same images) with the
  normal interval of a paired difference over images."""
  d = np.asarray(wrong_a, np.float64) - np.asarray(wrong_b, np.float64)
  half = scipy_stats.norm.ppf(0.5 + confidence / 2) * d.std(ddof=1) / math.sqrt(len(d))
  return Estimate(float(d.mean()), float(d.mean() - half), float(d.mean() + half))


def wilson(successes: int, trials: int) -> Estimate:
  """Wilson's score interval of successes / trials (dmr.stats)."""
  i = stats.wilson_interval(successes, trials, CONFIDENCE)
  return Estimate(i.estimate, i.lo, i.hi)


# Worst-case (any-restart) success fields of an attacked record: the paper's attack, the
# cross-check, their union (dmr.experiments.cross_check_fields).
SUCCESS_FIELDS = {"paper": "off_manifold_success_any", "apgd": "off_manifold_cross_check_success",
                  "union": "off_manifold_combined_success_any"}


def paired_seeds(records: list[dict]) -> list[int]:
  """Seeds with a trained normal model and an attacked off_adv model, in order."""
  normal = {r["seed"] for r in records if r["variant"] == "normal" and "test_error" in r}
  return sorted(r["seed"] for r in records if r["variant"] == "off_adv"
                and SUCCESS_FIELDS["union"] in r and r["seed"] in normal)


def summarize(records: list[dict], wrong=None) -> dict | None:
  """The cell's measures from its sweep records (one N): normal and off_adv test errors, the
  gap, the three worst-case successes, each an Estimate (fractions), over the paired seeds;
  wrong(record) -> bool [T] per test image, for the one-seed gap interval. None: no pair yet."""
  seeds = paired_seeds(records)
  if not seeds:
    return None
  of = {(r["variant"], r["seed"]): r for r in records}
  normal = np.array([of["normal", s]["test_error"] for s in seeds])
  robust = np.array([of["off_adv", s]["test_error"] for s in seeds])
  out = {"seeds": len(seeds), "normal_error": t_interval(normal),
         "off_adv_error": t_interval(robust), "gap": t_interval(robust - normal)}
  if len(seeds) == 1 and wrong is not None:
    out["gap"] = paired_image_interval(wrong(of["off_adv", seeds[0]]),
                                       wrong(of["normal", seeds[0]]))
  for name, field in SUCCESS_FIELDS.items():
    rates = [of["off_adv", s][field] for s in seeds]
    if len(seeds) == 1:
      correct = of["off_adv", seeds[0]]["off_manifold_correct"]
      out[name] = wilson(round(rates[0] * correct), correct)
    else:
      out[name] = clipped(t_interval(rates))
  out["train_attack"] = t_interval([of["off_adv", s].get("train_attack_success", math.nan)
                                   for s in seeds])
  out["attacked_images"] = int(of["off_adv", seeds[0]]["off_manifold_evaluated"])
  return out


def wall_seconds(workdir: str) -> dict:
  """Wall time of every dmr.main run into `workdir` (profile.json), in total and per stage."""
  try:
    with open(os.path.join(workdir, "profile.json")) as f:
      runs = json.load(f)["runs"]
  except FileNotFoundError:
    return {}
  stages: dict = {}
  for run in runs:
    for stage, seconds in run.get("stages", {}).items():
      stages[stage] = stages.get(stage, 0.0) + seconds
  return {"total": sum(r.get("total", 0.0) for r in runs), **stages}


LOG_EVENT = re.compile(r"^I\d{4} (\d\d):(\d\d):(\d\d\.\d+) .*\] (?:stage (\w+)|"
                       r"(\w+) n=(\d+) seed=(\d+): (?:test error|off-manifold))")


def model_seconds(log_lines) -> dict:
  """{(stage, variant, seed): wall seconds} from a dmr.main log: the time from the previous
  event (a stage's start, or the model before it in the stage) to the line reporting the model
  trained (classifiers) or attacked (attacks), so the first model of a stage includes loading."""
  out, last, stage = {}, None, None
  for line in log_lines:
    m = LOG_EVENT.match(line)
    if not m:
      continue
    t = 3600 * int(m[1]) + 60 * int(m[2]) + float(m[3])
    if m[4]:
      stage = m[4]
    elif last is not None:
      out[stage, m[5], int(m[7])] = (t - last) % 86400
    last = t
  return out


def cell_records(workdir: str, n: int) -> list[dict]:
  """The sweep's records at N of `workdir`'s results.json ([] when there is none)."""
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      return [r for r in json.load(f)["records"] if "family" not in r and r["n"] == n]
  except FileNotFoundError:
    return []


def normal_workdirs(cell: Cell, root: str) -> list[str]:
  """The workdirs whose normal models pair with `cell`'s off_adv models, in order of preference:
  its own, its NORMAL cell's, then any other cell's of the same N and epochs (normal training
  never reads the training attack, so their normal models are the same models)."""
  own, shared = cell.name, cell._replace(attack=NORMAL).name
  suffix = f"_n{cell.n}_e{cell.epochs}"
  others = sorted(d for d in os.listdir(root) if d.endswith(suffix) and d not in (own, shared))
  return [os.path.join(root, d) for d in (own, shared, *others)]


def load_cell(cell: Cell, root: str) -> dict | None:
  """summarize() of the cell's off_adv models against the normal models of the same N and
  epochs (`normal_workdirs`), with wall times: per cell (profile.json) and the mean seconds per
  model (the logs). None when nothing is paired yet."""
  workdir = os.path.join(root, cell.name)
  records = [r for r in cell_records(workdir, cell.n) if r["variant"] == "off_adv"]
  dirs = {("off_adv", r["seed"]): workdir for r in records}
  for d in normal_workdirs(cell, root):
    for r in cell_records(d, cell.n):
      if r["variant"] == "normal" and "test_error" in r and ("normal", r["seed"]) not in dirs:
        dirs["normal", r["seed"]] = d
        records.append(r)

  def wrong(record):
    path = os.path.join(dirs[record["variant"], record["seed"]], record["outcomes"])
    with np.load(path) as f:
      return ~f["test_correct"]
  summary = summarize(records, wrong)
  if not summary:
    return None
  seconds = {}
  for d in set(dirs.values()):
    for log in glob.glob(os.path.join(root, "logs", os.path.basename(d) + ".*log")):
      with open(log) as f:
        seconds.update({k: v for k, v in model_seconds(f).items()
                        if dirs.get((k[1], k[2])) == d})
  per_model = {}
  for stage, variant in (("classifiers", "normal"), ("classifiers", "off_adv"),
                         ("attacks", "off_adv")):
    values = [v for k, v in seconds.items() if k[:2] == (stage, variant)]
    if values:
      per_model[f"{stage}_{variant}"] = float(np.mean(values))
  return {**summary, "wall": wall_seconds(workdir), "per_model": per_model}


def points(e: Estimate, scale: float = 100.0, signed: bool = False) -> str:
  """"+9.3 [+6.9, +11.4]" (signed) or "58.1 [47.2, 66.0]"; no interval when there is none."""
  fmt = "{:+.1f}" if signed else "{:.1f}"
  text = fmt.format(scale * e.value)
  if not math.isnan(e.low):
    text += f" [{fmt.format(scale * e.low)}, {fmt.format(scale * e.high)}]"
  return text


def attack_text(name: str) -> str:
  a = TRAINING_ATTACKS[name]
  return f"{a['optimizer']} {a['steps']} x {a['step_size']:g}"


TABLE_HEADER = ("| training attack | N | epochs | seeds | normal error % | off_adv error % "
                "| gap (points) | worst-case success %: paper | APGD-CE/T | union "
                "| training attack's success % | min per seed: normal, off_adv, attack "
                "| cell min |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
PER_MODEL = ("classifiers_normal", "classifiers_off_adv", "attacks_off_adv")


def cell_minutes(s: dict) -> float | None:
  """Wall minutes of the configuration: seeds x (one normal model, one off_adv model, its
  attack), from the per-model times; None when one is unknown."""
  if not all(k in s["per_model"] for k in PER_MODEL):
    return None
  return s["seeds"] * sum(s["per_model"][k] for k in PER_MODEL) / 60


def table_row(cell: Cell, s: dict) -> str:
  per = " + ".join(f"{s['per_model'][k] / 60:.1f}" if k in s["per_model"] else "?"
                   for k in PER_MODEL)
  total = cell_minutes(s)
  return (f"| {attack_text(cell.attack)} | {cell.n} | {cell.epochs} | {s['seeds']} "
          f"| {points(s['normal_error'])} | {points(s['off_adv_error'])} "
          f"| {points(s['gap'], signed=True)} | {points(s['paper'])} | {points(s['apgd'])} "
          f"| {points(s['union'])} | {100 * s['train_attack'].value:.1f} | {per} "
          f"| {'?' if total is None else f'{total:.0f}'} |\n")


def shows_claim(s: dict, max_gap: float, max_success: float) -> bool:
  """Claim 4 at a cell: >= 3 seeds, the gap's and the union success's upper bounds below the
  bounds (fractions)."""
  return s["seeds"] >= 3 and s["gap"].high < max_gap and s["union"].high < max_success


def _errorbar(ax, x, estimates, **style) -> None:
  """Points (percent) with their intervals, none where an estimate has no interval."""
  value = np.array([100 * e.value for e in estimates])
  low = [0 if math.isnan(e.low) else 100 * (e.value - e.low) for e in estimates]
  high = [0 if math.isnan(e.high) else 100 * (e.high - e.value) for e in estimates]
  ax.errorbar(x, value, yerr=[low, high], capsize=3, **style)


def plot(rows: list[tuple[Cell, dict]], path: str, max_gap: float, max_success: float,
         x: str = "n") -> None:
  """Gap and worst-case success (union: solid; the paper's attack alone: dashed) against x ("n"
  or "epochs"), one line per training attack and the other of the two, each line's x shifted by
  a few percent to keep the intervals of one x apart; the bounds of `shows_claim` dotted."""
  other = "epochs" if x == "n" else "n"
  from matplotlib.figure import Figure
  fig = Figure(figsize=(10, 3.8), dpi=90)
  axes = fig.subplots(1, 2)
  lines: dict = {}
  for cell, s in rows:
    lines.setdefault((cell.attack, getattr(cell, other)), []).append((getattr(cell, x), s))
  for i, ((attack, fixed), line) in enumerate(sorted(lines.items())):
    line.sort(key=lambda p: p[0])
    n = np.array([p[0] for p in line]) * (1 + 0.04 * i)
    color = f"C{i}"
    label = f"{attack_text(attack)}, " + (f"{fixed} epochs" if x == "n" else f"N = {fixed}")
    _errorbar(axes[0], n, [p[1]["gap"] for p in line], marker="o", color=color, label=label)
    _errorbar(axes[1], n, [p[1]["union"] for p in line], marker="o", color=color,
              label=f"{label}: union")
    _errorbar(axes[1], n, [p[1]["paper"] for p in line], marker="s", color=color,
              linestyle="--", label="paper's attack alone")
  for ax, bound, title in ((axes[0], max_gap, "test error gap, off_adv - normal (points)"),
                           (axes[1], max_success, "off_adv worst-case success at eps 0.3 (%)")):
    ax.axhline(100 * bound, color="gray", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("training size N" if x == "n" else "epochs")
    ticks = sorted({getattr(cell, x) for cell, _ in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_title(title, fontsize=9)
  axes[0].axhline(0, color="black", linewidth=0.5)
  axes[0].legend(fontsize=7)
  axes[1].set_ylim(0, 102)
  axes[1].legend(fontsize=6, loc="lower left")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path)


def collect(cells: list[Cell], root: str, out: str, figure: str | None, max_gap: float,
            max_success: float) -> list[tuple[Cell, dict]]:
  """Writes the table of every cell with paired models to `out` (and its JSON beside it), the
  figures against N to `figure` and against epochs beside it (<figure>_epochs.png); returns the
  rows."""
  rows = [(c, s) for c in cells if (s := load_cell(c, root))]
  text = TABLE_HEADER + "".join(table_row(c, s) for c, s in rows)
  shown = [c.name for c, s in rows if shows_claim(s, max_gap, max_success)]
  text += (f"\nShown (>= 3 seeds, gap's upper bound < {100 * max_gap:g} points, union success's "
           f"upper bound < {100 * max_success:g}%): {', '.join(shown) or 'none'}\n")
  with open(out, "w") as f:
    f.write(text)
  with open(os.path.splitext(out)[0] + ".json", "w") as f:
    json.dump([{"cell": c._asdict(), **{k: (v._asdict() if isinstance(v, Estimate) else v)
                                        for k, v in s.items()}} for c, s in rows], f, indent=1)
  if figure and rows:
    plot(rows, figure, max_gap, max_success)
    plot(rows, os.path.splitext(figure)[0] + "_epochs.png", max_gap, max_success, x="epochs")
  print(text)
  return rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("action", choices=("run", "collect", "commands"))
  parser.add_argument("--root", required=True)
  parser.add_argument("--cells", required=True, help="ATTACK:N:EPOCHS:SEEDS,...")
  parser.add_argument("--jobs", type=int, default=1)
  parser.add_argument("--first_seed", type=int, default=0)
  parser.add_argument("--out", default="claim4_table.md")
  parser.add_argument("--figure", default=None)
  parser.add_argument("--max_gap", type=float, default=0.03)
  parser.add_argument("--max_success", type=float, default=0.25)
  args = parser.parse_args(argv)
  cells = [parse_cell(c) for c in args.cells.split(",")]
  if args.action == "commands":
    for c in cells:
      print(" ".join(cell_command(c, os.path.join(args.root, c.name), "python")))
  elif args.action == "run":
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
      codes = list(pool.map(lambda c: run_cell(c, args.root, args.first_seed), cells))
    sys.exit(max(codes))
  else:
    collect(cells, args.root, args.out, args.figure, args.max_gap, args.max_success)


if __name__ == "__main__":
  main()
