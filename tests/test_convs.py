"""dmr.models.convs: values and gradients equal lax.conv_general_dilated's and its autodiff."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from dmr import parallel
from dmr.models import convs

FORMS = {"gemm_input_gradient_conv": convs.gemm_input_gradient_conv,
         "im2col_conv": convs.im2col_conv, "valid_conv": convs.valid_conv}
# (x [B, H, W, C], kernel [kh, kw, C, O]): batch 1, non-square images and kernels, C != O.
SHAPES = [((1, 5, 5, 1), (2, 2, 1, 3)), ((3, 7, 6, 4), (3, 2, 4, 5)),
          ((2, 6, 9, 3), (2, 4, 3, 2)), ((2, 8, 8, 5), (3, 3, 5, 7))]


def lax_conv(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def random_inputs(x_shape, kernel_shape, seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  x, kernel = jax.random.normal(keys[0], x_shape), jax.random.normal(keys[1], kernel_shape)
  out_shape = (x_shape[0], x_shape[1] - kernel_shape[0] + 1, x_shape[2] - kernel_shape[1] + 1,
               kernel_shape[3])
  return x, kernel, jax.random.normal(keys[2], out_shape)


def weighted_sum(conv, cotangent):
  """A scalar whose gradient is conv's VJP of `cotangent`."""
  return lambda x, kernel: (conv(x, kernel) * cotangent).sum()


def assert_close(actual, expected, rtol=1e-5):
  np.testing.assert_allclose(actual, expected, rtol=rtol,
                             atol=rtol * float(jnp.abs(expected).max()))


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("x_shape, kernel_shape", SHAPES)
def test_values_and_gradients_equal_lax(form, x_shape, kernel_shape):
  x, kernel, cotangent = random_inputs(x_shape, kernel_shape)
  conv = jax.jit(FORMS[form])
  assert_close(conv(x, kernel), lax_conv(x, kernel))
  grads = jax.jit(jax.grad(weighted_sum(FORMS[form], cotangent), (0, 1)))(x, kernel)
  expected = jax.grad(weighted_sum(lax_conv, cotangent), (0, 1))(x, kernel)
  for actual, wanted in zip(grads, expected):
    assert actual.shape == wanted.shape
    assert_close(actual, wanted)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_input_gradients_inside_while_loop(form):
  """Ten gradient-sign steps in a lax.while_loop (the attacks' loop) follow lax's exactly."""
  x, kernel, cotangent = random_inputs((2, 7, 6, 4), (3, 2, 4, 5))

  def ascend(conv):
    grad = jax.grad(weighted_sum(conv, cotangent))
    body = lambda state: (state[0] + 1, state[1] + 0.01 * grad(state[1], kernel))
    return jax.jit(lambda x: jax.lax.while_loop(lambda s: s[0] < 10, body, (0, x))[1])(x)

  assert_close(ascend(FORMS[form]), ascend(lax_conv))


