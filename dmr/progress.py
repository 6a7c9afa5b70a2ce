"""Progress bars (tqdm, with rate and ETA) for the long stages, on process 0 only.

A bar shows when progress is enabled (`python -m dmr.main` sets it from `config.progress`,
default True) and stderr is a terminal: a run logging to a file prints no bars.
"""
from __future__ import annotations

import jax
import ml_collections
import tqdm

_enabled = True


def set_enabled(enabled: bool) -> None:
  """Turns every later bar of this process on (the default) or off."""
  global _enabled
  _enabled = bool(enabled)


def configure(config: ml_collections.ConfigDict) -> None:
  """Bars on or off as config.progress says (on when the config has no such field)."""
  set_enabled(config.get("progress", True))


def bar(total: int, desc: str | None, unit: str, initial: int = 0,
        wanted: bool = True) -> tqdm.tqdm:
  """A bar over `total` units; disabled unless wanted, off process 0, when turned off, or off a
  terminal."""
  show = wanted and _enabled and jax.process_index() == 0
  return tqdm.tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                   leave=False, disable=None if show else True)
