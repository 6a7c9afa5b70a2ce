"""The run fingerprint: result-changing fields only, stable, with readable differences."""
import functools

from dmr import fingerprint
from tests.helpers import get_config

fashion = functools.partial(get_config, "fashion", "quick")
fonts = functools.partial(get_config, "fonts", "smoke")


def test_result_changing_fields_change_the_digest():
  base = fingerprint.result_fields(fashion())
  changed = fashion()
  changed.train.learning_rate = 0.02
  new = fingerprint.result_fields(changed)
  assert fingerprint.digest(new) != fingerprint.digest(base)
  assert fingerprint.differences(base, new) == ["train.learning_rate: 0.01 -> 0.02"]


def test_which_models_logging_and_batching_do_not_change_the_digest():
  base = fingerprint.digest(fingerprint.result_fields(fashion()))
  c = fashion()
  c.training_sizes = (100,)
  c.variants = ("normal",)
  c.stages = ("report",)
  c.train.log_every_steps = 7
  c.train.checkpoint_every_steps = 3
  c.train.eval_batch_size = 10
  c.attack.batch_size = 10
  c.data.dir = "/elsewhere"
  c.seed = 5  # Names the models (a sweep sets it per model); their seeds are in their records.
  assert fingerprint.digest(fingerprint.result_fields(c)) == base


def test_seed_streams_manifolds_and_fonts_data_are_in_the_fingerprint():
  base = fingerprint.result_fields(fonts())
  for field, value in (("seeds.attacks", 1), ("seeds.model_init", 2), ("manifolds", ("learned",)),
                       ("stn_theta_range", "easy"), ("data.num_train", 500),
                       ("data.difficulty", "easy"), ("data.max_fonts", 5)):
    c = fonts()
    section, _, name = field.rpartition(".")
    (c[section] if section else c)[name] = value
    assert list(fingerprint.differences(base, fingerprint.result_fields(c))) != [], field


def test_digest_is_stable_across_processes():
  fields = {"a": 1, "b.c": [1, 2], "d": None}
  assert fingerprint.digest(fields) == fingerprint.digest(dict(reversed(fields.items())))
  # Pinned: a digest that moved between versions or processes would orphan every workdir.
  assert fingerprint.digest(fields) == "ebc93446f2f7"
