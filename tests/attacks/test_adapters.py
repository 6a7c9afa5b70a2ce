"""from_linen / from_nnx / from_equinox: compiled once per architecture, always the new params."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import attacks

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.uniform(size=(8, 6)), jnp.float32)
KEY = jax.random.key(0)


def _attack_twice(make_logits_fn, params_pair, traces):
  """pgd with the logits_fn of each params; asserts the second call traced nothing new and
  each result matches a fresh forward pass of its own params."""
  traced_by_pgd = []
  for params in params_pair:
    logits_fn = make_logits_fn(params)
    y = jnp.argmax(logits_fn(X), axis=1)
    before = len(traces)
    r = attacks.pgd(logits_fn, X, y, key=KEY, eps=0.2, steps=3)
    traced_by_pgd.append(len(traces) - before)
    fresh = np.asarray(jnp.argmax(logits_fn(r.x_adv), axis=1) != y)
    np.testing.assert_array_equal(r.success, fresh)
  assert traced_by_pgd[0] > 0 and traced_by_pgd[1] == 0


def test_linen_with_batchnorm_in_eval_mode():
  nn = pytest.importorskip("flax.linen")
  traces = []

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
      traces.append(1)
      x = nn.Dense(16)(x)
      x = nn.BatchNorm(use_running_average=not train)(x)
      return nn.Dense(3)(nn.relu(x))

  net = Net()
  variables = net.init(jax.random.key(1), X, train=False)
  flipped = jax.tree.map(lambda v: -v, variables)
  _attack_twice(lambda v: attacks.from_linen(net, v, train=False), (variables, flipped), traces)


def test_nnx_module_changed_in_place():
  nnx = pytest.importorskip("flax.nnx")
  traces = []

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.hidden = nnx.Linear(6, 16, rngs=rngs)
      self.norm = nnx.BatchNorm(16, rngs=rngs)
      self.out = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
      traces.append(1)
      return self.out(nnx.relu(self.norm(self.hidden(x))))

  model = Net(nnx.Rngs(1))
  model.eval()

  def flip_in_place(_):
    model.out.kernel.value = -model.out.kernel.value
    return model

  _attack_twice(lambda m: attacks.from_nnx(flip_in_place(m)), (None, None), traces)


def test_equinox_per_example_model():
  eqx = pytest.importorskip("equinox")
  traces = []

  class Net(eqx.Module):
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __call__(self, x):
      traces.append(1)
      return self.out(jax.nn.relu(self.hidden(x)))

  keys = jax.random.split(jax.random.key(1))
  model = Net(eqx.nn.Linear(6, 16, key=keys[0]), eqx.nn.Linear(16, 3, key=keys[1]))
  flipped = jax.tree.map(lambda v: -v if eqx.is_array(v) else v, model)
  _attack_twice(attacks.from_equinox, (model, flipped), traces)
