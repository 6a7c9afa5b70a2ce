"""Training: the paper's optimizer, the train step, padding and data parallelism."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dmr import parallel
from dmr.models import classifiers
from dmr.train import optim, steps


def torch_adam_reference(params, grads_seq, lr_fn, b1, b2, wd, eps=1e-8):
  """PyTorch's Adam with weight_decay (coupled L2), written out in numpy."""
  p, m, v = params.copy(), np.zeros_like(params), np.zeros_like(params)
  for t, g in enumerate(grads_seq, start=1):
    g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    p = p - lr_fn(t - 1) * m_hat / (np.sqrt(v_hat) + eps)
  return p


def test_paper_adam_matches_pytorch_adam_with_coupled_l2():
  rng = np.random.default_rng(0)
  params = rng.normal(size=5).astype(np.float32)
  grads = [rng.normal(size=5).astype(np.float32) for _ in range(7)]
  tx = optim.paper_adam(0.01, 0.95, steps_per_epoch=3, b1=0.5, b2=0.9, weight_decay=1e-2)
  p, state = jnp.asarray(params), tx.init(jnp.asarray(params))
  for g in grads:
    updates, state = tx.update(jnp.asarray(g), state, p)
    p = optax.apply_updates(p, updates)
  expected = torch_adam_reference(params, grads, lambda t: 0.01 * 0.95**(t / 3), 0.5, 0.9, 1e-2)
  np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)


def test_schedule_decays_every_batch():
  schedule = optim.paper_schedule(0.01, 0.95, steps_per_epoch=600)
  np.testing.assert_allclose(schedule(0), 0.01)
  np.testing.assert_allclose(schedule(300), 0.01 * 0.95**0.5, rtol=1e-6)
  np.testing.assert_allclose(schedule(1200), 0.01 * 0.95**2, rtol=1e-6)


def make_setup(batch=16, tx=None):
  """Model, optimizer, state and a batch. Equality tests pass SGD: Adam's first step is
  lr * sign(gradient), which turns float rounding in near-zero gradients into lr-sized changes."""
  model = classifiers.make_classifier("conv", 10)
  tx = tx or optim.paper_adam(0.01, 0.95, steps_per_epoch=10)
  state = steps.init_state(model, tx, jax.random.key(0), (28, 28, 1))
  x = jax.random.uniform(jax.random.key(1), (batch, 28, 28, 1))
  y = jnp.arange(batch, dtype=jnp.int32) % 10
  return model, tx, state, x, y


def test_train_steps_lower_the_loss_on_a_fixed_batch():
  model, tx, state, x, y = make_setup()
  step = jax.jit(steps.make_train_step(model, tx))
  w = jnp.ones(len(x))
  losses = []
  for i in range(20):
    state, metrics = step(state, x, y, w, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.2 * losses[0]
  assert int(state.step) == 20


def test_padded_step_equals_unpadded_step():
  model, tx, state, x, y = make_setup(12, optax.sgd(0.1))
  step = jax.jit(steps.make_train_step(model, tx))
  ref, ref_metrics = step(state, x, y, jnp.ones(12), jax.random.key(0))
  xp = jnp.concatenate([x, x[:4]])
  yp = jnp.concatenate([y, y[:4]])
  wp = jnp.concatenate([jnp.ones(12), jnp.zeros(4)])
  padded, metrics = step(state, xp, yp, wp, jax.random.key(0))
  np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               ref.params, padded.params)


def test_second_half_replaces_the_second_half():
  model, tx, state, x, y = make_setup(8, optax.sgd(0.1))
  seen = {}

  def second_half(logits_fn, xh, yh, key, aux):
    seen["rows"] = xh.shape[0]
    return jnp.zeros_like(xh)

  step = jax.jit(steps.make_train_step(model, tx, second_half))
  with_zeros, _ = step(state, x, y, jnp.ones(8), jax.random.key(0))
  plain = jax.jit(steps.make_train_step(model, tx))
  x_zeroed = x.at[4:].set(0.0)
  expected, _ = plain(state, x_zeroed, y, jnp.ones(8), jax.random.key(0))
  assert seen["rows"] == 4
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               expected.params, with_zeros.params)


def test_eight_device_step_equals_single_device_step():
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  model, tx, state, x, y = make_setup(100, optax.sgd(0.1))
  mesh = parallel.data_mesh()
  size = parallel.padded_batch_size(100, mesh)
  assert size == 104
  step = steps.make_train_step(model, tx)
  w = np.ones(100, np.float32)
  single, single_metrics = jax.jit(step)(state, x, y, w, jax.random.key(0))

  pad = lambda a, v: np.concatenate([np.asarray(a), np.full((4,) + a.shape[1:], v, a.dtype)])
  batch = parallel.shard_batch((pad(x, 0.5), pad(y, 0), pad(w, 0.0)), mesh)
  assert len(batch[0].sharding.device_set) == 8
  sharded, metrics = jax.jit(step)(parallel.replicate(state, mesh), *batch, jax.random.key(0))
  np.testing.assert_allclose(metrics["loss"], single_metrics["loss"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               single.params, parallel.to_host(sharded.params))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               single.batch_stats, parallel.to_host(sharded.batch_stats))


def test_shard_batch_refuses_rows_that_do_not_divide():
  mesh = parallel.data_mesh()
  try:
    parallel.shard_batch(np.zeros((100, 3), np.float32), mesh)
  except ValueError as e:
    assert "does not divide over 8 devices" in str(e)
  else:
    raise AssertionError("expected a ValueError")


def test_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  import flax
  import jax.numpy as jnp
  import pytest
  from dmr import checkpoint
  from dmr.train import loop

  @flax.struct.dataclass
  class State:
    step: jax.Array
    value: jax.Array

  def train_step(state, x, y, weight, key):
    # The loss is finite for 5 steps, then NaN.
    loss = jnp.where(state.step < 5, 1.0, jnp.nan)
    return State(step=state.step + 1, value=state.value + 1.0), {"loss": loss}

  x = np.zeros((80, 1, 1, 1), np.float32)
  y = np.zeros(80, np.int32)
  state = State(step=jnp.zeros((), jnp.int32), value=jnp.zeros(()))
  with pytest.raises(loop.TrainingDivergedError, match=r"model-7: \{'loss': nan\} at step 6"):
    loop.run_epochs(train_step, state, x, y, epochs=1, batch_size=8, seed=0,
                    workdir=str(tmp_path), mesh=parallel.data_mesh(), checkpoint_every_steps=2,
                    log_every_steps=1, desc="model-7")
  ckpt = checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
  assert ckpt.latest_step() == 4
  assert float(ckpt.restore(state).value) == 4.0
  ckpt.close()


def test_training_loop_moves_nothing_host_to_device_implicitly(tmp_path):
  """Every step's inputs reach the device by explicit puts (the batch, sharded) or live there
  (state, key): no Python scalar or numpy array is transferred implicitly per step, which on a
  GPU/TPU would be a host round trip each step."""
  from dmr.train import loop
  model, tx, state, _, _ = make_setup()
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(48, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, 48).astype(np.int32)
  with jax.transfer_guard_host_to_device("disallow"):
    state = loop.run_epochs(steps.make_train_step(model, tx), state, x, y, epochs=2,
                            batch_size=16, seed=0, workdir=str(tmp_path),
                            mesh=parallel.data_mesh(), checkpoint_every_steps=100,
                            log_every_steps=2, desc="guarded")
  assert int(state.step) == 6
