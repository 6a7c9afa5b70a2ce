"""The fingerprint of a run: the config fields that change results, hashed.

Two runs whose fingerprints match train and attack every model the same way; fields that only
choose WHICH models exist (variants, sizes, seeds per size), WHERE things are (data.dir), HOW
OFTEN something is logged or saved, or how large a batch of evaluation work is, are left out, so
a sweep can add models to a workdir and a user can change logging without a new workdir.
"""
from __future__ import annotations

import hashlib
import json
import os

import ml_collections

from dmr import config as dmr_config
from dmr import results
from dmr.errors import UserError

FILENAME = "fingerprint.json"
GROUPS_DIR = "groups"


def _flatten(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      out.update(_flatten(value, name + "."))
    else:
      out[name] = list(value) if isinstance(value, tuple) else value
  return out


def flat_fields(config: ml_collections.ConfigDict, sections: bool = False) -> dict:
  """{dotted field: value} of every field of `config`, sorted, JSON-compatible; sections: also
  the dotted names of the sections (value None)."""
  tree = json.loads(config.to_json())
  flat = _flatten(tree)
  if sections:
    flat.update({name: None for name in _sections(tree)})
  return dict(sorted(flat.items()))


def _sections(tree: dict, prefix: str = "") -> list[str]:
  return [name for key, value in tree.items() if isinstance(value, dict)
          for name in [f"{prefix}{key}", *_sections(value, f"{prefix}{key}.")]]


def _changes_results(name: str, flat: dict) -> bool:
  """Whether field `name` is in the fingerprint (dmr/config/fields.py's Field.result); a field
  the table does not know is, to be safe."""
  field = dmr_config.FIELDS.get(name)
  if field is None or isinstance(field.result, bool):
    return field is None or field.result
  return flat.get(field.result) is not None  # In once its switch is set.


def result_fields(config: ml_collections.ConfigDict) -> dict:
  """{dotted field: value} of every field that changes results, JSON-compatible."""
  flat = flat_fields(config)
  return {name: value for name, value in flat.items() if _changes_results(name, flat)}


def digest(fields: dict) -> str:
  """A short stable hash of result_fields (12 hex digits)."""
  text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def differences(old: dict, new: dict) -> list[str]:
  """Human-readable 'field: old -> new' lines for the fields that differ."""
  missing = object()
  lines = []
  for name in sorted(set(old) | set(new)):
    a, b = old.get(name, missing), new.get(name, missing)
    if a != b:
      lines.append(f"{name}: {'(unset)' if a is missing else a!r} -> "
                   f"{'(unset)' if b is missing else b!r}")
  return lines


def path(workdir: str) -> str:
  return os.path.join(workdir, FILENAME)


def read(workdir: str) -> dict | None:
  """{"digest": ..., "fields": result_fields} recorded in workdir, None when there is none."""
  try:
    with open(path(workdir)) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except json.JSONDecodeError as e:
    raise UserError(f"{path(workdir)} is not valid JSON ({e}); it was changed outside dmr. "
                    f"Restore it, or delete it to take this run's settings as the workdir's.") from e


def of_config(config: ml_collections.ConfigDict) -> dict:
  """{"digest": ..., "fields": ...}: what fingerprint.json holds for `config`."""
  fields = result_fields(config)
  return {"digest": digest(fields), "fields": fields}


def group_workdir(workdir: str, config: ml_collections.ConfigDict, drift: str) -> str:
  """The directory a run of `config` writes into: `workdir` when its fingerprint.json is absent
  or equal to the config's; else WORKDIR/groups/<fingerprint> when drift is "new_group", and a
  UserError listing the differing fields otherwise ("refuse")."""
  ours, theirs = of_config(config), read(workdir)
  if theirs is None or theirs["digest"] == ours["digest"]:
    return workdir
  if drift == "new_group":
    return os.path.join(workdir, GROUPS_DIR, ours["digest"])
  changed = differences(theirs["fields"], ours["fields"])
  raise UserError(
      f"{workdir} holds results made under other settings (fingerprint {theirs['digest']}, this "
      f"config {ours['digest']}): {'; '.join(changed)}. Use a new --workdir, or pass "
      f"--config_drift=new_group to train and evaluate models under the new settings as a "
      f"separate group in {os.path.join(workdir, GROUPS_DIR, ours['digest'])} (never averaged "
      f"with the others).")


def record(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes config.json and, on the first run in `workdir`, fingerprint.json."""
  results.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
  with results.locked(workdir):
    if read(workdir) is None:
      results.write_json_atomic(path(workdir), of_config(config))
