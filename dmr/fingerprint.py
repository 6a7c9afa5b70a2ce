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

from dmr.errors import UserError

FILENAME = "fingerprint.json"

# Dotted config fields (or whole sections) that never change a model's numbers. `seed` names the
# models (model seeds seed + m, see dmr.config.model_seeds): a sweep sets it per model.
NOT_RESULT_FIELDS = (
    "stages", "variants", "training_sizes", "models_per_size", "seed", "preset", "progress",
    "data.dir",
    "parallel", "train.eval_batch_size", "train.checkpoint_every_steps", "train.log_every_steps",
    "vaegan.eval_batch_size", "vaegan.checkpoint_every_steps", "vaegan.log_every_steps",
    "attack.batch_size", "on_manifold_attack.batch_size", "claim4.training_size", "attack.variants",
    "variant_training_sizes",
)
# Fields that change nothing while their switch is None (claim 4's own models, the cross-check
# attack): {field or section: switch}. Left out then, so that a config without them keeps the
# fingerprint it had before they existed; in the fingerprint once the switch is set.
OFF_WHILE_UNSET = {"claim4": "claim4.architecture", "attack.cross_check": "attack.cross_check",
                   "train.min_steps": "train.min_steps"}


def _flatten(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      out.update(_flatten(value, name + "."))
    else:
      out[name] = list(value) if isinstance(value, tuple) else value
  return out


def _is_result_field(name: str) -> bool:
  return not any(name == f or name.startswith(f + ".") for f in NOT_RESULT_FIELDS)


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


def _is_off(name: str, flat: dict) -> bool:
  return any((name == f or name.startswith(f + ".")) and flat.get(switch) is None
             for f, switch in OFF_WHILE_UNSET.items())


def result_fields(config: ml_collections.ConfigDict) -> dict:
  """{dotted field: value} of every field that changes results, JSON-compatible."""
  flat = flat_fields(config)
  return {name: value for name, value in flat.items()
          if _is_result_field(name) and not _is_off(name, flat)}


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
