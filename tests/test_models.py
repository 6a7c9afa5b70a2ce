"""Classifiers: the paper's architecture, all input sizes, masked BatchNorm."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr.models import classifiers


@pytest.mark.parametrize("architecture", sorted(classifiers.ARCHITECTURES))
@pytest.mark.parametrize("shape, k", [((28, 28, 1), 10), ((56, 48, 3), 2)])
def test_logits_shape(architecture, shape, k):
  model = classifiers.make_classifier(architecture, k)
  variables = model.init(jax.random.key(0), jnp.zeros((1,) + shape))
  logits = model.apply(variables, jnp.zeros((3,) + shape))
  assert logits.shape == (3, k)


def test_conv_classifier_is_the_papers():
  model = classifiers.make_classifier("conv", 10)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
  kernels = [params[f"Conv_{i}"]["kernel"].shape for i in range(3)]
  assert kernels == [(4, 4, 1, 16), (4, 4, 16, 32), (4, 4, 32, 64)]
  assert params["Dense_0"]["kernel"].shape == (576, 100)  # 64 * 3 * 3 -> 10K
  assert params["Dense_1"]["kernel"].shape == (100, 10)
  assert classifiers.conv_stack_depth(56, 48) == 4


def test_masked_batchnorm_ignores_padding_rows():
  model = classifiers.make_classifier("conv", 10)
  x = jax.random.uniform(jax.random.key(1), (6, 28, 28, 1))
  variables = model.init(jax.random.key(0), x[:1])
  real, stats_real = model.apply(variables, x[:4], train=True, mutable=["batch_stats"])
  padded = jnp.concatenate([x[:4], jnp.ones((2, 28, 28, 1))])
  mask = jnp.array([1, 1, 1, 1, 0, 0], bool)
  out, stats_padded = model.apply(variables, padded, train=True, mask=mask,
                                  mutable=["batch_stats"])
  np.testing.assert_allclose(out[:4], real, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               stats_real, stats_padded)


def test_unknown_architecture():
  with pytest.raises(ValueError, match="allowed: \\['conv', 'mlp', 'resnet', 'vgg'\\]"):
    classifiers.make_classifier("vit", 10)
