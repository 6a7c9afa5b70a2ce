"""attacks.evaluate vs torchattacks' AutoAttack on the same weights; APGD-CE speed at equal cores.

  PYTHONPATH=. python benchmarks/attack_strength.py [--threads 1] [--cores 0] [--n 500]
      [--epochs 2] [--adv-epochs 1] [--repeats 3] [--unroll]

Trains the paper's Fashion-MNIST ConvClassifier (dmr.models.classifiers, local IDX files via
dmr.data) normally for `epochs`, and, when --adv-epochs > 0, a copy adversarially (half of each
batch replaced by 7-step L-inf PGD at eps 0.1, the paper's off-manifold training), copies each
into the PyTorch twin (BatchNorm in eval mode), then on the first `n` test images:
  - robust accuracy at L-inf eps 0.1 and 0.3: dmr `attacks.evaluate` (APGD-CE, APGD-T with 9
    targets, Square 5000 queries; 100 steps) vs torchattacks.AutoAttack(version="standard")
    (APGD-CE, APGD-T, FAB-T, Square 5000) on the twin; the target: dmr <= AutoAttack + 0.5 pt;
  - speed: one APGD-CE run (100 steps, 1 restart) on `batch` images, dmr apgd (host_loop=True,
    as evaluate runs it, and the compiled lax loop; both exit once all inputs are fooled;
    --unroll adds the unrolled loop) vs torchattacks.APGD
    (every step runs), interleaved, median wall of `repeats` after a warm-up, with the cpu/wall
    utilisation; at eps 0.3 (as evaluated) and at eps 0.01, where few inputs are fooled and
    both run all 100 steps (equal work). Both run in this process, pinned to --cores with
    os.sched_setaffinity, with --threads threads each (torch.set_num_threads; XLA one thread
    unless > 1).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--cores", default="0", help="comma-separated CPU ids both contenders use")
  parser.add_argument("--n", type=int, default=500, help="test images for robust accuracy")
  parser.add_argument("--batch", type=int, default=250, help="images per APGD timing run")
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--adv-epochs", type=int, default=1)
  parser.add_argument("--skip-strength", action="store_true", help="time APGD only")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--unroll", action="store_true",
                      help="also time dmr apgd with its 100 steps unrolled (minutes to compile)")
  return parser.parse_args()


ARGS = parse_args()
CORES = {int(c) for c in ARGS.cores.split(",")}
os.sched_setaffinity(0, CORES)
if ARGS.threads == 1:  # must be set before jax starts its CPU backend
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1").strip()
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torchattacks  # noqa: E402

import pinning  # noqa: E402
import torch_twin  # noqa: E402
from dmr.attacks.apgd import apgd  # noqa: E402
from dmr.attacks.evaluate import evaluate  # noqa: E402
from dmr.data import dataset, fashion_mnist  # noqa: E402
from dmr.models.classifiers import ConvClassifier  # noqa: E402
from dmr.train import steps, variants  # noqa: E402

torch.set_num_threads(ARGS.threads)
EPSILONS = (0.1, 0.3)
BATCH = 100


def train(model, data, epochs: int, adversarial: bool, seed: int = 0):
  """(params, batch_stats) after `epochs` of Adam (lr 1e-3) on batches of 100."""
  tx = optax.adam(1e-3)
  state = steps.init_state(model, tx, jax.random.key(seed), data.image_shape)
  second_half = None
  if adversarial:
    cfg = ml_collections.ConfigDict(dict(steps=7, step_size=2.5 * 0.1 / 7, optimizer="sign",
                                         init="uniform", off_eps=0.1))
    second_half = variants.off_manifold(model, cfg)
  step = jax.jit(steps.make_train_step(model, tx, second_half))
  weight = jnp.ones(BATCH)
  for epoch in range(epochs):
    order = dataset.epoch_permutation(len(data.x_train), seed, epoch)
    for i in range(len(order) // BATCH):
      rows = order[i * BATCH:(i + 1) * BATCH]
      state, _ = step(state, data.x_train[rows], data.y_train[rows], weight,
                      jax.random.key(epoch * 100000 + i))
  return state.params, state.batch_stats


def autoattack_robust_accuracy(twin, x, y, eps) -> tuple[float, float]:
  """(robust accuracy, seconds) of torchattacks' standard AutoAttack on the twin."""
  attack = torchattacks.AutoAttack(twin, norm="Linf", eps=eps, version="standard", n_classes=10,
                                   seed=0)
  xt, yt = torch_twin.to_torch_images(x), torch.from_numpy(y.astype(np.int64))
  start = time.perf_counter()
  correct = []
  for first in range(0, len(x), BATCH):
    adv = attack(xt[first:first + BATCH], yt[first:first + BATCH])
    with torch.no_grad():
      correct.append((twin(adv).argmax(1) == yt[first:first + BATCH]).numpy())
  return float(np.concatenate(correct).mean()), time.perf_counter() - start


