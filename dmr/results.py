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


def write_json_atomic(filename: str, obj) -> None:
  """Writes obj as JSON to a temporary file in the same directory, then renames it."""
  directory = os.path.dirname(os.path.abspath(filename))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(obj, f, indent=1, sort_keys=True)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, filename)
  except BaseException:  # Disk full, permissions, a kill: the previous file stays as it was.
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


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


def model_key(variant: str, n: int, seed: int) -> dict:
  return {"variant": variant, "n": int(n), "seed": int(seed)}


def find_record(workdir: str, variant: str, n: int, seed: int) -> dict | None:
  key = model_key(variant, n, seed)
  for record in load(workdir)["records"]:
    if all(record.get(k) == v for k, v in key.items()):
      return record
  return None


def update_record(workdir: str, variant: str, n: int, seed: int, **fields) -> dict:
  """Merges `fields` into the record of model (variant, n, seed), creating it, and stamps it with
  the run's fingerprint (`set_fingerprint`); returns it."""
  key = model_key(variant, n, seed)
  with locked(workdir):
    results = load(workdir)
    for record in results["records"]:
      if all(record.get(k) == v for k, v in key.items()):
        record.update(fields)
        break
    else:
      record = {**key, **fields}
      results["records"].append(record)
    if _fingerprint is not None:
      record["fingerprint"] = _fingerprint
    results["records"].sort(key=lambda r: (r["variant"], r["n"], r["seed"]))
    write_json_atomic(path(workdir), results)
  return record


def update_manifold(workdir: str, **fields) -> None:
  """Merges `fields` into results["manifold"]."""
  with locked(workdir):
    results = load(workdir)
    results["manifold"].update(fields)
    write_json_atomic(path(workdir), results)
