"""Configs: presets, command-line overrides, validation messages.

  python -m tests.test_config   # rewrites tests/data/configs.json (a deliberate change only)
"""
import json
import os
import re
import subprocess
import types

import ml_collections
import pytest

from dmr import config as dmr_config
from dmr import fingerprint, plan, results, specs
from dmr.config import command_line
from dmr.config.fields import FIELDS
from dmr.errors import UserError
from dmr.train import classifier
from tests.helpers import REPO, get_config, main_command, subprocess_env

CONFIG_FILES = ["fashion", "emnist", "celeba", "fonts"]


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
    ("manifolds", ("true",), r"config.manifolds=\('true',\) is invalid; allowed: 'true' only with "
                             r"dataset='fonts'"),
    ("manifolds", ("vae",), r"config.manifolds=\('vae',\) is invalid; allowed: a non-empty tuple"),
    ("stn_theta_range", "wide", r"config.stn_theta_range='wide' is invalid"),
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


def test_unknown_preset_is_a_user_error_with_close_matches():
  with pytest.raises(UserError, match=r"preset='quikc'; allowed: \('paper', 'claims', 'quick', "
                                      r"'smoke'\). Did you mean: quick\?"):
    get_config("fashion", "quikc")


@pytest.mark.parametrize("rows, message", [
    ({"vaegan.betta": (1.0,) * 4}, r"the preset row 'vaegan.betta' of fashion_mnist is not a "
                                   r"field of its config .* Did you mean: vaegan.beta"),
    ({"vaegan.beta": (1.0, 2.0)}, r"the preset row 'vaegan.beta' .* one value per preset"),
    ({"data.num_train": (5,) * 4}, r"the preset row 'data.num_train' of fashion_mnist"),  # FONTS'
])
def test_dataset_rows_are_checked_against_the_table(rows, message):
  with pytest.raises(UserError, match=message):
    dmr_config.build("fashion_mnist", "quick", rows)


def test_command_line_overrides_and_errors_before_work(tmp_path):
  """Overrides reach the config; an invalid one fails at start, before any data is read."""
  cmd = main_command(str(tmp_path), "--config.training_sizes=(100,70000)",
                     "--config.train.epochs=3")
  out = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
  assert out.returncode != 0
  assert "config.training_sizes=(100, 70000) is invalid" in out.stderr
  assert not os.path.exists(tmp_path / "results.json")


def test_seed_streams_are_offsets_from_the_base_seed():
  c = get_config("fashion", "smoke")
  c.seed = 3
  streams = lambda model_seed=None: [dmr_config.seed(c, s, model_seed)
                                     for s in dmr_config.SEED_STREAMS]
  assert dmr_config.SEED_STREAMS == ("model_init", "data_order", "attacks", "pca")
  assert streams() == [3, 3, 3, 3] and streams(5) == [5, 5, 5, 5]
  c.seeds.attacks = 7  # Moves the attack noise only.
  assert streams() == [3, 3, 10, 3] and streams(5) == [5, 5, 12, 5]
  assert dmr_config.model_seeds(c) == [3]


def test_attack_spec_from_each_config_section():
  c = get_config("fashion", "quick")
  regular = dmr_config.attack_spec(c.attack)
  assert (regular.eps, regular.norm, regular.steps, regular.step_size, regular.optimizer,
          regular.init, regular.restarts, regular.early_stop) == (
              0.3, "linf", 40, 0.005, "adam", "paper", 2, True)
  assert regular.unroll is False  # dmr's own models run the rolled loop fast on every backend.
  on = dmr_config.attack_spec(c.on_manifold_attack)
  assert (on.eps, on.restarts, on.early_stop) == (0.3, 2, True)
  a = c.adversarial_training
  training = dmr_config.attack_spec(a, a.stn_eps)
  assert (training.steps, training.restarts, training.early_stop) == (10, 1, False)
  hash(training)  # A jit static argument.


