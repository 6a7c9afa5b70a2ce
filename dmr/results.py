"""results.json: one record per trained model plus manifold distances, merged safely.

Several processes (one per N or seed) may share a workdir: every update takes an exclusive
file lock, re-reads the file, merges and replaces it atomically, so no record is lost and a
reader never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from typing import Callable

import numpy as np

from dmr import records
from dmr.errors import UserError

FILENAME = "results.json"
_fingerprint: str | None = None  # Of this process's run; set by dmr.main (set_fingerprint).


def set_fingerprint(digest: str | None) -> None:
  """Every record this process writes from now on carries `digest` (dmr.fingerprint) as its
  "fingerprint"; None: records carry none (library use outside a run)."""
  global _fingerprint
  _fingerprint = digest


def path(workdir: str) -> str:
  return os.path.join(workdir, FILENAME)


def write_atomic(filename: str, write: Callable, binary: bool = False) -> None:
  """Calls write(file) on a temporary file in filename's directory, then renames it over
  filename: readers see the old file or the new one, never part of one; a failed write (disk
  full, permissions, a kill) leaves the previous file as it was."""
  directory = os.path.dirname(os.path.abspath(filename))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(filename)[1])
  try:
    with os.fdopen(fd, "wb" if binary else "w") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, filename)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_json_atomic(filename: str, obj) -> None:
  """Writes obj as JSON to `filename` atomically (`write_atomic`)."""
  write_atomic(filename, lambda f: json.dump(obj, f, indent=1, sort_keys=True))


def savez_atomic(filename: str, compressed: bool = False, **arrays) -> None:
  """np.savez (np.savez_compressed) of `arrays` to `filename` atomically (`write_atomic`)."""
  save = np.savez_compressed if compressed else np.savez
  write_atomic(filename, lambda f: save(f, **arrays), binary=True)


def load(workdir: str) -> dict:
  """{"records": [...], "manifold": {...}} ({} parts when the file does not exist yet)."""
  try:
    with open(path(workdir)) as f:
      results = json.load(f)
  except FileNotFoundError:
    results = {}
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(
        f"{path(workdir)} is not valid JSON ({e}); dmr replaces it atomically, so it was changed "
        f"outside dmr. Restore it from a copy, or move it away and rerun the same command: "
        f"finished models are then re-evaluated from their checkpoints, not retrained.") from e
  results.setdefault("records", [])
  results.setdefault("manifold", {})
  return results


@contextlib.contextmanager
def locked(workdir: str):
  """Holds the workdir's exclusive file lock (every writer of results.json takes it)."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, FILENAME + ".lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def model_key(variant: str, n: int, seed: int, family: str | None = None) -> dict:
  """The fields naming a model in its record (records.ModelKey.as_dict)."""
  return records.ModelKey(variant, n, seed, family).as_dict()


def record_key(record: dict) -> dict:
  """model_key of a record."""
  return records.ModelKey.of(record).as_dict()


def is_model(record: dict, key: dict) -> bool:
  """Whether `record` is the model `key` names (the same family included)."""
  return records.ModelKey.of(record) == records.ModelKey.of(key)


def sort_key(record: dict) -> tuple:
  """Records in file order (records.ModelKey.order)."""
  return records.ModelKey.of(record).order


def find_record(workdir: str, variant: str, n: int, seed: int,
                family: str | None = None) -> dict | None:
  key = model_key(variant, n, seed, family)
  return next((r for r in load(workdir)["records"] if is_model(r, key)), None)


def update_record(workdir: str, variant: str, n: int, seed: int, family: str | None = None,
                  **fields) -> dict:
  """Merges `fields` into the record of model (variant, n, seed) of `family`, creating it, and
  stamps it with the run's fingerprint (`set_fingerprint`); returns it."""
  key = model_key(variant, n, seed, family)
  with locked(workdir):
    results = load(workdir)
    record = next((r for r in results["records"] if is_model(r, key)), None)
    if record is None:
      record = dict(key)
      results["records"].append(record)
    record.update(fields)
    if _fingerprint is not None:
      record["fingerprint"] = _fingerprint
    results["records"].sort(key=sort_key)
    write_json_atomic(path(workdir), results)
  return record


def update_manifold(workdir: str, **fields) -> None:
  """Merges `fields` into results["manifold"]."""
  with locked(workdir):
    results = load(workdir)
    results["manifold"].update(fields)
    write_json_atomic(path(workdir), results)
