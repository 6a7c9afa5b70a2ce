"""dmr.attacks.pgd vs the same attack in PyTorch and vs the gradient floor, on the paper's model.

  .venv/bin/python benchmarks/attacks.py [--threads 1] [--repeats 5] [--batch 100]
                                         [--train-steps 600]

The Fashion-MNIST ConvClassifier (PAPER.md) is trained for one epoch on the local IDX files
(/usr/share/datasets/fashion-mnist, else random data: success rates are then meaningless), its
weights are copied into a PyTorch twin, and both attack the first `batch` test images with L-inf
eps 0.3 and 40 steps: Madry's sign PGD (uniform init, step 2.5 eps / 40) and the paper's Adam
attack (lr 0.005, 5 projections per step, the paper's init); dmr draws the init once and the twin
starts from the same perturbation.

Timing: every step runs (early_stop=False, as in adversarial training); one warm-up, then the
median of `repeats` rounds that interleave all contenders. dmr runs its default lax.while_loop
and unroll=True. The gradient floor is 40 x one jitted input-gradient of the same model and batch.
Both frameworks get `--threads` threads (XLA: one thread unless > 1, then its default pool; the
"cpu/wall" column is the measured utilization). Success rates: the paper's evaluation
(early_stop=True; rate on correct inputs).
"""
from __future__ import annotations

import argparse
import gzip
import os
import pathlib
import resource
import statistics
import sys
import time

import numpy as np


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--threads", type=int, default=1,
                      help="CPU threads for both frameworks (1 is robust on a shared machine)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--batch", type=int, default=100)
  parser.add_argument("--train-steps", type=int, default=600, help="600 = one epoch")
  return parser.parse_args()


ARGS = parse_args()
if ARGS.threads == 1:  # must be set before jax starts its CPU backend
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                             " intra_op_parallelism_threads=1").strip()
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from dmr import attacks  # noqa: E402
from dmr.attacks import starts  # noqa: E402
from dmr.models.classifiers import ConvClassifier  # noqa: E402

try:
  import torch  # noqa: E402
  import torch_twin  # noqa: E402
except ImportError as error:  # torch is an optional extra: pip install -e .[bench]
  torch, torch_twin, TORCH_ERROR = None, None, error

FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")
EPS, STEPS = 0.3, 40
ATTACKS = {"sign": dict(optimizer="sign", init="uniform", step_size=2.5 * EPS / STEPS),
           "adam": dict(optimizer="adam", init="paper", step_size=0.005)}


def read_idx(path: pathlib.Path) -> np.ndarray:
  """An IDX (.gz) file as a numpy array."""
  with gzip.open(path) as f:
    data = f.read()
  ndim = data[3]
  shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_data():
  """(x_train, y_train, x_test, y_test, source): NHWC float32 in [0, 1], int32 labels."""
  files = [FASHION_MNIST / f"{s}-{k}-idx{d}-ubyte.gz" for s, k, d in
           (("train", "images", 3), ("train", "labels", 1), ("t10k", "images", 3),
            ("t10k", "labels", 1))]
  if all(f.exists() for f in files):
    xs, ys, xt, yt = (read_idx(f) for f in files)
    image = lambda a: (a.astype(np.float32) / 255.0)[..., None]
    return image(xs), ys.astype(np.int32), image(xt), yt.astype(np.int32), "Fashion-MNIST"
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(61000, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, 61000).astype(np.int32)
  return x[:60000], y[:60000], x[60000:], y[60000:], "random data (Fashion-MNIST not found)"


def train(model, x, y, steps: int, batch: int = 100):
  """Flax variables after `steps` Adam steps (betas 0.5, 0.9 as the paper) in data order."""
  variables = model.init(jax.random.key(0), x[:1])
  params, stats = variables["params"], variables["batch_stats"]
  optimizer = optax.adam(0.01, b1=0.5, b2=0.9)

  @jax.jit
  def step(params, stats, opt_state, xb, yb):
    def loss_fn(params):
      logits, updates = model.apply({"params": params, "batch_stats": stats}, xb, train=True,
                                    mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), updates
    (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    changes, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, changes), updates["batch_stats"], opt_state

  opt_state = optimizer.init(params)
  for i in range(steps):
    first = i * batch % (len(x) - batch + 1)
    params, stats, opt_state = step(params, stats, opt_state, x[first:first + batch],
                                    y[first:first + batch])
  return {"params": params, "batch_stats": stats}


def cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def interleaved_timings(contenders: dict, repeats: int) -> dict:
  """{name: (median wall seconds, cpu/wall)} of blocking callables, after one warm-up each."""
  for run in contenders.values():
    run()
  walls = {name: [] for name in contenders}
  cpus = {name: [] for name in contenders}
  for _ in range(repeats):
    for name, run in contenders.items():
      wall, cpu = time.perf_counter(), cpu_seconds()
      run()
      walls[name].append(time.perf_counter() - wall)
      cpus[name].append(cpu_seconds() - cpu)
  return {name: (statistics.median(walls[name]), sum(cpus[name]) / sum(walls[name]))
          for name in contenders}


def torch_pgd(model, x, y, delta, optimizer: str, step_size: float, early_stop: bool):
  """dmr's pgd (L-inf eps 0.3, box [0, 1], cross-entropy) written in PyTorch. Returns success [B].

  Same loop as dmr: project (ball, then box; 5 rounds for adam), evaluate, keep the iterate to
  return, step; after the last step evaluate the final iterate.
  """
  rounds = 5 if optimizer == "adam" else 1
  delta = delta.clone().requires_grad_(optimizer == "adam")
  adam = torch.optim.Adam([delta], lr=step_size) if optimizer == "adam" else None
  best_loss = torch.full((len(x),), -float("inf"))
  best_success = torch.zeros(len(x), dtype=torch.bool)

  def evaluate(with_grad: bool):
    with torch.no_grad():
      for _ in range(rounds):
        delta.clamp_(-EPS, EPS)
        delta.copy_((x + delta).clamp(0.0, 1.0) - x)
    x_adv = (x + delta.detach()).clamp(0.0, 1.0).requires_grad_(with_grad)
    with torch.set_grad_enabled(with_grad):
      logits = model(x_adv)
      loss = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    success = logits.argmax(1) != y
    better = loss.detach() > best_loss
    if early_stop:
      better = ~best_success & (success | better)
    best_loss[better], best_success[better] = loss.detach()[better], success[better]
    return torch.autograd.grad(loss.sum(), x_adv)[0] if with_grad else None

  for _ in range(STEPS):
    if early_stop and bool(best_success.all()):
      break
    grad = evaluate(with_grad=True)
    if adam is None:
      with torch.no_grad():
        delta += step_size * grad.sign()
    else:
      adam.zero_grad()
      delta.grad = -grad
      adam.step()
  evaluate(with_grad=False)
  return best_success.numpy()


