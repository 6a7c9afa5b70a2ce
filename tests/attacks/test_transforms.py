"""pgd and latent_pgd give the eager results under jax.jit, jax.vmap and on 8 sharded devices."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dmr import attacks

DIM, CLASSES, BATCH = 16, 4, 16
RNG = np.random.default_rng(3)  # test data from numpy: no random kernels to compile
PARAMS = (jnp.asarray(RNG.normal(size=(DIM, 16)), jnp.float32),
          jnp.asarray(RNG.normal(size=(16, CLASSES)), jnp.float32))
OPTIONS = dict(eps=0.1, steps=8, optimizer="adam", step_size=0.02, restarts=2, init="paper")


def mlp(params, x):
  return jnp.tanh((x - 0.5) @ params[0]) @ params[1]


def logits_fn(x):
  return mlp(PARAMS, x)


X = jnp.asarray(RNG.uniform(size=(3, BATCH, DIM)), jnp.float32)
Y = jax.vmap(lambda x: jnp.argmax(logits_fn(x), axis=1))(X)
KEYS = jax.random.split(jax.random.key(3), 3)


def _assert_same(got, want):
  for name in ("success", "success_per_restart"):
    np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
  np.testing.assert_allclose(got.x_adv, want.x_adv, atol=1e-5)
  np.testing.assert_allclose(got.loss, want.loss, rtol=1e-5, atol=1e-6)


def _eager(i):
  # A Partial over the params: the three eager problems share one compiled attack.
  return attacks.pgd(jax.tree_util.Partial(mlp, PARAMS), X[i], Y[i], key=KEYS[i], **OPTIONS)


def test_jit_with_params_closed_over_equals_eager_and_gradients_skip_the_attack():
  """In a jitted adversarial-training loss the params are closed over as tracers; the result
  equals the eager one, and the gradient treats x_adv as a constant."""
  def loss(params, x_adv):
    return jnp.mean(jax.nn.logsumexp(mlp(params, x_adv), axis=1))

  def adversarial_loss(params, x, y, key):
    r = attacks.pgd(lambda v: mlp(params, v), x, y, key=key, **OPTIONS)
    return loss(params, r.x_adv), r

  want = _eager(0)
  assert 0 < int(want.success.sum()) < BATCH
  step = jax.jit(jax.grad(adversarial_loss, has_aux=True))
  grads, got = step(PARAMS, X[0], Y[0], KEYS[0])
  _assert_same(got, want)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), grads,
               jax.grad(loss)(PARAMS, want.x_adv))


def test_unrolled_loop_equals_while_loop():
  unrolled = attacks.pgd(logits_fn, X[0], Y[0], key=KEYS[0], unroll=True, **OPTIONS)
  _assert_same(unrolled, _eager(0))


def test_vmap_over_independent_problems_equals_eager():
  batched = jax.vmap(lambda x, y, key: attacks.pgd(logits_fn, x, y, key=key, **OPTIONS))(X, Y, KEYS)
  assert batched.x_adv.shape == (3, BATCH, DIM)
  for i in range(3):
    _assert_same(jax.tree.map(lambda a: a[i], batched), _eager(i))


def test_batch_sharded_over_8_devices_equals_eager():
  assert jax.device_count() == 8
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), PartitionSpec("data"))
  x, y = jax.device_put(X[1], sharding), jax.device_put(Y[1], sharding)
  # A Partial over params: the params are a traced argument, so new params reuse the program.
  got = attacks.pgd(jax.tree_util.Partial(mlp, PARAMS), x, y, key=KEYS[1], **OPTIONS)
  assert len(got.x_adv.sharding.device_set) == 8
  _assert_same(got, _eager(1))
  rate = jax.jit(attacks.success_rate)(got, jnp.ones(BATCH, bool))
  np.testing.assert_allclose(rate, np.mean(np.asarray(got.success_per_restart)))


def test_latent_pgd_under_jit_and_vmap_equals_eager():
  # vmap over codes and labels with one key (batched keys are covered by the pgd test above).
  decoder = (RNG.normal(size=(3, DIM)) * 0.3).astype(np.float32)
  decode = lambda z: jax.nn.sigmoid(z @ decoder)
  z = jnp.asarray(RNG.normal(size=(3, BATCH, 3)), jnp.float32)
  y = jax.vmap(lambda z: jnp.argmax(logits_fn(decode(z)), axis=1))(z)
  options = dict(OPTIONS, eps=0.5, box=(-3.0, 3.0))
  run = lambda z, y, key: attacks.latent_pgd(decode, logits_fn, z, y, key=key, **options)
  want = run(z[0], y[0], KEYS[0])
  assert 0 < int(want.success.sum()) < BATCH
  got = jax.jit(jax.vmap(run, in_axes=(0, 0, None)))(z, y, KEYS[0])
  first = jax.tree.map(lambda a: a[0], got)
  _assert_same(first._replace(x_adv=first.z_adv), want._replace(x_adv=want.z_adv))
  np.testing.assert_allclose(first.x_adv, want.x_adv, atol=1e-5)
