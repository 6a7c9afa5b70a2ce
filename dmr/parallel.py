"""Data parallelism: a 1-D `data` mesh over all devices of all hosts, replicated params.

Every process reads the same global batch (same data, same seed) and contributes the rows of
its own devices; `jax.jit` with these shardings then computes exactly the single-device step
(BatchNorm statistics and the loss are reductions over the global batch).
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dmr import progress
from dmr.data.dataset import pad_indices

AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Starts JAX's multi-host runtime; arguments left None are auto-detected (Slurm, TPU pods).

  On CPU the cross-process collectives use gloo.
  """
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def data_mesh() -> Mesh:
  """A 1-D mesh named `data` over every device of every process."""
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def padded_batch_size(batch_size: int, mesh: Mesh) -> int:
  """batch_size rounded up to a multiple of the device count (padding rows carry weight 0)."""
  n = mesh.size
  return -(-batch_size // n) * n


def replicate(tree, mesh: Mesh):
  """Places every leaf of `tree` on all devices of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(arrays, mesh: Mesh):
  """Global numpy arrays [B, ...] (identical on every process) -> jax arrays sharded over `data`.

  Each process places only the rows of its own devices. B must divide by the number of devices
  (see `padded_batch_size`).
  """
  sharding = NamedSharding(mesh, P(AXIS))

  def put(a: np.ndarray) -> jax.Array:
    if a.shape[0] % mesh.size:
      raise ValueError(f"batch of {a.shape[0]} rows does not divide over {mesh.size} devices; "
                       f"pad it to padded_batch_size().")
    # Explicit puts of this process's rows (an accelerator sees no implicit transfer).
    shards = [jax.device_put(a[index], device)
              for device, index in sharding.addressable_devices_indices_map(a.shape).items()]
    return jax.make_array_from_single_device_arrays(a.shape, sharding, shards)

  return jax.tree.map(put, arrays)


@jax.jit
def _call(fn: jax.tree_util.Partial, *args):
  return fn(*args)


def map_in_batches(fn: Callable, arrays: tuple, batch_size: int, mesh: Mesh,
                   key: jax.Array | None = None, desc: str | None = None):
  """fn(*batch[, key_b]) over the rows of `arrays` (each [N, ...], any array-like with len() and
  integer-array indexing) in batches of `batch_size` sharded over `mesh`; the outputs (a pytree
  of [batch, ...] arrays: batch first) are concatenated into numpy arrays over all N rows.

  fn: a jitted function (or one calling jitted code), or a jax.tree_util.Partial, which runs
  through one shared jitted call: every Partial of the same function (e.g. an encoder with other
  params) reuses one compilation. The last batch is padded (repeating its first row) so that one
  compilation serves all batches; padding rows are dropped from the outputs. With `key`, batch b
  gets fold_in(key, b). With `desc`, a progress bar (dmr.progress) counts the rows done.
  """
  if isinstance(fn, jax.tree_util.Partial):
    fn = functools.partial(_call, fn)
  size = padded_batch_size(batch_size, mesh)
  n = len(arrays[0])
  outputs = []
  with progress.bar(n, desc, "row", wanted=desc is not None) as bar:
    for b, start in enumerate(range(0, n, batch_size)):
      idx = np.arange(start, min(start + batch_size, n))
      batch = shard_batch(tuple(a[pad_indices(idx, size)] for a in arrays), mesh)
      extra = () if key is None else (jax.random.fold_in(key, b),)
      out = to_host(fn(*batch, *extra))
      outputs.append(jax.tree.map(lambda a: a[:len(idx)], out))
      bar.update(len(idx))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def to_host(tree):
  """Fully replicated or sharded jax arrays -> numpy arrays with the global values on every host."""
  from jax.experimental import multihost_utils
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  return multihost_utils.process_allgather(tree, tiled=True)
