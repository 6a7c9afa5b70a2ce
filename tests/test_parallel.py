"""dmr.parallel.map_in_batches: rows in sharded batches, padding dropped, one compilation."""
import jax
import jax.numpy as jnp
import numpy as np

from dmr import parallel


def scale(w, x):
  return x * w


def test_partials_of_one_function_share_one_compilation_and_rows_keep_their_order():
  mesh = parallel.data_mesh()
  x = np.arange(21, dtype=np.float32).reshape(21, 1)
  before = parallel._call._cache_size()
  outputs = [parallel.map_in_batches(jax.tree_util.Partial(scale, jnp.float32(w)), (x,), 10, mesh)
             for w in (2.0, 3.0)]
  np.testing.assert_array_equal(outputs[0], 2 * x)  # 21 rows: batches of 10, 10, 1 (padded).
  np.testing.assert_array_equal(outputs[1], 3 * x)
  assert parallel._call._cache_size() == before + 1


def test_batches_get_their_own_keys():
  mesh = parallel.data_mesh()
  x = np.zeros((20, 1), np.float32)
  noise = parallel.map_in_batches(lambda xb, key: xb + jax.random.uniform(key, xb.shape), (x,), 8,
                                  mesh, jax.random.key(0))
  assert noise.shape == (20, 1)
  np.testing.assert_allclose(noise[:8], jax.random.uniform(jax.random.fold_in(
      jax.random.key(0), 0), (8, 1)))
  assert not np.allclose(noise[:8], noise[8:16])
