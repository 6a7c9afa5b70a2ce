"""The rules a config field's value must follow, each with the allowed values in words.

A `Check` is a predicate, the text `validate` prints after "allowed:" when it fails, and the type
of the field's values (the type a None default's placeholder takes from overrides).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Check:
  ok: Callable[[Any], bool]
  allowed: str
  type: type


def _is_int(value) -> bool:
  return isinstance(value, int)


def _is_number(value) -> bool:
  return isinstance(value, (int, float))


integer = Check(_is_int, "an integer", int)
positive_int = Check(lambda v: _is_int(v) and v > 0, "a positive integer", int)
non_negative_int = Check(lambda v: _is_int(v) and v >= 0, "a non-negative integer", int)
positive_number = Check(lambda v: _is_number(v) and v > 0, "a number > 0", float)
non_negative = Check(lambda v: _is_number(v) and v >= 0, ">= 0", float)
unit_interval = Check(lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]", float)
boolean = Check(lambda v: isinstance(v, bool), "True or False", bool)
text = Check(lambda v: isinstance(v, str), "a string", str)
sizes = Check(lambda v: isinstance(v, tuple) and bool(v) and all(positive_int.ok(n) for n in v),
              "a non-empty tuple of positive integers", tuple)


def choice(names: tuple[str, ...], allowed: str | None = None) -> Check:
  """One of `names`; allowed: its text (default: the tuple)."""
  return Check(lambda v: v in names, allowed or str(names), str)


def tuple_of(names: tuple[str, ...], non_empty: bool = False) -> Check:
  """A tuple of `names` (non_empty: at least one)."""
  return Check(lambda v: isinstance(v, tuple) and (bool(v) or not non_empty)
               and all(n in names for n in v),
               f"{'a non-empty' if non_empty else 'a'} tuple of {names}", tuple)


def optional(check: Check, allowed: str) -> Check:
  """None, or a value `check` allows; allowed: the whole text, saying what None means."""
  return Check(lambda v: v is None or check.ok(v), allowed, check.type)
