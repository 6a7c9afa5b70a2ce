"""dmr.load_classifier / dmr.load_manifold: a run's trained models as JAX functions."""
import jax
import numpy as np
import pytest

import dmr
from dmr import loaders, parallel, results, robustness
from dmr.data import fashion_mnist
from tests.helpers import CLASSIFIERS_ONLY, run_main


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
