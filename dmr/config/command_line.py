"""The --config flag of dmr.main: the config file loaded, its mistakes told in one line, and
every field described with its meaning (--print_config)."""
from __future__ import annotations

import ml_collections
from absl import flags
from ml_collections import config_flags

from dmr import errors, fingerprint
from dmr.config.fields import FIELDS


def load_error(config_arg: str, error: Exception) -> errors.UserError:
  """Why `config_arg` (--config=FILE[:preset]) does not load: the UserError the config file
  raised (e.g. a mistyped preset, with close matches; the loader re-raises it with its traceback
  as the message) or the last line of the loader's message."""
  raised = [e for e in errors.chain(error) if isinstance(e, errors.UserError)]
  if raised:
    return errors.UserError(f"{config_arg}: {raised[-1]}")
  reason = str(error).strip().splitlines()[-1].strip()
  return errors.UserError(f"{config_arg}: the config file cannot be loaded ({reason}).")


def loaded(config: ml_collections.ConfigDict, config_arg: str) -> ml_collections.ConfigDict:
  """The --config ConfigDict `config` once its file is loaded (lazily, on first access); a
  UserError when it does not load."""
  try:
    config.dataset
  except Exception as e:
    if not isinstance(e, OSError) and errors.user_error_of(e) is None:
      raise
    raise load_error(config_arg, e) from e
  return config


def override_error(argv: list[str], error: Exception) -> errors.UserError:
  """The user's mistake behind a failed flag parse: an unknown config field (with close
  matches), a value of the wrong type, or a config file that does not load."""
  config_arg = next((a for a in argv if a.startswith("--config=")), None)
  if config_arg is None:
    return errors.UserError(f"{error}")
  probe = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=probe,
                                  sys_argv=[argv[0], config_arg])
  try:
    probe([argv[0], config_arg])
    config = probe.config
  except Exception as e:  # The config file itself does not load.
    return load_error(config_arg, e)
  known = fingerprint.flat_fields(config, sections=True)
  for arg in argv[1:]:
    if arg.startswith("--config."):
      name = arg[len("--config."):].split("=", 1)[0]
      if name not in known:
        return errors.UserError(
            f"{arg}: the config has no field {name!r}.{errors.close_matches(name, known)} "
            f"(--print_config lists every field)")
  return errors.UserError(f"{error}".strip().splitlines()[0])


def describe(config: ml_collections.ConfigDict) -> str:
  """Every field of `config` as `name = value  # meaning`, result-changing ones marked."""
  fields = fingerprint.flat_fields(config)
  changing = fingerprint.result_fields(config)
  width = max(len(f"{k} = {v!r}") for k, v in fields.items())
  lines = ["# * marks the fields in the fingerprint (they change results)."]
  for name, value in fields.items():
    setting = f"{name} = {value!r}"
    meaning = FIELDS[name].help if name in FIELDS else "(no description)"
    lines.append(f"{'*' if name in changing else ' '} {setting:{width}s}  # {meaning}")
  return "\n".join(lines)
