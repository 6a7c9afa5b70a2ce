"""dmr.load_classifier / dmr.load_manifold: a run's trained models as JAX functions."""
import os
import shutil

import jax
import numpy as np
import pytest

import dmr
from dmr import checkpoint, loaders, parallel, results, robustness
from dmr.data import fashion_mnist
from dmr.train import classifier, optim, steps
from tests.helpers import CLASSIFIERS_ONLY, final_state, run_main


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A smoke run's classifiers stage: one normal classifier, its test error in results.json."""
  directory = str(tmp_path_factory.mktemp("run"))
  run_main(directory, *CLASSIFIERS_ONLY)
  return directory


def test_a_loaded_classifier_reproduces_its_recorded_test_error(workdir):
  (record,) = results.load(workdir)["records"]
  config = loaders.load_config(workdir)
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,))  # As the run had.
  logits_fn = dmr.load_classifier(workdir, "normal", record["n"], record["seed"], mesh=mesh)
  assert isinstance(logits_fn, jax.tree_util.Partial)
  ds = fashion_mnist.load()
  labels = robustness.predict(logits_fn, ds.x_test, config.train.eval_batch_size, mesh)
  assert float(np.mean(labels != ds.y_test)) == record["test_error"]
  x = ds.x_test[:4]
  np.testing.assert_allclose(jax.jit(lambda f, v: f(v))(logits_fn, x), logits_fn(x), rtol=1e-4,
                             atol=1e-4)


def test_the_inference_export_gives_the_trained_models_logits_exactly(workdir, monkeypatch):
  """The loader reads params and batch_stats from the export alone: no optimizer, no N; its
  logits equal those of the final checkpointed training state bit for bit, and a model folder
  written before exports existed (no inference.msgpack) loads the same from its checkpoint."""
  (record,) = results.load(workdir)["records"]
  directory = classifier.model_dir(workdir, "normal", record["n"], record["seed"])
  assert os.path.exists(os.path.join(directory, checkpoint.EXPORT_FILE))
  state = final_state(workdir, "normal", record["n"], record["seed"], loaders.load_config(workdir))
  trained = steps.make_logits_fn(classifier.make_model("conv", 10), state.params,
                                 state.batch_stats)
  x = fashion_mnist.load().x_test[:16]
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,))

  def no_optimizer(*args, **kwargs):
    raise AssertionError("loading for inference built an optimizer")

  monkeypatch.setattr(optim, "paper_adam", no_optimizer)
  monkeypatch.setattr(checkpoint.Checkpointer, "restore", no_optimizer)  # The export alone.
  logits_fn = classifier.load(directory, "conv", 10, mesh)
  np.testing.assert_array_equal(logits_fn(x), trained(x))
  np.testing.assert_array_equal(dmr.load_classifier(workdir, "normal", record["n"],
                                                    record["seed"], mesh=mesh)(x), trained(x))
  monkeypatch.undo()
  monkeypatch.setattr(optim, "paper_adam", no_optimizer)
  legacy = os.path.join(os.path.dirname(workdir), "legacy")
  shutil.copytree(directory, legacy)
  os.remove(os.path.join(legacy, checkpoint.EXPORT_FILE))
  np.testing.assert_array_equal(classifier.load(legacy, "conv", 10, mesh)(x), trained(x))
  with pytest.raises(FileNotFoundError, match="no trained classifier in .*: run the classifiers"):
    classifier.load(os.path.join(legacy, "missing"), "conv", 10, mesh)


def test_an_unknown_model_names_the_finished_ones(workdir):
  (record,) = results.load(workdir)["records"]
  with pytest.raises(FileNotFoundError, match=(
      rf"no finished classifier off_adv n={record['n']} seed=0 in .*; "
      rf"finished: normal n={record['n']} seed=0\.")):
    dmr.load_classifier(workdir, "off_adv", record["n"], 0)


def test_a_directory_without_a_run_says_so(tmp_path):
  with pytest.raises(FileNotFoundError, match="no config.json in .*: not the workdir of a dmr run"):
    dmr.load_manifold(str(tmp_path))


def test_an_unknown_manifold_kind_lists_the_kinds(tmp_path):
  with pytest.raises(ValueError, match=r"kind='vae'; allowed: \('learned', 'true'\)"):
    dmr.load_manifold(str(tmp_path), kind="vae")


def test_importing_the_attack_library_does_not_import_the_loaders():
  import subprocess
  import sys
  from tests.helpers import REPO, subprocess_env
  code = "import sys, dmr.attacks; print('dmr.loaders' in sys.modules, 'flax' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                       capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "False"]