def main():
  x_train, y_train, x_test, y_test, source = load_data()
  model = ConvClassifier(num_classes=10)
  start = time.perf_counter()
  variables = train(model, jnp.asarray(x_train), jnp.asarray(y_train), ARGS.train_steps)
  train_seconds = time.perf_counter() - start
  x, y = jnp.asarray(x_test[:ARGS.batch]), jnp.asarray(y_test[:ARGS.batch])
  logits_fn = jax.tree_util.Partial(lambda v, images: model.apply(v, images, train=False),
                                    variables)
  correct = np.asarray(jnp.argmax(logits_fn(x), axis=1) == y)
  key = jax.random.key(0)
  print(f"data: {source}; ConvClassifier after {ARGS.train_steps} steps of 100 "
        f"({train_seconds:.0f} s); clean accuracy on the {ARGS.batch} attacked test images: "
        f"{correct.mean():.2f}")
  print(f"threads: {ARGS.threads} of {len(os.sched_getaffinity(0))} cores; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}", end="")
  if torch is None:
    print(f"\nPyTorch is missing ({TORCH_ERROR}); `pip install -e .[bench]` adds the torch "
          "columns.")
  else:
    torch.set_num_threads(ARGS.threads)
    twin = torch_twin.conv_classifier_from_flax(variables, x.shape[1:])
    xt, yt = torch_twin.to_torch_images(np.asarray(x)), torch.from_numpy(np.array(y)).long()
    with torch.no_grad():
      twin_gap = np.abs(twin(xt).numpy() - np.asarray(logits_fn(x))).max()
    print(f"; torch {torch.__version__} with set_num_threads({ARGS.threads}); twin max |logit "
          f"difference| {twin_gap:.1e}")

  grad_fn = jax.jit(jax.grad(lambda images: optax.softmax_cross_entropy_with_integer_labels(
      logits_fn(images), y).sum()))
  contenders = {"floor": lambda: [grad_fn(x) for _ in range(STEPS)][-1].block_until_ready()}
  starts_for_torch = {}
  for name, options in ATTACKS.items():
    for unroll in (False, True):
      contenders[f"dmr {name} {unroll}"] = (
          lambda options=options, unroll=unroll: attacks.pgd(
              logits_fn, x, y, key=key, eps=EPS, steps=STEPS, early_stop=False, unroll=unroll,
              **options).x_adv.block_until_ready())
    if torch is not None:
      delta = starts.restart_perturbations(key, x.shape, EPS, "linf", options["init"], 1)[0]
      starts_for_torch[name] = torch_twin.to_torch_images(np.asarray(delta))
      contenders[f"torch {name}"] = (
          lambda name=name, options=options: torch_pgd(
              twin, xt, yt, starts_for_torch[name], name, options["step_size"], False))
  timings = interleaved_timings(contenders, ARGS.repeats)

  floor, floor_cpu = timings["floor"]
  print(f"\nL-inf eps {EPS}, {STEPS} steps, batch {ARGS.batch}, median of {ARGS.repeats}: "
        f"gradient floor {ARGS.batch / floor:.0f} img/s (cpu/wall {floor_cpu:.2f})")
  header = (f"{'attack':<7}{'dmr loop':<10}{'img/s':>7}{'cpu/wall':>9}{'vs floor':>10}"
            f"{'torch img/s':>12}{'cpu/wall':>9}{'dmr/torch':>10}")
  print(f"{header}\n{'-' * len(header)}")
  for name in ATTACKS:
    torch_seconds, torch_cpu = timings.get(f"torch {name}", (None, None))
    for unroll in (False, True):
      seconds, cpu = timings[f"dmr {name} {unroll}"]
      row = (f"{name:<7}{'unrolled' if unroll else 'while':<10}{ARGS.batch / seconds:>7.0f}"
             f"{cpu:>9.2f}{100 * (seconds / floor - 1):>+9.0f}%")
      if torch_seconds is not None:
        row += (f"{ARGS.batch / torch_seconds:>12.0f}{torch_cpu:>9.2f}"
                f"{torch_seconds / seconds:>9.2f}x")
      print(row)

  print("\nsuccess rate (paper's evaluation: early_stop=True, on correct inputs)")
  for name, options in ATTACKS.items():
    result = attacks.pgd(logits_fn, x, y, key=key, eps=EPS, steps=STEPS, **options)
    line = f"{name:<7}dmr {100 * float(attacks.success_rate(result, correct)):5.1f}%"
    if torch is not None:
      success = torch_pgd(twin, xt, yt, starts_for_torch[name], name, options["step_size"], True)
      with torch.no_grad():
        twin_correct = twin(xt).argmax(1).numpy() == np.asarray(y)
      rate = (success & twin_correct).sum() / max(twin_correct.sum(), 1)
      line += (f"   torch {100 * rate:5.1f}%   inputs judged differently: "
               f"{int((success != np.asarray(result.success)).sum())}")
    print(line)
  print("\ntargets: dmr/torch >= 1.2x; vs floor <= +10%; success rates within 1 point.")


if __name__ == "__main__":
  main()
