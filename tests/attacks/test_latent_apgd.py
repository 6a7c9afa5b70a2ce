"""latent_apgd: the analytic optimum of a linear decoder and classifier under a ball and a box,
at least latent_pgd's success on a nonlinear one, and latent_pgd's guarantees."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import attacks

LATENT, PIXELS = 6, 10
RNG = np.random.default_rng(0)  # test data from numpy: no random kernels to compile
RAW_DECODER = RNG.normal(size=(LATENT, PIXELS)).astype(np.float32)
CLASSIFIER = RNG.normal(size=(PIXELS, 2)).astype(np.float32)
RAW_W = RAW_DECODER @ (CLASSIFIER[:, 1] - CLASSIFIER[:, 0])
# Scaled so that no move gains more than 3 in the margin: the CE loss then stays in a range
# float32 resolves (a margin of -50 would round CE to 0 and its steps to ties).
DECODER = RAW_DECODER * np.float32(3.0 / (0.3 * np.abs(RAW_W).sum()))
# margin for label 0 = z . LATENT_W + const
LATENT_W = DECODER @ (CLASSIFIER[:, 1] - CLASSIFIER[:, 0])
LO = np.array([-0.6, -1.0, -0.55, -1.0, -0.7, -1.0], np.float32)
HI = np.array([0.6, 1.0, 1.0, 0.52, 1.0, 0.65], np.float32)
Z = jnp.asarray(RNG.uniform(-0.5, 0.5, size=(6, LATENT)), jnp.float32)
# The intercept keeps every code of the balls below classified 0 (margin <= -1), so APGD
# returns its highest-loss iterate; CE grows with the margin.
MOST_GAIN = max(0.3 * np.abs(LATENT_W).sum(), 0.6 * np.linalg.norm(LATENT_W))
INTERCEPT = float(np.max(np.asarray(Z) @ LATENT_W + 0.5 * DECODER.sum(0) @ (
    CLASSIFIER[:, 1] - CLASSIFIER[:, 0])) + MOST_GAIN + 1.0)
Y = jnp.zeros(6, jnp.int32)


def decode(z):
  return z @ DECODER + 0.5


def classify(x):
  return x @ CLASSIFIER + jnp.array([INTERCEPT, 0.0])


def margin_of_code(z):
  logits = np.asarray(classify(decode(jnp.asarray(z))), np.float64)
  return logits[:, 1] - logits[:, 0]


def best_linf_move(u, lo, hi, eps):
  """argmax u . d over |d_i| <= eps, lo_i <= d_i <= hi_i: per coordinate, eps along sign(u)."""
  return np.clip(eps * np.sign(u), lo, hi)


def best_l2_move(u, lo, hi, eps):
  """argmax u . d over ||d||_2 <= eps and lo <= d <= hi: by the KKT conditions
  d(t) = clip(t u, lo, hi) for the t >= 0 with ||d(t)||_2 = eps (its norm grows with t)."""
  small, large = 0.0, 1e6
  for _ in range(200):
    t = 0.5 * (small + large)
    small, large = (t, large) if np.linalg.norm(np.clip(t * u, lo, hi)) < eps else (small, t)
  return np.clip(small * u, lo, hi)


BEST_MOVE = {"linf": (best_linf_move, 0.3), "l2": (best_l2_move, 0.6)}


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_reaches_the_linear_optimum_in_the_ball_and_box_within_one_percent(norm):
  best_move, eps = BEST_MOVE[norm]
  r = attacks.latent_apgd(decode, classify, Z, Y, key=jax.random.key(1), eps=eps, norm=norm,
                          box=(LO, HI), steps=100)
  z = np.asarray(Z, np.float64)
  u = LATENT_W.astype(np.float64)
  optimum = np.stack([best_move(u, LO - row, HI - row, eps) for row in z])
  best_gain = optimum @ u
  gain = margin_of_code(r.z_adv) - margin_of_code(Z)
  assert np.all(gain >= 0.99 * best_gain), (gain, best_gain)
  assert np.all(gain <= best_gain * (1 + 1e-5) + 1e-5)   # feasible: never beyond the optimum
  # The box binds at the optimum of some rows, and the ball too.
  unboxed = np.stack([best_move(u, -np.inf * np.ones(LATENT), np.inf * np.ones(LATENT), eps)
                      for _ in z])
  assert np.any(np.abs(optimum - unboxed) > 1e-3)
  assert np.all(np.asarray(r.z_adv) >= LO) and np.all(np.asarray(r.z_adv) <= HI)
  assert float(attacks.lp_norm(r.z_adv - Z, norm).max()) <= np.float32(eps)
  np.testing.assert_allclose(r.x_adv, decode(r.z_adv), atol=1e-6)
  assert not np.any(r.success) and r.success_per_restart.shape == (1, 6)


# A nonlinear decoder and classifier with 5 classes, attacked with the budget of the paper's
# latent attack (40 steps, one restart) at the paper's eps.
HIDDEN, IMAGE, CLASSES = 16, 24, 5
NET = {name: jnp.asarray(RNG.normal(size=shape) / np.sqrt(shape[0]), jnp.float32)
       for name, shape in (("d1", (LATENT, HIDDEN)), ("d2", (HIDDEN, IMAGE)),
                           ("c1", (IMAGE, HIDDEN)), ("c2", (HIDDEN, CLASSES)))}


def nonlinear_decode(net, z):
  return jax.nn.sigmoid(3.0 * jnp.tanh(z @ net["d1"]) @ net["d2"])


def nonlinear_classify(net, x):
  return 4.0 * jnp.tanh(4.0 * (x - 0.5) @ net["c1"]) @ net["c2"]


DEC = jax.tree_util.Partial(nonlinear_decode, NET)
CLS = jax.tree_util.Partial(nonlinear_classify, NET)
CODES = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, size=(200, LATENT)), jnp.float32)
LABELS = jnp.argmax(CLS(DEC(CODES)), axis=1)


def test_never_weaker_than_latent_pgd_with_the_same_budget():
  box, eps, steps = (-1.5, 1.5), 0.3, 40
  counts = {"apgd": 0, "sign": 0, "paper": 0}
  for seed in range(4):
    key = jax.random.key(seed)
    runs = {
        "apgd": attacks.latent_apgd(DEC, CLS, CODES, LABELS, key=key, eps=eps, box=box,
                                    steps=steps),
        "sign": attacks.latent_pgd(DEC, CLS, CODES, LABELS, key=key, eps=eps, box=box,
                                   steps=steps),
        "paper": attacks.latent_pgd(DEC, CLS, CODES, LABELS, key=key, eps=eps, box=box,
                                    steps=steps, optimizer="adam", init="paper",
                                    step_size=0.005)}
    for name, r in runs.items():
      counts[name] += int(np.sum(r.success))
  # Measured: apgd 734, sign 726, paper 624 successes out of 4 x 200.
  assert counts["apgd"] >= counts["sign"] and counts["apgd"] >= counts["paper"], counts
  assert 0 < counts["sign"] < 4 * len(LABELS)   # a budget where the attacks differ


def test_success_is_judged_on_a_fresh_decode_and_never_on_non_finite_logits():
  poisoned = lambda z: jnp.where(z[:, :1] > 0.45, jnp.nan, DEC(z))   # NaN images past 0.45
  r = attacks.latent_apgd(poisoned, CLS, CODES, LABELS, key=jax.random.key(0), eps=0.3,
                          box=(-1.5, 1.5), steps=20)
  logits = np.asarray(CLS(poisoned(r.z_adv)))
  fresh = np.all(np.isfinite(logits), axis=1) & (logits.argmax(1) != np.asarray(LABELS))
  np.testing.assert_array_equal(r.success, fresh)
  assert np.any(~np.isfinite(logits)) and np.any(r.success)
  np.testing.assert_array_equal(np.asarray(r.x_adv), np.asarray(poisoned(r.z_adv)))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_half_precision_codes_keep_their_dtype_and_exact_constraints(dtype, norm):
  lo, hi = jnp.full(LATENT, -1.0, dtype), jnp.asarray(np.linspace(0.9, 1.2, LATENT), dtype)
  z = jnp.clip(CODES[:40].astype(dtype), lo, hi)
  eps = {"linf": 0.3, "l2": 0.6}[norm]
  r = attacks.latent_apgd(DEC, CLS, z, LABELS[:40], key=jax.random.key(2), eps=eps, norm=norm,
                          box=(lo, hi), steps=15)
  assert r.z_adv.dtype == dtype
  moved = np.asarray(r.z_adv, np.float32) - np.asarray(z, np.float32)
  assert float(attacks.lp_norm(jnp.asarray(moved), norm).max()) <= np.float32(eps)
  assert np.all(r.z_adv >= lo) and np.all(r.z_adv <= hi)
  assert np.abs(moved).max() > 0


def test_runs_under_jit_and_vmap_as_eagerly():
  eager = attacks.latent_apgd(DEC, CLS, CODES[:20], LABELS[:20], key=jax.random.key(3), eps=0.3,
                              box=(-1.5, 1.5), steps=20)
  jitted = jax.jit(lambda z, y, key: attacks.latent_apgd(DEC, CLS, z, y, key=key, eps=0.3,
                                                          box=(-1.5, 1.5), steps=20))
  inside = jitted(CODES[:20], LABELS[:20], jax.random.key(3))
  np.testing.assert_array_equal(inside.success, eager.success)
  np.testing.assert_allclose(inside.z_adv, eager.z_adv, atol=1e-6)
  batches = CODES[:20].reshape(2, 10, LATENT), LABELS[:20].reshape(2, 10)
  mapped = jax.vmap(lambda z, y: attacks.latent_apgd(DEC, CLS, z, y, key=jax.random.key(3),
                                                     eps=0.3, box=(-1.5, 1.5), steps=20))(*batches)
  for i in range(2):
    alone = attacks.latent_apgd(DEC, CLS, batches[0][i], batches[1][i], key=jax.random.key(3),
                                eps=0.3, box=(-1.5, 1.5), steps=20)
    np.testing.assert_array_equal(mapped.success[i], alone.success)


def test_host_loop_and_compiled_loop_agree():
  runs = [attacks.latent_apgd(DEC, CLS, CODES[:30], LABELS[:30], key=jax.random.key(4),
                              eps=0.2, box=(-1.5, 1.5), steps=20, loss=loss, host_loop=host,
                              target_classes=4)
          for loss in ("dlr", "dlr-targeted") for host in (False, True)]
  for compiled, host in (runs[:2], runs[2:]):
    np.testing.assert_array_equal(host.success, compiled.success)
    np.testing.assert_allclose(host.z_adv, compiled.z_adv, atol=1e-6)
  assert runs[2].success_per_restart.shape == (4, 30)   # 4 target classes, one restart each


def test_decode_fn_is_called_on_the_rows_of_z_so_it_may_hold_per_row_data():
  offsets = 0.1 * jnp.arange(4.0)[:, None] * jnp.ones((4, 3))   # one row of data per input
  decode_fn = lambda z: z + offsets
  # margin 2 sum(x) - 6 <= -1.2 in the ball: never fooled, so the highest loss is returned
  logits_fn = lambda x: jnp.stack([6.0 - jnp.sum(x, 1), jnp.sum(x, 1)], axis=1)
  r = attacks.latent_apgd(decode_fn, logits_fn, jnp.zeros((4, 3)), jnp.zeros(4, jnp.int32),
                          key=jax.random.key(0), eps=0.5, restarts=3, steps=20)
  assert r.success_per_restart.shape == (3, 4)
  np.testing.assert_allclose(r.x_adv, offsets + 0.5, atol=1e-6)   # the optimum of each row


def test_bad_input_is_rejected_with_what_to_do():
  with pytest.raises(ValueError, match=r"z lies outside box=.*clip it into the box"):
    attacks.latent_apgd(decode, classify, Z, Y, key=jax.random.key(1), eps=0.3,
                        box=(-0.1, 0.1))
  with pytest.raises(ValueError, match=r"y must have shape \[B\] = \(6,\) to match z"):
    attacks.latent_apgd(decode, classify, Z, Y[:2], key=jax.random.key(1), eps=0.3)
  with pytest.raises(ValueError, match=r"norm='l1' is not supported; use one of \['linf', 'l2'\]"):
    attacks.latent_apgd(decode, classify, Z, Y, key=jax.random.key(1), eps=0.3, norm="l1")
  with pytest.raises(ValueError, match=r"loss='dlr' needs at least 3 classes"):
    attacks.latent_apgd(decode, classify, Z, Y, key=jax.random.key(1), eps=0.3, loss="dlr")
  with pytest.raises(ValueError, match="host_loop=True .* cannot run under jax.jit"):
    jax.jit(lambda z: attacks.latent_apgd(decode, classify, z, Y, key=jax.random.key(1),
                                          eps=0.3, host_loop=True))(Z)