@pytest.mark.parametrize("form", sorted(FORMS))
def test_vmap_and_second_order(form):
  x, kernel, cotangent = random_inputs((3, 7, 6, 4), (3, 2, 4, 5))
  per_row = lambda conv: jax.vmap(jax.grad(weighted_sum(conv, cotangent[:1])),
                                  (0, None))(x[:, None], kernel)
  assert_close(per_row(FORMS[form]), per_row(lax_conv))
  # A gradient penalty: the gradient of the squared input-gradient norm, for x and the kernel.
  penalty = lambda conv: jax.grad(
      lambda x, k: (jax.grad(weighted_sum(conv, cotangent))(x, k)**2).sum(), (0, 1))(x, kernel)
  for actual, expected in zip(penalty(FORMS[form]), penalty(lax_conv)):
    assert_close(actual, expected)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_bfloat16_in_bfloat16_out(form):
  x, kernel, cotangent = random_inputs((2, 6, 9, 3), (3, 3, 3, 2))
  x, kernel, cotangent = (a.astype(jnp.bfloat16) for a in (x, kernel, cotangent))
  grads = jax.grad(weighted_sum(FORMS[form], cotangent), (0, 1))(x, kernel)
  expected = jax.grad(weighted_sum(lax_conv, cotangent), (0, 1))(x, kernel)
  assert FORMS[form](x, kernel).dtype == jnp.bfloat16
  for actual, wanted in zip(grads, expected):
    assert actual.dtype == jnp.bfloat16
    assert_close(actual.astype(jnp.float32), wanted.astype(jnp.float32), rtol=2e-2)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_batch_sharded_over_eight_devices(form):
  mesh = parallel.data_mesh()
  x, kernel, cotangent = random_inputs((16, 7, 6, 4), (3, 2, 4, 5))
  expected = jax.grad(weighted_sum(lax_conv, cotangent), (0, 1))(x, kernel)
  x, cotangent = parallel.shard_batch((np.asarray(x), np.asarray(cotangent)), mesh)
  loss = lambda x, kernel, cotangent: weighted_sum(FORMS[form], cotangent)(x, kernel)
  grads = jax.jit(jax.grad(loss, (0, 1)))(x, kernel, cotangent)
  assert grads[0].sharding.is_equivalent_to(NamedSharding(mesh, PartitionSpec(parallel.AXIS)), 4)
  for actual, wanted in zip(grads, expected):
    assert_close(actual, wanted)


def test_valid_conv_picks_im2col_for_nine_taps_or_more():
  x, small, _ = random_inputs((2, 6, 6, 3), (2, 2, 3, 4))
  large = random_inputs((2, 6, 6, 3), (3, 3, 3, 4))[1]
  primitives = lambda kernel: str(jax.make_jaxpr(convs.valid_conv)(x, kernel))
  assert "custom_vjp_call" in primitives(small) and "dot_general" not in primitives(small)
  assert "dot_general" in primitives(large) and "conv_general_dilated" not in primitives(large)


def test_flax_conv_adapter_rejects_other_convs():
  x, kernel, _ = random_inputs((2, 6, 6, 3), (3, 3, 3, 4))
  nhwc = ("NHWC", "HWIO", "NHWC")
  assert_close(convs.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=nhwc),
               lax_conv(x, kernel))
  with pytest.raises(ValueError, match="only stride-1 VALID NHWC/HWIO convs; use "
                                       "jax.lax.conv_general_dilated for others"):
    convs.conv_general_dilated(x, kernel, (2, 2), "VALID", dimension_numbers=nhwc)


def test_attacks_roll_their_loop_for_dmr_convs_and_unroll_it_for_plain_convs():
  """unroll="auto" unrolls on CPU only when the input gradient computes convs the forward pass
  does not: dmr's classifier computes none once dead code is gone (its backward rule's kernel
  gradient conv goes unused); the same network with lax's strided convs adds one per layer."""
  from dmr.attacks import _execution
  from dmr.models import classifiers
  x = jnp.zeros((2, 28, 28, 1))
  model = classifiers.make_classifier("conv", 10)
  variables = model.init(jax.random.key(0), x)
  dmr_fn = jax.tree_util.Partial(lambda v, images: model.apply(v, images), variables)
  kernels = [variables["params"][f"Conv_{i}"]["kernel"] for i in range(3)]

  def plain_fn(images):
    for kernel in kernels:
      images = jax.nn.relu(jax.lax.conv_general_dilated(
          images, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")))
    return images.reshape((images.shape[0], -1))[:, :10]

  assert dmr_fn(x).shape == plain_fn(x).shape == (2, 10)
  assert not _execution.backward_convolves(dmr_fn, x)
  assert _execution.backward_convolves(plain_fn, x)
  on_cpu = jax.default_backend() == "cpu"
  assert _execution.resolve_stepping(False, "auto", dmr_fn, x) == (False, False)
  assert _execution.resolve_stepping(False, "auto", plain_fn, x) == (False, on_cpu)
