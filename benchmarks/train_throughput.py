"""Training throughput of dmr's jitted step against an equivalent PyTorch step, in one run.

Same model (the paper's conv classifier), optimizer (Adam 0.5/0.9, coupled L2 1e-4, per-batch
exponential decay), batch size and data, both on the same CPU threads. Reports images/s and the
ratio. Usage: python benchmarks/train_throughput.py [--steps 300] [--batch 100] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dmr.models import classifiers
from dmr.train import optim, steps

try:
  import torch
except ImportError:
  torch = None


def time_runs(run, repeats: int) -> float:
  """Median seconds of run() over `repeats` calls after one warm-up call."""
  run()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def dmr_runner(x: np.ndarray, y: np.ndarray, steps_per_run: int, batch: int):
  model = classifiers.make_classifier("conv", 10)
  tx = optim.paper_adam(0.01, 0.95, steps_per_epoch=len(x) // batch)
  state = steps.init_state(model, tx, jax.random.key(0), x.shape[1:])
  step = jax.jit(steps.make_train_step(model, tx), donate_argnums=(0,))
  batches = [(jnp.asarray(x[i * batch:(i + 1) * batch]), jnp.asarray(y[i * batch:(i + 1) * batch]))
             for i in range(len(x) // batch)]
  weight = jnp.ones(batch)
  holder = {"state": state}

  def run():
    s = holder["state"]
    for i in range(steps_per_run):
      xb, yb = batches[i % len(batches)]
      s, metrics = step(s, xb, yb, weight, jax.random.key(i))
    jax.block_until_ready(metrics["loss"])
    holder["state"] = s

  return run


def torch_runner(x: np.ndarray, y: np.ndarray, steps_per_run: int, batch: int):
  import torch_twin as twin  # benchmarks/ is on sys.path when this file runs as a script.
  net = twin.TorchConvClassifier(x.shape[1:], 10).train()
  opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.5, 0.9), weight_decay=1e-4)
  per_epoch = len(x) // batch
  sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.95**(t / per_epoch))
  xs = twin.to_torch_images(x)
  ys = torch.from_numpy(y.astype(np.int64))
  batches = [(xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch])
             for i in range(per_epoch)]
  loss_fn = torch.nn.CrossEntropyLoss()

  def run():
    for i in range(steps_per_run):
      xb, yb = batches[i % len(batches)]
      opt.zero_grad(set_to_none=True)
      loss = loss_fn(net(xb), yb)
      loss.backward()
      opt.step()
      sched.step()

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  threads = os.cpu_count()
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(6000, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, 6000).astype(np.int32)
  images = args.steps * args.batch
  rows = [("dmr (jax.jit)", images / time_runs(dmr_runner(x, y, args.steps, args.batch),
                                               args.repeats))]
  if torch is None:
    print("PyTorch is not installed: `make bench` installs it (pip install 'dmr[bench]'). "
          "Only dmr's throughput is reported.")
  else:
    torch.set_num_threads(threads)
    rows.append((f"PyTorch {torch.__version__} (eager)",
                 images / time_runs(torch_runner(x, y, args.steps, args.batch), args.repeats)))
  print(f"train step, paper conv classifier, batch {args.batch}, {args.steps} steps x "
        f"{args.repeats} repeats (median), {threads} CPU threads, jax {jax.__version__} "
        f"on {jax.devices()[0].platform}")
  for name, rate in rows:
    print(f"  {name:28s} {rate:10.0f} images/s")
  if len(rows) == 2:
    print(f"  ratio dmr / PyTorch: {rows[0][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
  main()
