"""pgd on models whose optimum is known: linear logits, a tiny MLP for restarts and early stops."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import attacks

DIM = 20
RNG = np.random.default_rng(0)  # test data from numpy: no random kernels to compile
W_DIFF = RNG.normal(size=DIM).astype(np.float32)  # w = w_true - w_other of the linear model
# Logits [z_0, z_1] = x @ [w/2, -w/2] + [b, 0]; label 0, so margin = z_1 - z_0 = -x.w - b.
LINEAR_W = jnp.stack([W_DIFF / 2, -W_DIFF / 2], axis=1)
EPS = {"linf": 0.5, "l2": 0.5, "l1": 2.0}
DUAL = {"linf": 1, "l2": 2, "l1": np.inf}   # optimal margin gain = eps * ||w||_dual


def linear_logits(x):
  return x @ LINEAR_W + jnp.array([3.0, 0.0])


@jax.jit
def margin_at(x):
  logits = linear_logits(x)
  return logits[:, 1] - logits[:, 0]


def _x(batch, seed=1):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(batch, DIM)), jnp.float32)


def _adam_l2_l1_gain(norm):
  """Adam rescales every coordinate alike, so its iterates move along sign(grad): from zero it
  ends at eps * sign / sqrt(D) in the L2 ball and at eps * sign / D in the L1 ball."""
  return EPS[norm] * float(np.abs(W_DIFF).sum()) / {"l2": np.sqrt(DIM), "l1": DIM}[norm]


def _linear_attack(x, norm, optimizer, eps, bounds):
  """The attack both linear-model tests run (one compiled program per norm and optimizer)."""
  y = jnp.zeros(x.shape[0], jnp.int32)
  return attacks.pgd(linear_logits, x, y, key=jax.random.key(0), eps=eps, norm=norm, steps=100,
                     optimizer=optimizer, step_size=eps / 20 if optimizer == "adam" else None,
                     init="zero", bounds=bounds, loss="margin", early_stop=False)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("optimizer", ["sign", "adam"])
def test_linear_model_reaches_the_analytic_optimum(norm, optimizer):
  x = _x(4)
  r = _linear_attack(x, norm, optimizer, EPS[norm], bounds=(-100.0, 100.0))
  w = np.asarray(W_DIFF)
  steepest_gain = EPS[norm] * np.linalg.norm(w, ord=DUAL[norm])
  gain = steepest_gain if optimizer == "sign" or norm == "linf" else _adam_l2_l1_gain(norm)
  np.testing.assert_allclose(r.loss, margin_at(x) + gain, rtol=1e-4)
  np.testing.assert_allclose(r.loss, margin_at(r.x_adv), rtol=1e-5)
  if optimizer == "sign":
    # With D = 20 an L1 step moves ceil(D / 20) = 1 coordinate: the exact steepest ascent.
    best = {"linf": -np.sign(w), "l2": -w / np.linalg.norm(w),
            "l1": -np.sign(w) * (np.abs(w) == np.abs(w).max())}[norm]
    np.testing.assert_allclose(r.x_adv - x, np.broadcast_to(EPS[norm] * best, x.shape),
                               atol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("optimizer", ["sign", "adam"])
def test_constraints_hold_exactly(norm, optimizer):
  # Inputs on or near the faces of [0, 1], so the box binds.
  x = jnp.clip(_x(4, seed=2) * 1.6 - 0.3, 0.0, 1.0)
  eps = {"linf": 0.3, "l2": 1.0, "l1": 3.0}[norm]
  r = _linear_attack(x, norm, optimizer, eps, bounds=(0.0, 1.0))
  x_adv, x = np.asarray(r.x_adv), np.asarray(x)
  size = {"linf": np.abs(x_adv - x).max(1), "l2": np.linalg.norm(x_adv - x, axis=1),
          "l1": np.abs(x_adv - x).sum(1)}[norm]
  assert size.max() <= eps + 1e-5
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert np.all(np.asarray(r.loss) > np.asarray(margin_at(x)) + 0.1 * eps)   # real progress
  np.testing.assert_allclose(r.loss, margin_at(x_adv), rtol=1e-5, atol=1e-6)


def test_early_stop_returns_the_first_successful_iterate():
  # Sign steps of 0.05 from zero: margin(t) = m0 + 0.05 t ||w||_1 (until t = 10 reaches eps).
  step = 0.05 * float(np.abs(W_DIFF).sum())
  x = jnp.zeros((3, DIM))
  margin0 = jnp.array([-2.5 * step, 0.5, -20 * step])  # first success at t = 3; t = 0; never
  x = x.at[:, 0].set((margin0 + 3.0) / -W_DIFF[0])
  y = jnp.zeros(3, jnp.int32)
  kwargs = dict(key=jax.random.key(0), eps=0.5, steps=30, step_size=0.05, init="zero",
                bounds=None, loss="margin")
  r = attacks.pgd(linear_logits, x, y, early_stop=True, **kwargs)
  np.testing.assert_array_equal(r.success, [True, True, False])
  np.testing.assert_allclose(r.x_adv[0] - x[0], -0.15 * jnp.sign(W_DIFF), atol=1e-6)
  np.testing.assert_allclose(r.x_adv[1], x[1])                        # the start already fools
  np.testing.assert_allclose(r.x_adv[2] - x[2], -0.5 * jnp.sign(W_DIFF), atol=1e-6)
  np.testing.assert_allclose(r.loss, margin_at(r.x_adv), rtol=1e-5)
  full = attacks.pgd(linear_logits, x, y, early_stop=False, **kwargs)
  np.testing.assert_allclose(full.x_adv - x, -0.5 * jnp.sign(W_DIFF)[None].repeat(3, 0),
                             atol=1e-6)


# A tiny nonlinear model on which restarts matter. Written with broadcasts and row sums instead
# of matmuls, so a row's arithmetic does not depend on the batch size: restart 0 of a run with
# 4 restarts (a batch of 4 B rows) then follows the single-restart run exactly.
MLP = ((RNG.normal(size=(DIM, 32)) / np.sqrt(DIM)).astype(np.float32),
       (RNG.normal(size=(32, 5)) * 2.0).astype(np.float32))


def mlp_logits(x):
  hidden = jnp.tanh(jnp.sum(4 * (x[:, :, None] - 0.5) * MLP[0][None], axis=1))
  return jnp.sum(hidden[:, :, None] * MLP[1][None], axis=1)


mlp_predict = jax.jit(lambda x: jnp.argmax(mlp_logits(x), axis=1))
mlp_worst_class = jax.jit(lambda x: jnp.argmin(mlp_logits(x), axis=1))


def _mlp_batch():
  x = _x(64, seed=5)
  return x, mlp_predict(x)


@pytest.mark.parametrize("early_stop", [False, True])
def test_more_restarts_are_never_weaker(early_stop):
  x, y = _mlp_batch()
  run = lambda restarts: attacks.pgd(mlp_logits, x, y, key=jax.random.key(11), eps=0.04,
                                     steps=10, restarts=restarts, early_stop=early_stop)
  one, four = run(1), run(4)
  np.testing.assert_array_equal(four.success_per_restart[0], one.success_per_restart[0])
  assert four.success_per_restart.shape == (4, 64)
  assert bool(jnp.all(four.success >= one.success))
  assert 0.1 < float(one.success.mean()) < 0.9            # neither trivial nor hopeless
  assert int(jnp.sum(four.loss > one.loss + 1e-3)) > 10    # the other restarts found more
  if early_stop:
    # A reported success is a misclassified returned example.
    np.testing.assert_array_equal(mlp_predict(four.x_adv) != y, four.success)
  else:
    assert bool(jnp.all(four.loss >= one.loss - 1e-5))   # the loss itself may differ by an ulp
  x_adv = np.asarray(four.x_adv)
  assert np.abs(x_adv - np.asarray(x)).max() <= 0.04 + 1e-6
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_targeted_attack_reaches_the_target():
  x, y = _mlp_batch()
  target = mlp_worst_class(x)
  r = attacks.pgd(mlp_logits, x, target, key=jax.random.key(2), eps=0.5, steps=40,
                  optimizer="adam", step_size=0.05, init="paper", targeted=True)
  assert float(r.success.mean()) > 0.9
  np.testing.assert_array_equal(mlp_predict(r.x_adv) == target, r.success)


def test_validation_errors_say_what_to_do():
  x, y = _x(4), jnp.zeros(4, jnp.int32)
  key = jax.random.key(0)
  call = lambda **kw: attacks.pgd(linear_logits, kw.pop("x", x), kw.pop("y", y),
                                  key=kw.pop("key", key), eps=kw.pop("eps", 0.3), **kw)
  cases = [
      (dict(eps=0.0), "eps=0.0 must be > 0"),
      (dict(eps=-1), "must be > 0"),
      (dict(step_size=0.0), "step_size=0.0 must be > 0"),
      (dict(norm="l3"), "norm='l3' is not supported; use one of ['linf', 'l2', 'l1']"),
      (dict(optimizer="sgd"), "use one of ['sign', 'adam']"),
      (dict(loss="hinge"), "use one of ['ce', 'margin']"),
      (dict(init="normal"), "use one of ['uniform', 'paper', 'zero']"),
      (dict(steps=0), "steps=0 must be a Python int >= 1"),
      (dict(restarts=0), "restarts=0 must be a Python int >= 1"),
      (dict(restarts=2.0), "restarts=2.0 must be a Python int"),
      (dict(x=x + 1.5), "x lies outside bounds=(0.0, 1.0); clip it into the box"),
      (dict(x=x.at[0, 0].set(jnp.nan)), "x contains NaN or inf"),
      (dict(y=jnp.zeros(3, jnp.int32)), "y must have shape [B] = (4,)"),
      (dict(y=jnp.zeros(4)), "y must hold integer class labels"),
      (dict(bounds=(1.0, 0.0)), "bounds: lo must be <= hi"),
      (dict(key=3), "key must be a jax.random key"),
      (dict(targeted=1), "targeted=1 must be a Python bool"),
      (dict(unroll=None), 'unroll=None must be True, False or "auto"'),
      (dict(max_rows=0), "max_rows=0 must be a Python int >= 1"),
  ]
  for kwargs, message in cases:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("]", r"\]")):
      call(**kwargs)
  with pytest.raises(ValueError, match=r"logits_fn must map a batch of 4 inputs to logits"):
    attacks.pgd(lambda x: x[:, 0], x, y, key=key, eps=0.3)
