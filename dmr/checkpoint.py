"""Orbax checkpoints of a training state: periodic saves, resume, and restore for evaluation.

Saves are atomic (Orbax writes to a temporary directory and renames it), so a run killed at any
moment leaves only complete checkpoints. A checkpoint that exists but cannot be read stops the run
with an error instead of being replaced by a fresh start.
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored."""


class Checkpointer:
  """Saves and restores one model's training state under `directory`/<step>/."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state, step: int) -> None:
    """Saves `state` as `step` in the background; a later save or `close` waits for it."""
    self._manager.save(step, args=ocp.args.StandardSave(state))

  def restore(self, like, step: int | None = None):
    """The state saved at `step` (default: the latest) with the structure and shardings of `like`.

    Returns None when there is no checkpoint; raises CheckpointError when one cannot be read.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # Orbax raises many types for damaged or incompatible files.
      raise CheckpointError(
          f"The checkpoint {self.directory}/{step} cannot be read ({type(e).__name__}: {e}). It "
          f"was left untouched. If it is damaged, delete or move {self.directory} to train this "
          f"model from scratch; if the config changed, use a new --workdir.") from e

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