def test_preset_tables():
  fonts = get_config("fonts", "quick")
  assert fonts.variants == ("normal", "off_adv", "on_adv_true", "on_adv_learned")
  assert fonts.manifolds == ("true", "learned")  # Side by side; the true one reported first.
  assert "manifolds" in fonts.stages and fonts.data.num_train == 20_000
  assert dmr_config.stn_theta_range(fonts) == dmr_config.THETA_RANGES["hard"]
  fonts.data.difficulty = "easy"  # The stn range follows the data's.
  assert dmr_config.stn_theta_range(fonts) == dmr_config.THETA_RANGES["easy"]
  quick = get_config("fashion", "quick")
  assert (quick.vaegan.epochs, quick.vaegan.channels, quick.vaegan.beta) == (2, 16, 2.75)
  assert get_config("emnist", "smoke").vaegan.beta == 2.25


def test_on_manifold_training_needs_its_manifold():
  c = get_config("fonts", "smoke")
  c.variants = ("on_adv_learned",)
  c.manifolds = ("true",)  # The known manifold alone: no VAE-GANs to train on.
  with pytest.raises(ValueError, match=r"on_adv_learned only with 'learned' in config.manifolds"):
    dmr_config.validate(c)
  c.manifolds = ("true", "learned")  # FONTS with both manifolds side by side.
  dmr_config.validate(c)


def test_min_steps_raises_epochs_at_small_n_only(tmp_path):
  c = get_config("fashion", "smoke")
  c.train.epochs, c.train.batch_size = 10, 100
  before = fingerprint.result_fields(c)
  assert "train.min_steps" not in before  # Off: workdirs made before the field keep their digest.
  assert [specs.RunSpec.from_config(c).classifier.train.epochs_at(n) for n in (250, 2000)] == [10, 10]
  c.train.min_steps = 120
  dmr_config.validate(c)
  # 250 images are 3 batches per epoch: 40 epochs reach 120 steps; 2000 images reach 200 in 10.
  assert [specs.RunSpec.from_config(c).classifier.train.epochs_at(n) for n in (250, 1000, 2000)] == [40, 12, 10]
  assert fingerprint.result_fields(c)["train.min_steps"] == 120
  c.variants, c.training_sizes, c.stages = ("normal",), (250, 2000), ("classifiers",)
  ds = types.SimpleNamespace(num_classes=10, image_shape=(28, 28, 1))
  assert [u.steps for u in plan.make(c, str(tmp_path), ds)] == [120, 200]
  for bad in (0, -5):
    c.train.min_steps = bad
    with pytest.raises(ValueError, match=r"config.train.min_steps=.* is invalid; allowed: a "
                                         r"positive integer, or None \(epochs at every N\)"):
      dmr_config.validate(c)
  assert get_config("fashion", "claims").train.min_steps == 120
  assert get_config("fashion", "paper").train.min_steps is None  # The paper: epochs at every N.


def test_variant_training_sizes_narrow_the_n_of_one_variant(tmp_path):
  c = get_config("fashion", "smoke")
  c.variants, c.training_sizes, c.models_per_size = ("normal", "on_adv_learned"), (250, 8000), 1
  before = fingerprint.result_fields(c)
  c.variant_training_sizes.on_adv_learned = (250, 500)
  dmr_config.validate(c)
  assert fingerprint.result_fields(c) == before  # Which models are trained, not how.
  assert dmr_config.training_sizes_of(c, "on_adv_learned") == (250,)
  assert dmr_config.training_sizes_of(c, "normal") == (250, 8000)
  assert [(k["variant"], k["n"]) for k in specs.RunSpec.from_config(c).model_keys()] == [
      ("normal", 250), ("normal", 8000), ("on_adv_learned", 250)]
  c.stages = ("classifiers",)
  ds = types.SimpleNamespace(num_classes=10, image_shape=(28, 28, 1))
  assert [u.name for u in plan.make(c, str(tmp_path), ds)] == [
      "normal n=250 seed=0", "normal n=8000 seed=0", "on_adv_learned n=250 seed=0"]
  c.variant_training_sizes.on_adv_learned = (500,)
  with pytest.raises(ValueError, match=r"config.variant_training_sizes.on_adv_learned=\(500,\) is "
                                       r"invalid; allowed: sizes that include one of training_sizes"):
    dmr_config.validate(c)
  c.variant_training_sizes.on_adv_learned = ()
  with pytest.raises(ValueError, match=r"allowed: None \(every N of training_sizes\) or a "
                                       r"non-empty tuple"):
    dmr_config.validate(c)


