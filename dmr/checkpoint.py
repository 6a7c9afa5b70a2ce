"""Orbax checkpoints of a training state: periodic saves, resume, and restore for evaluation.

Saves are atomic (Orbax writes to a temporary directory and renames it), so a run killed at any
moment leaves only complete checkpoints. A checkpoint that exists but cannot be read stops the run
with an error instead of being replaced by a fresh start. One process at a time uses a model's
checkpoints: a Checkpointer holds an exclusive lock on `directory`.lock while open, so a second
process started on the same model waits, then finds it finished (in a multi-process job, process
0 takes the lock for all: the others follow it through Orbax's collective steps).
"""
from __future__ import annotations

import fcntl
import logging
import os

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp

from dmr import results
from dmr.errors import UserError

EXPORT_FILE = "inference.msgpack"
_held: set[str] = set()  # Lock files this process holds (a second flock here would deadlock).


class CheckpointError(UserError, RuntimeError):
  """A checkpoint exists but cannot be restored."""


def _lock(directory: str):
  """The open, exclusively locked file `directory`.lock; waits while another process holds it."""
  path = directory + ".lock"
  if path in _held:
    raise RuntimeError(f"{directory} is already open in this process.")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  lock = open(path, "w")
  try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    logging.info("waiting for another process that uses %s", directory)
    fcntl.flock(lock, fcntl.LOCK_EX)
  _held.add(path)
  return lock


class Checkpointer:
  """Saves and restores one model's training state under `directory`/<step>/."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._lock = _lock(self.directory) if jax.process_index() == 0 else None
    try:
      self._manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))
    except BaseException:
      self._unlock()
      raise

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state, step: int) -> None:
    """Saves `state` as `step` in the background; a later save or `close` waits for it."""
    self._manager.save(step, args=ocp.args.StandardSave(state))

  def restore(self, like=None, step: int | None = None):
    """The state saved at `step` (default: the latest) with the structure and shardings of `like`
    (None: as saved, a nested dict of arrays).

    Returns None when there is no checkpoint; raises CheckpointError when one cannot be read.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    abstract = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # Orbax raises many types for damaged or incompatible files.
      reason = (str(e).strip().splitlines() or [""])[0]  # One line: Orbax's can be long.
      raise CheckpointError(
          f"The checkpoint {self.directory}/{step} cannot be read ({type(e).__name__}: {reason}). "
          f"It was left untouched. If it is damaged, delete or move {self.directory} to train this "
          f"model from scratch; if the config changed, use a new --workdir.") from e

  def close(self) -> None:
    """Waits for pending saves, releases the manager and the lock."""
    try:
      self._manager.wait_until_finished()
      self._manager.close()
    finally:
      self._unlock()

  def _unlock(self) -> None:
    if self._lock is not None:
      _held.discard(self._lock.name)
      self._lock.close()  # Closing the file releases the flock.


def export(directory: str, params, batch_stats) -> str:
  """Writes directory/EXPORT_FILE, {"params", "batch_stats"} as host arrays, atomically; returns
  its path."""
  path = os.path.join(directory, EXPORT_FILE)
  weights = jax.tree.map(np.asarray, {"params": params, "batch_stats": batch_stats})
  data = flax.serialization.msgpack_serialize(weights)
  results.write_atomic(path, lambda f: f.write(data), binary=True)
  return path


def load_weights(directory: str) -> tuple[dict, dict] | None:
  """(params, batch_stats) of the finished model in `directory`: from its inference export, else
  (a folder written before exports existed) from its latest checkpoint; None when it has
  neither."""
  path = os.path.join(directory, EXPORT_FILE)
  if os.path.exists(path):
    with open(path, "rb") as f:
      weights = flax.serialization.msgpack_restore(f.read())
    return weights["params"], weights["batch_stats"]
  if not os.path.isdir(os.path.join(directory, "checkpoints")):
    return None
  ckpt = Checkpointer(os.path.join(directory, "checkpoints"))
  try:
    state = ckpt.restore()
  finally:
    ckpt.close()
  return None if state is None else (state["params"], state["batch_stats"])
