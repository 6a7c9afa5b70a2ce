"""Test error of dmr's classifier training against a PyTorch twin of the authors' training.

  PYTHONPATH=. python benchmarks/train_fidelity.py --epochs 3 --seeds 0 1 2 3 4 \
      [--n 60000] [--threads 1] [--frameworks dmr torch] [--results fidelity.jsonl]

Both sides train the paper's conv classifier on the first `n` Fashion-MNIST training rows
(/usr/share/datasets/fashion-mnist) for `epochs`, batch 100, and report the test error of the
final model (BatchNorm on its running statistics) on all 10,000 test images.

- dmr: its own model, optimizer and train step (dmr.models.classifiers, dmr.train.optim,
  dmr.train.steps) with the key `seed`, as a run trains model `seed`.
- torch: the twin of the authors' code: Conv(4, s2, p1) with bias -> BatchNorm(eps 1e-5,
  momentum 0.1) -> ReLU x3, Linear(576, 100) -> Linear(100, 10); every conv and linear weight
  drawn by `kaiming_normal_(w, sqrt(2))` (their call: sqrt(2) lands in the leaky-ReLU slope, so
  std = sqrt(2/3) / sqrt(fan_in)), biases 0; torch.optim.Adam(betas (0.5, 0.9), weight_decay
  1e-4, coupled, on every parameter) with lr 0.01 * 0.95^(epoch + 1 + b / B) set before batch b
  (their scheduler; `--twin-schedule paper` drops the + 1).

Both take their batches from dmr.data.dataset.epoch_batches(seed, epoch): the same reshuffled
order per epoch for a seed, so a seed's two runs differ only in the framework, the
initialization draw and float rounding. Each finished (framework, seed) is appended to
`--results` with its per-image errors; the summary covers every record there with the same n
and epochs: per-seed errors, mean and std per framework, and mean(dmr) - mean(torch) with a
Welch t interval over seeds, dmr.stats' two-level bootstrap (seeds, then images) and a paired t
interval over the seeds both arms ran. Give runs
of another dmr version their own `--label` to compare them in one table; `--summary-only`
prints the table without training.

Threads: both frameworks get `--threads` (XLA: one thread unless > 1, then its default pool),
and the process is pinned to as many cores; run it under `nice` on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=60000, help="first n training rows")
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
  parser.add_argument("--frameworks", nargs="+", default=["dmr", "torch"],
                      choices=["dmr", "torch"])
  parser.add_argument("--label", default="",
                      help="name of the dmr arm in the results (default: dmr)")
  parser.add_argument("--twin-schedule", default="authors", choices=["authors", "paper"],
                      help="authors: lr * 0.95^(epoch + 1 + b/B); paper: without the + 1")
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--results", default="train_fidelity.jsonl")
  parser.add_argument("--summary-only", action="store_true")
  return parser.parse_args()


ARGS = parse_args()
if ARGS.threads == 1:  # must be set before jax starts its CPU backend
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1").strip()
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from dmr import stats  # noqa: E402
from dmr.data import dataset as data_lib  # noqa: E402
from dmr.data import fashion_mnist  # noqa: E402
from dmr.models import classifiers  # noqa: E402
from dmr.train import optim, steps  # noqa: E402

LR, DECAY, BATCH = 0.01, 0.95, 100


def train_dmr(ds, seed: int, epochs: int) -> np.ndarray:
  """Per-image test errors (bool [10000]) of dmr's classifier after `epochs`."""
  model = classifiers.make_classifier("conv", ds.num_classes)
  tx = optim.paper_adam(LR, DECAY, data_lib.num_batches(len(ds.x_train), BATCH))
  state = steps.init_state(model, tx, jax.random.key(seed), ds.image_shape)
  step_fn = jax.jit(steps.make_train_step(model, tx), donate_argnums=(0,))
  key = jax.random.key(seed)
  step = 0
  for epoch in range(epochs):
    for xb, yb, wb in data_lib.epoch_batches(ds.x_train, ds.y_train, BATCH, seed, epoch):
      state, _ = step_fn(state, xb, yb, wb, jax.random.fold_in(key, step))
      step += 1
  logits_fn = jax.jit(steps.make_logits_fn(model, state.params, state.batch_stats))
  predictions = np.concatenate([np.argmax(logits_fn(ds.x_test[i:i + 1000]), -1)
                                for i in range(0, len(ds.x_test), 1000)])
  return predictions != ds.y_test


def authors_twin(image_shape, num_classes: int):
  """torch_twin's conv classifier with the authors' conv bias and initialization."""
  import torch
  import torch_twin  # benchmarks/ is on sys.path when this file runs as a script.
  net = torch_twin.TorchConvClassifier(image_shape, num_classes, conv_bias=True)
  for module in net.modules():
    if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
      torch.nn.init.kaiming_normal_(module.weight, math.sqrt(2))
      torch.nn.init.zeros_(module.bias)
  return net