def test_attack_variants_choose_which_models_are_attacked(tmp_path):
  c = get_config("fashion", "smoke")
  c.attack.variants = ("on_adv",)
  with pytest.raises(ValueError, match=r"config.attack.variants=\('on_adv',\) is invalid; "
                                       r"allowed: None \(every variant\) or a non-empty tuple of "
                                       r"\('normal', 'off_adv', 'on_adv_learned'"):
    dmr_config.validate(c)
  c.attack.variants = ("on_adv_true",)  # Not a variant of this run: nothing of it to attack.
  dmr_config.validate(c)
  c.attack.variants = ()
  with pytest.raises(ValueError, match=r"config.attack.variants=\(\) is invalid"):
    dmr_config.validate(c)
  before = fingerprint.result_fields(c)
  c.attack.variants = ("normal",)
  dmr_config.validate(c)
  assert fingerprint.result_fields(c) == before  # Which models are attacked, not how.
  c.variants, c.training_sizes, c.stages = ("normal", "off_adv"), (200,), ("classifiers", "attacks")
  ds = types.SimpleNamespace(num_classes=10, image_shape=(28, 28, 1))
  attacked = [u.name for u in plan.make(c, str(tmp_path), ds) if u.stage == "attacks"]
  assert attacked == ["normal n=200 seed=0"]
  # Claim 4's own family is attacked whatever attack.variants says: claim 4 reads its success.
  family = results.model_key("off_adv", 200, 0, family="claim4")
  assert dmr_config.is_attacked(c, family)
  assert not dmr_config.is_attacked(c, results.model_key("off_adv", 200, 0))
  c.attack.variants = None
  assert dmr_config.is_attacked(c, results.model_key("off_adv", 200, 0))
  claims = get_config("fashion", "claims")
  assert claims.attack.variants == ("normal",) and get_config("fonts", "claims").attack.variants is None


def test_every_preset_is_the_pinned_config_with_the_pinned_fingerprint():
  """tests/data/configs.json pins every field (value, type, the type overrides are parsed as,
  derived or not, order) and the fingerprint of every dataset x preset."""
  with open(PINNED) as f:
    pinned = json.load(f)
  now = json.loads(json.dumps(snapshot()))
  assert list(now) == list(pinned)
  for combination, expected in pinned.items():
    assert now[combination]["fields"] == expected["fields"], combination
    assert now[combination]["fingerprint"] == expected["fingerprint"], combination


# --- The field table -----------------------------------------------------------------------------

# Values tried against every check: each field's check must reject one of them with its message.
BAD_VALUES = (0, -1, 1.5, -1.0, "nope", ("nope",), (), (0,), None)
# Fields whose check is their type alone (any string): the ConfigDict refuses every other value.
TYPE_ONLY = {"data.dir", "parallel.coordinator_address"}


@pytest.mark.parametrize("name", ["fashion", "fonts", "emnist", "celeba"])
def test_every_field_of_every_preset_is_in_the_table_with_its_help(name):
  for preset in dmr_config.PRESETS:
    c = get_config(name, preset)
    for field in fingerprint.flat_fields(c):
      assert field in FIELDS and FIELDS[field].help, (name, preset, field)
    text = command_line.describe(c)  # --print_config: the table's help on every line.
    for field, value in fingerprint.flat_fields(c).items():
      assert f" {field} = {value!r}" in text and f"# {FIELDS[field].help}" in text


