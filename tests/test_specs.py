"""dmr.specs: the config parsed once into frozen specs, the only settings the library reads."""
import dataclasses

import pytest

from dmr import config as dmr_config
from dmr import results
from dmr.specs import CLAIM4, RunSpec
from tests.helpers import get_config

DATASETS = ("fashion", "fonts", "emnist", "celeba")


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("preset", dmr_config.PRESETS)
def test_every_preset_parses_into_frozen_hashable_specs(dataset, preset):
  c = get_config(dataset, preset)
  run = RunSpec.from_config(c)
  assert hash(run) == hash(RunSpec.from_config(c)) and run == RunSpec.from_config(c)
  with pytest.raises(dataclasses.FrozenInstanceError):
    run.classifier.train.epochs = 1
  assert run.vaegan.latent_dim == c.vaegan.latent_dim and run.attacks.off.eps == c.attack.eps
  assert [run.seed(s) for s in dmr_config.SEED_STREAMS] == [
      dmr_config.seed(c, s) for s in dmr_config.SEED_STREAMS]
  assert run.seed("model_init", 7) == dmr_config.seed(c, "model_init", 7)
  sweep = [results.model_key(v, n, s) for v in c.variants
           for n in dmr_config.training_sizes_of(c, v) for s in dmr_config.model_seeds(c)]
  assert run.model_keys()[:len(sweep)] == sweep
  assert all(run.is_attacked(k) == dmr_config.is_attacked(c, k) for k in run.model_keys())


def test_min_steps_raises_epochs_at_small_n_only():
  c = get_config("fashion", "smoke")
  c.train.epochs, c.train.batch_size = 10, 100
  assert [RunSpec.from_config(c).classifier.train.epochs_at(n) for n in (250, 2000)] == [10, 10]
  c.train.min_steps = 120
  # 250 images are 3 batches per epoch: 40 epochs reach 120 steps; 2000 images reach 200 in 10.
  train = RunSpec.from_config(c).classifier.train
  assert [train.epochs_at(n) for n in (250, 1000, 2000)] == [40, 12, 10]


def test_claim4_family_is_a_second_classifier_spec():
  c = get_config("fonts", "smoke")
  assert RunSpec.from_config(c).claim4 is None
  with pytest.raises(ValueError, match=r"family='claim4'; known: None \(the sweep\)\."):
    RunSpec.from_config(c).family(CLAIM4)
  c.claim4.architecture, c.claim4.epochs, c.claim4.training_size = "mlp", 3, 100
  run = RunSpec.from_config(c)
  assert run.family(None) == run.classifier and run.classifier.architecture == "conv"
  assert run.family(CLAIM4).architecture == "mlp" and run.family(CLAIM4).train.epochs == 3
  assert run.family(CLAIM4).train.batch_size == run.classifier.train.batch_size
  assert run.family_fields(CLAIM4) == {"architecture": "mlp", "epochs": 3}
  assert run.family_fields(None) == {}
  assert [k for k in run.model_keys() if k.get("family")] == [
      results.model_key(v, 100, 0, CLAIM4) for v in ("normal", "off_adv")]
