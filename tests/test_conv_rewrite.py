"""dmr.models.conv_rewrite and the attacks' fast_convs: any lax conv model in dmr's conv forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import attacks
from dmr.attacks import _execution
from dmr.models import conv_rewrite

# (x shape, kernel shape, strides, padding, dimension numbers): layouts of flax, PyTorch and
# mixed; strides 1-3; kernels not divisible by the stride; SAME and uneven explicit padding.
CONVS = [
    ((2, 9, 8, 3), (4, 4, 3, 5), (2, 2), ((1, 1), (1, 1)), ("NHWC", "HWIO", "NHWC")),
    ((2, 3, 11, 10), (6, 3, 3, 3), (2, 2), "SAME", ("NCHW", "OIHW", "NCHW")),
    ((2, 3, 10, 7), (3, 5, 3, 4), (3, 2), ((2, 0), (1, 3)), ("NCHW", "HWIO", "NHWC")),
    ((1, 7, 7, 2), (3, 3, 2, 4), (1, 1), "VALID", ("NHWC", "HWIO", "NCHW")),
]


def lax_conv(x, kernel, strides, padding, numbers):
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=numbers)


def assert_close(actual, expected):
  np.testing.assert_allclose(actual, expected, rtol=1e-5,
                             atol=1e-5 * float(jnp.abs(expected).max()))


@pytest.mark.parametrize("x_shape, kernel_shape, strides, padding, numbers", CONVS)
def test_fast_form_equals_lax_in_values_and_gradients(x_shape, kernel_shape, strides, padding,
                                                      numbers):
  keys = jax.random.split(jax.random.key(0), 3)
  x, kernel = jax.random.normal(keys[0], x_shape), jax.random.normal(keys[1], kernel_shape)
  conv = lambda x, kernel: lax_conv(x, kernel, strides, padding, numbers)
  fast = conv_rewrite.with_fast_convs(conv)
  assert _execution.backward_convolves(lambda x: conv(x, kernel), x)
  assert not _execution.backward_convolves(lambda x: fast(x, kernel), x)
  expected = conv(x, kernel)
  assert_close(jax.jit(fast)(x, kernel), expected)
  cotangent = jax.random.normal(keys[2], expected.shape)
  loss = lambda f: lambda x, kernel: (f(x, kernel) * cotangent).sum()
  for actual, wanted in zip(jax.grad(loss(fast), (0, 1))(x, kernel),
                            jax.grad(loss(conv), (0, 1))(x, kernel)):
    assert_close(actual, wanted)


def test_convs_the_forms_do_not_cover_run_as_they_are():
  x, kernel = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 2, 6)) / 9
  numbers = ("NHWC", "HWIO", "NHWC")
  dilated = lambda x: lax_conv(x[..., :2], kernel, (1, 1), "VALID", numbers) + 0 * jnp.sum(
      jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", rhs_dilation=(2, 2),
                                   dimension_numbers=numbers, feature_group_count=2))
  fast = conv_rewrite.with_fast_convs(dilated)
  params = [e.params for e in jax.make_jaxpr(fast)(x).eqns
            if e.primitive.name == "conv_general_dilated"]
  assert [p["feature_group_count"] for p in params] == [2]
  assert_close(fast(x), dilated(x))


def test_partial_stays_a_reusable_partial_with_traced_params():
  def model(kernel, x):
    return lax_conv(x, kernel, (2, 2), "SAME", ("NHWC", "HWIO", "NHWC")).reshape(x.shape[0], -1)

  x = jax.random.normal(jax.random.key(1), (2, 6, 6, 1))
  kernels = [jax.random.normal(jax.random.key(k), (4, 4, 1, 2)) for k in (2, 3)]
  fast = [conv_rewrite.with_fast_convs(jax.tree_util.Partial(model, k)) for k in kernels]
  assert isinstance(fast[0], jax.tree_util.Partial) and _execution.is_reusable(fast[0])
  apply = jax.jit(lambda fn, x: fn(x))
  for fn, kernel in zip(fast, kernels):
    assert_close(apply(fn, x), model(kernel, x))
  assert apply._cache_size() == 1


def plain_linear_model(kernel, dense, x):
  """A model as users write it: PyTorch layouts, a strided SAME conv, no nonlinearity."""
  h = lax_conv(x, kernel, (2, 2), "SAME", ("NCHW", "OIHW", "NCHW"))
  return h.reshape(h.shape[0], -1) @ dense


def linear_problem(classes: int = 2):
  """(model, x [3, 1, 8, 8], its predictions y): a plain linear conv model and inputs."""
  keys = jax.random.split(jax.random.key(4), 3)
  kernel = jax.random.normal(keys[0], (4, 1, 4, 4))
  dense = jax.random.normal(keys[1], (64, classes))
  x = jax.random.uniform(keys[2], (3, 1, 8, 8))
  fn = jax.tree_util.Partial(plain_linear_model, kernel, dense)
  return fn, x, jnp.argmax(fn(x), axis=1)


def has_transposed_strided_conv(attack, fn, x, y, **options) -> bool:
  """Whether the traced attack differentiates a stride-2 conv as autodiff does (a conv whose
  input is dilated by 2)."""
  program = jax.make_jaxpr(lambda x: attack(fn, x, y, key=jax.random.key(5), eps=0.1,
                                            **options).x_adv)(x)
  return "lhs_dilation=(2, 2)" in str(program)


def test_pgd_with_fast_convs_reaches_the_linear_optimum():
  """margin loss of a linear model: the L-inf optimum is x + eps sign(gradient), clipped."""
  fn, x, y = linear_problem()
  margin = lambda x: jnp.sum(jnp.take_along_axis(fn(x), 1 - y[:, None], 1)
                             - jnp.take_along_axis(fn(x), y[:, None], 1))
  gradient = jax.grad(margin)(x)
  optimum = jnp.clip(x + 0.1 * jnp.sign(gradient), 0.0, 1.0)
  result = attacks.pgd(fn, x, y, key=jax.random.key(5), eps=0.1, loss="margin", init="zero",
                       early_stop=False, fast_convs=True)
  clear = jnp.abs(gradient) > 1e-5
  np.testing.assert_allclose(jnp.where(clear, result.x_adv, 0), jnp.where(clear, optimum, 0),
                             atol=2e-6)
  assert float(jnp.mean(clear)) > 0.9
  assert has_transposed_strided_conv(attacks.pgd, fn, x, y, fast_convs=False)
  assert not has_transposed_strided_conv(attacks.pgd, fn, x, y, fast_convs=True)


def test_apgd_steps_use_the_fast_form_and_find_the_same_successes():
  fn, x, y = linear_problem(classes=4)
  assert has_transposed_strided_conv(attacks.apgd, fn, x, y, steps=5, fast_convs=False)
  assert not has_transposed_strided_conv(attacks.apgd, fn, x, y, steps=5, fast_convs=True)
  results = [attacks.apgd(fn, x, y, key=jax.random.key(6), eps=0.05, steps=20, loss="dlr",
                          fast_convs=fast) for fast in (True, False)]
  np.testing.assert_array_equal(results[0].success, results[1].success)
  np.testing.assert_allclose(results[0].loss, results[1].loss, rtol=1e-3)


def test_auto_computes_plain_convs_fast_and_keeps_the_loop_rolled():
  x = jnp.zeros((2, 1, 8, 8))
  fn = jax.tree_util.Partial(plain_linear_model, jnp.ones((4, 1, 4, 4)), jnp.ones((64, 2)))
  spec = lambda **options: _execution.Execution(**options).resolve(fn, x)
  on_cpu = jax.default_backend() == "cpu"
  assert (spec().fast_convs, spec().unroll) == (on_cpu, False)
  assert (spec(fast_convs=False).fast_convs, spec(fast_convs=False).unroll) == (False, on_cpu)
  assert spec(fast_convs=True, unroll=True).unroll is True
  with pytest.raises(ValueError, match='fast_convs=\'yes\' must be True, False or "auto"'):
    attacks.pgd(fn, x, jnp.zeros(2, jnp.int32), key=jax.random.key(0), eps=0.1,
                fast_convs="yes")


def test_auto_still_unrolls_when_uncovered_convs_remain():
  def dilated(x):
    h = jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 1, 2)), (1, 1), "SAME",
                                     rhs_dilation=(2, 2),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return h.reshape(h.shape[0], -1)[:, :3]

  x = jnp.zeros((2, 8, 8, 1))
  spec = _execution.Execution().resolve(dilated, x)
  on_cpu = jax.default_backend() == "cpu"
  assert (spec.fast_convs, spec.unroll) == (on_cpu, on_cpu)