def test_every_check_rejects_a_bad_value_in_one_line_naming_the_field_and_allowed_values():
  uncovered = set()
  for name, field in FIELDS.items():
    rejected = 0
    for bad in BAD_VALUES:
      c = get_config("fonts", "smoke")
      try:
        dmr_config._set(c, name, bad)
      except TypeError:  # The ConfigDict's own type check refuses it.
        continue
      if field.check.ok(bad):
        continue
      with pytest.raises(UserError) as e:
        dmr_config.validate(c)
      message = str(e.value)
      stored = dmr_config._get(c, name)  # An int stored in a float field is a float.
      assert message.startswith(f"config.{name}={stored!r} is invalid; allowed: "
                                f"{field.check.allowed}."), message
      assert "\n" not in message
      rejected += 1
    if not rejected:
      uncovered.add(name)
  assert uncovered == TYPE_ONLY


def _another(value, field_type: type):
  """A value of `field_type` other than `value` (None: a first one)."""
  if value is None:
    return {int: 7, float: 0.5, str: "other", tuple: (1,), bool: True}[field_type]
  if isinstance(value, bool):
    return not value
  if isinstance(value, tuple):
    return value + value[:1] if value else ("normal",)
  return value + ("x" if isinstance(value, str) else 1)


@pytest.mark.parametrize("name, preset", [("fonts", "paper"), ("fashion", "smoke")])
def test_the_fingerprint_holds_the_fields_the_table_says_change_results(name, preset):
  """A field changes the digest iff its Field.result says so: True always, False never, a
  field's name while that field is set (claim 4's own models, the cross-check attack)."""
  before = fingerprint.of_config(get_config(name, preset))["digest"]
  for field_name, field in FIELDS.items():
    c = get_config(name, preset)
    if field.datasets and c.dataset not in field.datasets:
      continue
    dmr_config._set(c, field_name, _another(dmr_config._get(c, field_name), field.check.type))
    counts = (field.result if isinstance(field.result, bool)
              else dmr_config._get(c, field.result) is not None)
    assert (fingerprint.of_config(c)["digest"] != before) == counts, field_name


# --- The pinned presets -------------------------------------------------------------------------

PINNED = os.path.join(REPO, "tests", "data", "configs.json")


def fields(c: ml_collections.ConfigDict, prefix: str = "") -> list[list]:
  """[name, repr(value), value's type, the type overrides are parsed as, derived from another
  field] of every field, in insertion order (the order of config.json)."""
  rows = []
  for name, field in c._fields.items():
    if isinstance(field, ml_collections.ConfigDict):
      rows += fields(field, f"{prefix}{name}.")
      continue
    is_ref = isinstance(field, ml_collections.FieldReference)
    value = field.get() if is_ref else field
    parsed_as = field.get_type() if is_ref else type(value)
    rows.append([f"{prefix}{name}", repr(value), type(value).__name__, parsed_as.__name__,
                 bool(is_ref and field._ops)])
  return rows


def snapshot() -> dict:
  """{"<file>:<preset>": {"fields": fields, "fingerprint": of_config}} of every combination."""
  out = {}
  for name in ("fashion", "fonts", "emnist", "celeba"):
    for preset in dmr_config.PRESETS:
      c = get_config(name, preset)
      out[f"{name}:{preset}"] = {"fields": fields(c), "fingerprint": fingerprint.of_config(c)}
  return out


def write(path: str = PINNED) -> None:
  """The snapshot as JSON with one line per field, for readable diffs."""
  text = json.dumps(snapshot(), indent=1)
  text = re.sub(r"\[\n {4}([^\[\]]*?)\n {3}\]",
                lambda m: "[" + re.sub(r",\n {4}", ", ", m.group(1)) + "]", text)
  with open(path, "w") as f:
    f.write(text + "\n")


if __name__ == "__main__":
  write()
