"""Configs: presets, command-line overrides, validation messages."""
import importlib.util
import os
import subprocess

import pytest

from dmr import config as dmr_config
from tests.helpers import REPO, main_command, subprocess_env

CONFIG_FILES = ["fashion", "emnist", "celeba"]


def get_config(name, preset=None):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset) if preset else module.get_config()


@pytest.mark.parametrize("name", CONFIG_FILES)
@pytest.mark.parametrize("preset", dmr_config.PRESETS)
def test_every_preset_validates(name, preset):
  dmr_config.validate(get_config(name, preset))


def test_paper_is_the_default_and_follows_the_paper():
  c = get_config("fashion")
  assert c.preset == "paper"
  assert c.train.epochs == 20 and c.train.batch_size == 100 and c.train.learning_rate == 0.01
  assert (c.train.b1, c.train.b2, c.train.weight_decay) == (0.5, 0.9, 1e-4)
  assert c.training_sizes[0] == 250 and c.training_sizes[-1] == 40000


@pytest.mark.parametrize("field, value, message", [
    ("dataset", "mnist", r"config.dataset='mnist' is invalid; allowed: \('fashion_mnist'"),
    ("training_sizes", (100, 70000), r"config.training_sizes=.*sizes up to 60000"),
    ("training_sizes", (0,), "config.training_sizes=.*positive integers"),
    ("variants", ("normal", "nope"), "config.variants=.*allowed: a tuple of"),
    ("stages", ("fly",), "config.stages=.*allowed"),
    ("models_per_size", 0, "config.models_per_size=0 is invalid; allowed: a positive integer"),
])
def test_invalid_values_name_the_field_and_allowed_values(field, value, message):
  c = get_config("fashion", "smoke")
  c[field] = value
  with pytest.raises(ValueError, match=message):
    dmr_config.validate(c)


def test_nested_invalid_values():
  c = get_config("fashion", "smoke")
  c.train.epochs = -1
  with pytest.raises(ValueError, match="config.train.epochs=-1"):
    dmr_config.validate(c)
  c = get_config("fashion", "smoke")
  c.classifier.architecture = "transformer"
  with pytest.raises(ValueError, match="config.classifier.architecture='transformer'.*'conv'"):
    dmr_config.validate(c)


def test_unknown_preset():
  with pytest.raises(ValueError, match="preset='fast'; allowed"):
    get_config("fashion", "fast")


def test_command_line_overrides_and_errors_before_work(tmp_path):
  """Overrides reach the config; an invalid one fails at start, before any data is read."""
  cmd = main_command(str(tmp_path), "--config.training_sizes=(100,70000)",
                     "--config.train.epochs=3")
  out = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
  assert out.returncode != 0
  assert "config.training_sizes=(100, 70000) is invalid" in out.stderr
  assert not os.path.exists(tmp_path / "results.json")
