"""attacks.evaluate vs AutoAttack on the same weights; APGD-CE speed at equal cores.

  PYTHONPATH=. python benchmarks/attack_strength.py [--threads 1] [--cores 0] [--n 500]
      [--epochs 2] [--adv-epochs 1] [--repeats 3] [--unroll] [--skip-speed]
      [--autoattack-dir /tmp/auto-attack] [--cases normal:linf:0.1,adv-l2:l2:1.0,...]
      [--train-n 60000] [--cache-dir DIR]

Trains the paper's Fashion-MNIST ConvClassifier (dmr.models.classifiers, local IDX files via
dmr.data) normally for `epochs`, and, for the models the cases name, copies adversarially
trained for --adv-epochs (half of each batch replaced by 7-step PGD, the paper's off-manifold
training: "adv-linf" at L-inf eps 0.1, "adv-l2" at L2 eps 1.0), on the first --train-n
training images; copies each into the PyTorch twin (BatchNorm in eval mode), then on the first
`n` test images:
  - robust accuracy per case model:norm:eps: dmr `attacks.evaluate` with its default ensemble
    for the norm (L-inf: APGD-CE, APGD-T, FAB-T, Square 5000; L2: APGD-CE, APGD-T, FAB-T; 100
    steps), with its robust accuracy after each attack and seconds, vs the ORIGINAL AutoAttack
    (fra31/auto-attack, version="standard": APGD-CE, APGD-T, FAB-T, Square; its per-attack
    log is printed) when --autoattack-dir points at its work tree (added to sys.path; it is not
    on PyPI), else torchattacks.AutoAttack(version="standard"); the target: dmr <= AutoAttack
    + 0.2 points; wall seconds and cpu/wall of each, in this process, on the same cores;
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
import pickle
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
  parser.add_argument("--skip-speed", action="store_true", help="compare robust accuracy only")
  parser.add_argument("--autoattack-dir", default=None,
                      help="work tree of fra31/auto-attack: compare with the original AutoAttack")
  parser.add_argument("--cases", default="normal:linf:0.1,normal:linf:0.3,adv-linf:linf:0.1",
                      help="comma-separated model:norm:eps (models normal, adv-linf, adv-l2)")
  parser.add_argument("--train-n", type=int, default=None, help="training images (default all)")
  parser.add_argument("--cache-dir", default=None, help="keep trained weights here for reruns")
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
if ARGS.autoattack_dir:
  sys.path.insert(0, str(pathlib.Path(ARGS.autoattack_dir).resolve()))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

import pinning  # noqa: E402
import torch_twin  # noqa: E402
from dmr import attacks  # noqa: E402
from dmr.attacks.apgd import apgd  # noqa: E402
from dmr.attacks.evaluate import evaluate  # noqa: E402
from dmr.data import dataset, fashion_mnist  # noqa: E402
from dmr.models.classifiers import ConvClassifier  # noqa: E402
from dmr.train import steps, variants  # noqa: E402

torch.set_num_threads(ARGS.threads)
BATCH = 100
# The training attacks of the adversarially trained models: 7-step PGD, step 2.5 eps / 7.
TRAINING_ATTACKS = {"adv-linf": ("linf", 0.1), "adv-l2": ("l2", 1.0)}
AA_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def train(model, data, epochs: int, training_attack, seed: int = 0):
  """(params, batch_stats) after `epochs` of Adam (lr 1e-3) on batches of 100 of the first
  --train-n training images; training_attack (norm, eps) or None (normal training)."""
  tx = optax.adam(1e-3)
  state = steps.init_state(model, tx, jax.random.key(seed), data.image_shape)
  second_half = None
  if training_attack is not None:
    norm, eps = training_attack
    second_half = variants.off_manifold(attacks.AttackSpec(
        eps=eps, norm=norm, steps=7, step_size=2.5 * eps / 7, optimizer="sign", init="uniform"))
  step = jax.jit(steps.make_train_step(model, tx, second_half))
  weight = jnp.ones(BATCH)
  images = len(data.x_train) if ARGS.train_n is None else ARGS.train_n
  for epoch in range(epochs):
    order = dataset.epoch_permutation(images, seed, epoch)
    for i in range(len(order) // BATCH):
      rows = order[i * BATCH:(i + 1) * BATCH]
      state, _ = step(state, data.x_train[rows], data.y_train[rows], weight,
                      jax.random.key(epoch * 100000 + i))
  return state.params, state.batch_stats


def timed(run):
  """(run(), wall seconds, cpu/wall) of a blocking call."""
  wall, cpu = time.perf_counter(), pinning.cpu_seconds()
  out = run()
  wall = time.perf_counter() - wall
  return out, wall, (pinning.cpu_seconds() - cpu) / wall


def autoattack_robust_accuracy(twin, x, y, norm, eps) -> float:
  """Robust accuracy of AutoAttack's standard version on the twin: the original when
  --autoattack-dir is given (its per-attack log printed), else torchattacks'."""
  xt, yt = torch_twin.to_torch_images(x), torch.from_numpy(y.astype(np.int64))
  if ARGS.autoattack_dir:
    from autoattack import AutoAttack
    adversary = AutoAttack(twin, norm=AA_NORMS[norm], eps=eps, version="standard", seed=0,
                           device="cpu", verbose=True)
    adv = adversary.run_standard_evaluation(xt, yt, bs=len(x))
  else:
    import torchattacks
    attack = torchattacks.AutoAttack(twin, norm=AA_NORMS[norm], eps=eps, version="standard",
                                     n_classes=10, seed=0)
    adv = torch.cat([attack(xt[i:i + BATCH], yt[i:i + BATCH]) for i in range(0, len(x), BATCH)])
  with torch.no_grad():
    return float((twin(adv).argmax(1) == yt).float().mean())


