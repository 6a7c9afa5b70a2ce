"""python -m dmr.report: one report over several workdirs (sweeps on several machines), models
pooled by config fingerprint, never across fingerprints, the intervals recomputed from the
per-image outcomes:

  python -m dmr.report --workdirs A B --out DIR [--dataset fashion_mnist]
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Optional

from dmr import results
from dmr.report.document import write_report


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
