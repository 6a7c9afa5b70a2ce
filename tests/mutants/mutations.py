"""Semantic mutations of the science paths and the test files that must catch each one.

Each mutation replaces `old` (which must occur exactly once in `file`) by `new`. This file holds
the Mutation type and the mutations of the storage and data layers; every `mutations_*.py` beside
it adds the MUTATIONS of one area (training, attacks stage, distances, report), all gathered
into ALL.
"""
from __future__ import annotations

import dataclasses
import importlib
import pathlib


@dataclasses.dataclass(frozen=True)
class Mutation:
  name: str
  description: str
  file: str
  old: str
  new: str
  tests: tuple[str, ...]


MUTATIONS = [
    Mutation("results_no_lock", "results.json updates without the file lock",
             "dmr/results.py", "    fcntl.flock(lock, fcntl.LOCK_EX)\n", "    pass\n",
             ("tests/test_results.py",)),
    Mutation("fonts_wrong_glyph", "every FONTS row renders font 0 and the next letter",
             "dmr/data/fonts.py",
             "return self.prototypes[self.font[index], self.label[index]][..., None]",
             "return self.prototypes[0 * self.font[index], (self.label[index] + 1) % 10][..., None]",
             ("tests/test_fonts_layout.py",)),
    Mutation("stats_verdict_flipped", "a verdict held on the wrong side of its threshold",
             "dmr/stats.py", "HELD if above == held_above else NOT_HELD",
             "HELD if above != held_above else NOT_HELD", ("tests/test_stats.py",)),
]


def _gather() -> list[Mutation]:
  gathered = list(MUTATIONS)
  for path in sorted(pathlib.Path(__file__).parent.glob("mutations_*.py")):
    gathered += importlib.import_module(path.stem).MUTATIONS
  names = [m.name for m in gathered]
  duplicated = sorted({n for n in names if names.count(n) > 1})
  if duplicated:
    raise ValueError(f"mutation names must be unique: {duplicated}")
  return gathered


ALL = _gather()
