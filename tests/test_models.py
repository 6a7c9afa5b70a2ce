"""Classifiers: the paper's architecture, all input sizes, masked BatchNorm, initialization."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr.models import classifiers, layers


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


def _kernels(architecture: str, keys: int = 8) -> dict[str, np.ndarray]:
  """Every kernel of `architecture` (28x28x1, K = 10), each flattened over `keys` init draws."""
  model = classifiers.make_classifier(architecture, 10)
  init = jax.jit(lambda key: model.init(key, jnp.zeros((1, 28, 28, 1)))["params"])
  draws = [init(jax.random.key(k)) for k in range(keys)]
  flat = [dict((jax.tree_util.keystr(p), np.asarray(v)) for p, v in
               jax.tree_util.tree_flatten_with_path(d)[0] if "kernel" in jax.tree_util.keystr(p))
          for d in draws]
  return {name: np.stack([f[name] for f in flat]) for name in flat[0]}


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_init_is_the_authors_kaiming_normal(architecture):
  # The authors' kaiming_normal_(w, sqrt(2)): N(0, (2/3) / fan_in), untruncated (flax's default,
  # LeCun normal, has variance 1 / fan_in and no weight beyond 2 std).
  for name, w in _kernels(architecture).items():
    fan_in = np.prod(w.shape[1:-1])
    assert np.var(w) * fan_in == pytest.approx(2 / 3, rel=0.08), name
    assert np.mean(np.abs(w) > 2 * np.std(w)) == pytest.approx(0.0455, abs=0.012), name


def test_vgg_init_is_the_authors_he_normal():
  # Convs [kh, kw, C, F]: kaiming_normal_(mode="fan_out"), N(0, 2 / (kh kw F)); linear layers
  # N(0, 2 / fan_in). Kernels of >= 10,000 weights (the variance within 3%).
  for name, w in _kernels("vgg", keys=1).items():
    if w.size >= 10_000:
      fan = np.prod(w.shape[1:3]) * w.shape[-1] if w.ndim == 5 else w.shape[1]
      assert np.var(w) * fan == pytest.approx(2, rel=0.06), name


class _Norm(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool):
    return layers.masked_batch_norm(x, train, None)


def test_batchnorm_uses_pytorchs_momentum_and_epsilon():
  # PyTorch's BatchNorm2d defaults (the authors'): running = 0.9 running + 0.1 batch statistic
  # (flax calls 0.9 the momentum), epsilon 1e-5 in (x - mean) / sqrt(var + eps). A per-channel
  # variance of ~1e-4 makes epsilon visible at 5%.
  x = 0.01 * jax.random.normal(jax.random.key(0), (8, 3, 3, 2)) + jnp.array([0.5, -1.0])
  variables = _Norm().init(jax.random.key(1), x, train=False)
  y, updates = _Norm().apply(variables, x, train=True, mutable=["batch_stats"])
  mean, var = np.mean(x, axis=(0, 1, 2)), np.var(x, axis=(0, 1, 2))
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-3, atol=1e-4)
  stats = updates["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * var, rtol=1e-5)