def strength(name, logits_fn, twin, x, y):
  for eps in EPSILONS:
    start = time.perf_counter()
    ev = evaluate(logits_fn, x, y, key=jax.random.key(0), eps=eps, batch_size=BATCH * 5)
    dmr_seconds = time.perf_counter() - start
    broken = {a: int(np.sum(ev.broken_by == i)) for i, a in enumerate(ev.attacks)}
    aa, aa_seconds = autoattack_robust_accuracy(twin, x, y, eps)
    verdict = "met" if 100 * ev.robust_accuracy <= 100 * aa + 0.5 else "NOT met"
    print(f"{name:>8} eps {eps}: clean {100 * ev.clean_accuracy:.1f}%  robust: dmr evaluate "
          f"{100 * ev.robust_accuracy:.1f}% ({dmr_seconds:.0f} s; broken by {broken}; "
          f"rejected claims {int(ev.rejected.sum())})  torchattacks AutoAttack "
          f"{100 * aa:.1f}% ({aa_seconds:.0f} s)  target dmr <= AA + 0.5: {verdict}", flush=True)


def speed(name, logits_fn, twin, x, y):
  xt, yt = torch_twin.to_torch_images(x), torch.from_numpy(y.astype(np.int64))
  for eps in (0.01, 0.3):
    ta = torchattacks.APGD(twin, norm="Linf", eps=eps, steps=100, n_restarts=1, loss="ce", seed=0)
    run = lambda **loop: lambda: jax.block_until_ready(
        apgd(logits_fn, x, y, key=jax.random.key(0), eps=eps, steps=100, **loop).x_adv)
    contenders = {"torchattacks APGD": lambda: ta(xt, yt),
                  "dmr apgd host loop": run(host_loop=True), "dmr apgd jit loop": run(unroll=False)}
    if ARGS.unroll:
      contenders["dmr apgd unrolled"] = run(unroll=True)
    fooled = float(np.mean(np.asarray(apgd(logits_fn, x, y, key=jax.random.key(0), eps=eps,
                                           steps=100, host_loop=True).success)))
    results = pinning.interleaved_timings(contenders, ARGS.repeats)
    base = results["torchattacks APGD"][0]
    for k, (wall, _, util) in results.items():
      print(f"{name:>8} speed eps {eps} ({100 * fooled:.0f}% fooled): {k:<19} {wall:7.2f} s  "
            f"cpu/wall {util:.2f}  speed-up vs torchattacks {base / wall:.2f}x", flush=True)


def main():
  print(f"cores {sorted(CORES)}, threads {ARGS.threads}, load average at start "
        f"{os.getloadavg()}", flush=True)
  data = fashion_mnist.load()
  model = ConvClassifier(num_classes=10)
  x, y = data.x_test[:ARGS.n], data.y_test[:ARGS.n]
  runs = [("normal", ARGS.epochs, False)] + ([("adv", ARGS.adv_epochs, True)]
                                             if ARGS.adv_epochs > 0 else [])
  for name, epochs, adversarial in runs:
    start = time.perf_counter()
    params, stats = train(model, data, epochs, adversarial)
    print(f"{name:>8} trained {epochs} epoch(s) in {time.perf_counter() - start:.0f} s", flush=True)
    logits_fn = steps.make_logits_fn(model, params, stats)
    twin = torch_twin.conv_classifier_from_flax({"params": params, "batch_stats": stats},
                                                data.image_shape)
    with torch.no_grad():
      gap = np.abs(twin(torch_twin.to_torch_images(x[:100])).numpy()
                   - np.asarray(logits_fn(x[:100]))).max()
    print(f"{name:>8} twin max |logit difference| on 100 images: {gap:.2e}", flush=True)
    speed(name, logits_fn, twin, x[:ARGS.batch], y[:ARGS.batch])
    if not ARGS.skip_strength:
      strength(name, logits_fn, twin, x, y)
  print(f"load average at end {os.getloadavg()}", flush=True)


if __name__ == "__main__":
  main()