def train_torch(ds, seed: int, epochs: int, schedule: str) -> np.ndarray:
  """Per-image test errors (bool [10000]) of the twin after `epochs`."""
  import torch
  import torch_twin
  torch.manual_seed(seed)
  net = authors_twin(ds.image_shape, ds.num_classes).train()
  opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(0.5, 0.9), weight_decay=1e-4)
  per_epoch = data_lib.num_batches(len(ds.x_train), BATCH)
  offset = 1 if schedule == "authors" else 0
  for epoch in range(epochs):
    batches = data_lib.epoch_batches(ds.x_train, ds.y_train, BATCH, seed, epoch)
    for b, (xb, yb, wb) in enumerate(batches):
      real = int(wb.sum())
      for group in opt.param_groups:
        group["lr"] = LR * DECAY**(epoch + offset + b / per_epoch)
      opt.zero_grad(set_to_none=True)
      logits = net(torch_twin.to_torch_images(xb[:real]))
      loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(yb[:real].astype(np.int64)))
      loss.backward()
      opt.step()
  net.eval()
  with torch.no_grad():
    logits = torch.cat([net(torch_twin.to_torch_images(ds.x_test[i:i + 1000]))
                        for i in range(0, len(ds.x_test), 1000)])
  return logits.argmax(-1).numpy() != ds.y_test


def read_records(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def summarize(records: list[dict], n: int, epochs: int) -> None:
  """Per-seed table, mean/std per arm, and each dmr arm minus the torch arm with intervals."""
  arms: dict[str, dict[int, np.ndarray]] = {}
  for r in records:  # a later record of the same (arm, seed) replaces an earlier one
    if r["n"] == n and r["epochs"] == epochs:
      errors = np.frombuffer(r["errors"].encode(), np.uint8) == ord("1")
      arms.setdefault(r["arm"], {})[r["seed"]] = errors
  if not arms:
    print(f"no results for n={n}, epochs={epochs}")
    return
  rates = {arm: {seed: 100 * e.mean() for seed, e in per_seed.items()}
           for arm, per_seed in arms.items()}
  print(f"\ntest error (%), n={n}, {epochs} epochs, batch {BATCH}")
  print(f"  {'seed':>6s}" + "".join(f"{arm:>14s}" for arm in arms))
  for seed in sorted({s for per_seed in arms.values() for s in per_seed}):
    print(f"  {seed:6d}" + "".join(f"{rates[arm][seed]:14.2f}" if seed in rates[arm]
                                   else f"{'-':>14s}" for arm in arms))
  for what, fn in (("mean", np.mean), ("std", lambda v: np.std(v, ddof=1) if len(v) > 1 else 0)):
    print(f"  {what:>6s}" + "".join(f"{fn(list(rates[arm].values())):14.2f}" for arm in arms))
  for arm in [a for a in arms if a != "torch" and "torch" in arms]:
    ours, twin = list(rates[arm].values()), list(rates["torch"].values())
    line = f"  {arm} - torch: {np.mean(ours) - np.mean(twin):+.2f} points"
    if len(ours) > 1 and len(twin) > 1:
      welch = scipy_stats.ttest_ind(ours, twin, equal_var=False).confidence_interval(0.95)
      boot = stats.difference_interval(list(arms["torch"].values()), list(arms[arm].values()))
      line += (f"; 95% Welch t [{welch.low:+.2f}, {welch.high:+.2f}]; 95% bootstrap (seeds, "
               f"images) [{100 * boot.lo:+.2f}, {100 * boot.hi:+.2f}]")
    common = sorted(set(rates[arm]) & set(rates["torch"]))
    if len(common) > 1:  # a seed's two runs share their batch order
      paired = scipy_stats.ttest_rel([rates[arm][s] for s in common],
                                     [rates["torch"][s] for s in common]).confidence_interval(0.95)
      line += f"; paired t over seeds {common}: [{paired.low:+.2f}, {paired.high:+.2f}]"
    print(line)


def main():
  cores = sorted(os.sched_getaffinity(0))[:ARGS.threads]
  os.sched_setaffinity(0, cores)
  print(f"threads: {ARGS.threads} on cores {cores}; XLA_FLAGS="
        f"{os.environ.get('XLA_FLAGS', '')!r}; jax {jax.__version__}", flush=True)
  if not ARGS.summary_only:
    ds = fashion_mnist.load().first_n(ARGS.n)
    if "torch" in ARGS.frameworks:
      import torch
      torch.set_num_threads(ARGS.threads)
      print(f"torch {torch.__version__} with set_num_threads({ARGS.threads}); twin lr schedule: "
            f"{ARGS.twin_schedule}", flush=True)
    for seed in ARGS.seeds:
      for framework in ARGS.frameworks:
        start, cpu = time.perf_counter(), time.process_time()
        if framework == "dmr":
          errors = train_dmr(ds, seed, ARGS.epochs)
        else:
          errors = train_torch(ds, seed, ARGS.epochs, ARGS.twin_schedule)
        wall = time.perf_counter() - start
        arm = (ARGS.label or "dmr") if framework == "dmr" else "torch"
        print(f"{arm} seed {seed}: test error {100 * errors.mean():.2f}% "
              f"({wall:.0f} s wall, cpu/wall {(time.process_time() - cpu) / wall:.2f})",
              flush=True)
        with open(ARGS.results, "a") as f:
          f.write(json.dumps({"arm": arm, "seed": seed, "n": ARGS.n, "epochs": ARGS.epochs,
                              "errors": "".join("1" if e else "0" for e in errors)}) + "\n")
  summarize(read_records(ARGS.results), ARGS.n, ARGS.epochs)


if __name__ == "__main__":
  main()
