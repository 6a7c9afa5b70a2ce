"""The epoch loop: sharded batches, a jitted step, progress, metrics, TensorBoard, checkpoints.

Resuming is exact: the batch order is a pure function of (seed, epoch), the step key of
(seed, step), and the state comes back bit for bit from the last checkpoint, so a killed and
restarted run ends with the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Callable

import jax
import numpy as np

from dmr import checkpoint, parallel, progress, tensorboard
from dmr.data.dataset import epoch_batches, num_batches


class TrainingDivergedError(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


def check_finite(metrics: dict, desc: str, step: int, last_checkpoint: int | None) -> dict:
  """Host copies of `metrics`; raises TrainingDivergedError if any is NaN or infinite."""
  values = {k: float(v) for k, v in metrics.items()}
  bad = {k: v for k, v in values.items() if not np.isfinite(v)}
  if bad:
    kept = (f"the last good checkpoint (step {last_checkpoint}) is kept" if last_checkpoint
            else "no checkpoint was written")
    raise TrainingDivergedError(
        f"{desc}: {bad} at step {step}; {kept}. Lower the learning rate or check the data.")
  return values


def read_metrics(path: str) -> list[dict]:
  """The records of a JSON-lines metrics file ([] if it does not exist)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(path: str, last_step: int) -> None:
  """Drops records after `last_step` (they are recomputed after a resume)."""
  kept = [r for r in read_metrics(path) if r["step"] <= last_step]
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
  os.replace(tmp, path)


def append_metrics(path: str, record: dict) -> None:
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")


def _keyed_step(train_step: Callable, state, x, y, weight, base_key, *aux):
  """train_step with the key of update state.step, fold_in(base_key, state.step), derived on
  the device (no per-step host work)."""
  return train_step(state, x, y, weight, jax.random.fold_in(base_key, state.step), *aux)


def run_epochs(train_step: Callable, state, x: np.ndarray, y: np.ndarray, *, epochs: int,
               batch_size: int, seed: int, workdir: str, mesh, checkpoint_every_steps: int,
               log_every_steps: int, desc: str = "train", aux: np.ndarray | None = None,
               tensorboard_dir: str | None = None,
               learning_rate: Callable[[int], float] | None = None):
  """Trains `state` for `epochs` over (x, y), resuming from `workdir`/checkpoints if present.

  train_step(state, x, y, weight, key[, aux]) -> (state, metrics) is jitted here with `state`
  donated; `aux` [N, ...] (optional) is batched with (x, y), e.g. the latent codes of x.
  Metrics go to `workdir`/metrics.jsonl and, with `tensorboard_dir` (see
  dmr.tensorboard.run_dir), to TensorBoard scalars train/<metric>; with `learning_rate` (the
  optimizer's schedule: update count -> rate) the rate of each logged step's update is logged
  as learning_rate. Every metric is checked to be finite before each log and each save, so a
  diverged run stops (TrainingDivergedError naming `desc` and the step) with its last good
  checkpoint. Returns the final state (replicated over `mesh`).
  """
  os.makedirs(workdir, exist_ok=True)
  steps_per_epoch = num_batches(len(x), batch_size)
  total_steps = epochs * steps_per_epoch
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  state = parallel.replicate(state, mesh)
  state = ckpt.restore(state) or state
  step = int(state.step)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  is_main = jax.process_index() == 0
  if is_main:
    truncate_metrics(metrics_path, step)

  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  step_fn = jax.jit(functools.partial(_keyed_step, train_step), donate_argnums=(0,),
                    out_shardings=(replicated, replicated))
  base_key = jax.random.key(jax.device_put(np.uint32(seed)))  # Explicit: nothing implicit per run.
  pad_to = parallel.padded_batch_size(batch_size, mesh)
  start_epoch, start_batch = divmod(step, steps_per_epoch)
  bar = progress.bar(total_steps, desc, "step", initial=step)
  writer = None
  if tensorboard_dir and step < total_steps:  # Hides what an interrupted run logged after `step`.
    writer = tensorboard.Writer(tensorboard_dir, purge_step=step + 1)
  try:
    for epoch in range(start_epoch, epochs):
      batches = epoch_batches(x, y, batch_size, seed, epoch,
                              start=start_batch if epoch == start_epoch else 0, pad_to=pad_to,
                              aux=aux)
      for batch in batches:
        xb, yb, wb, *auxb = parallel.shard_batch(batch, mesh)
        state, metrics = step_fn(state, xb, yb, wb, base_key, *auxb)
        step += 1
        bar.update(1)
        should_log = step % log_every_steps == 0 or step == total_steps
        should_save = step % checkpoint_every_steps == 0 or step % steps_per_epoch == 0
        if should_log or should_save:
          values = check_finite(metrics, desc, step, ckpt.latest_step())
        if should_log:
          bar.set_postfix(loss=f"{values['loss']:.3f}")
          if learning_rate is not None:
            values["learning_rate"] = float(learning_rate(step - 1))
          if is_main:
            append_metrics(metrics_path, {"step": step, "epoch": step / steps_per_epoch, **values})
          if writer is not None:
            writer.scalars(step, values)
        if should_save:
          ckpt.save(state, step)
  finally:
    bar.close()
    if writer is not None:
      writer.close()
    ckpt.close()
  return state