def strength(name, logits_fn, twin, x, y, norm, eps):
  ev, dmr_wall, dmr_util = timed(lambda: evaluate(logits_fn, x, y, key=jax.random.key(0),
                                                   eps=eps, norm=norm, batch_size=len(x)))
  print(f"{name:>8} {norm} eps {eps}: dmr evaluate per attack:\n{ev.summary()}", flush=True)
  which = "original AutoAttack" if ARGS.autoattack_dir else "torchattacks AutoAttack"
  aa, aa_wall, aa_util = timed(lambda: autoattack_robust_accuracy(twin, x, y, norm, eps))
  # 0.2 points of len(x) images, compared as image counts (no float rounding at the bound)
  robust_dmr, robust_aa = int(np.sum(ev.robust)), round(aa * len(x))
  verdict = "met" if 1000 * (robust_dmr - robust_aa) <= 2 * len(x) else "NOT met"
  print(f"RESULT {name:>8} {norm} eps {eps}: clean {100 * ev.clean_accuracy:.1f}%  robust: dmr "
        f"evaluate {100 * ev.robust_accuracy:.1f}% = {robust_dmr} images ({dmr_wall:.0f} s, "
        f"cpu/wall {dmr_util:.2f}; rejected claims {int(ev.rejected.sum())})  {which} "
        f"{100 * aa:.1f}% = {robust_aa} ({aa_wall:.0f} s, cpu/wall {aa_util:.2f})  target dmr "
        f"<= AA + 0.2: {verdict}", flush=True)


def speed(name, logits_fn, twin, x, y):
  import torchattacks
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


def trained(name, model, data):
  """(params, batch_stats) of model `name`, from --cache-dir when it holds them."""
  path = ARGS.cache_dir and pathlib.Path(ARGS.cache_dir) / f"{name}.pkl"
  if path and path.exists():
    return pickle.loads(path.read_bytes())
  epochs = ARGS.epochs if name == "normal" else ARGS.adv_epochs
  start = time.perf_counter()
  weights = jax.device_get(train(model, data, epochs, TRAINING_ATTACKS.get(name)))
  print(f"{name:>8} trained {epochs} epoch(s) in {time.perf_counter() - start:.0f} s", flush=True)
  if path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(weights))
  return weights


def main():
  print(f"cores {sorted(CORES)}, threads {ARGS.threads}, load average at start "
        f"{os.getloadavg()}", flush=True)
  data = fashion_mnist.load()
  model = ConvClassifier(num_classes=10)
  x, y = data.x_test[:ARGS.n], data.y_test[:ARGS.n]
  cases = [(m, norm, float(eps)) for m, norm, eps in (c.split(":") for c in ARGS.cases.split(","))]
  for name in dict.fromkeys(m for m, _, _ in cases):
    params, stats = trained(name, model, data)
    logits_fn = steps.make_logits_fn(model, params, stats)
    twin = torch_twin.conv_classifier_from_flax({"params": params, "batch_stats": stats},
                                                data.image_shape)
    with torch.no_grad():
      gap = np.abs(twin(torch_twin.to_torch_images(x[:100])).numpy()
                   - np.asarray(logits_fn(x[:100]))).max()
    print(f"{name:>8} twin max |logit difference| on 100 images: {gap:.2e}", flush=True)
    if not ARGS.skip_speed:
      speed(name, logits_fn, twin, x[:ARGS.batch], y[:ARGS.batch])
    if not ARGS.skip_strength:
      for _, norm, eps in (c for c in cases if c[0] == name):
        strength(name, logits_fn, twin, x, y, norm, eps)
  print(f"load average at end {os.getloadavg()}", flush=True)


if __name__ == "__main__":
  main()
