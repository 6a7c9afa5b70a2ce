"""dmr.attacks.pgd against torchattacks' PGD and the gradient floor, side by side at equal cores.

  python benchmarks/attacks.py [--cores N] [--repeats 5] [--batch 100] [--train-steps 600]

The Fashion-MNIST ConvClassifier (the paper's) is trained for one epoch on the local IDX files
(/usr/share/datasets/fashion-mnist, else random data: success rates are then meaningless), and
every contender attacks its first `batch` test images, L-inf eps 0.3, 40 steps, every step run
(early_stop=False, as in adversarial training):
- dmr's default call, `attacks.pgd(logits_fn, x, y, key=key, eps=0.3, early_stop=False)` (sign
  steps of 2.5 eps / 40 from a uniform start; for dmr's model unroll="auto" keeps the
  lax.while_loop), reported first; then the loop rolled (unroll=False) and unrolled (unroll=True);
- the same on a user's plain model: the network as a pure JAX function of lax.conv_general_dilated
  (stride 2, BatchNorm folded into the conv) with the same weights; its default call computes the
  convs in dmr's forms (fast_convs="auto" on CPU), fast_convs=False differentiates them as they
  are (and unroll="auto" then unrolls);
- torchattacks.PGD (same eps, step, start law) and the same loop as dmr's written in PyTorch, on
  a PyTorch twin with the same weights; the paper's Adam attack in dmr and in PyTorch;
- the gradient floor: 40 x one jitted input gradient of the same model and batch.
Without --cores the script runs at 1 core, then at all cores, each in its own process pinned to
the same cores for every contender (benchmarks/pinning.py). Timing: one warm-up, then the median
of `repeats` rounds that interleave all contenders. Success rates: the paper's evaluation
(early_stop=True; rate on correct inputs).
"""
from __future__ import annotations

import gzip
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))
import pinning  # noqa: E402

CORES = pinning.pin_from_argv()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from dmr import attacks  # noqa: E402
from dmr.attacks import starts  # noqa: E402
from dmr.models import layers  # noqa: E402
from dmr.models.classifiers import ConvClassifier  # noqa: E402

try:
  import torch  # noqa: E402
  import torch_twin  # noqa: E402
except ImportError as error:  # torch is an optional extra: pip install -e .[bench]
  torch, torch_twin, TORCH_ERROR = None, None, error
try:
  import torchattacks  # noqa: E402
except ImportError:
  torchattacks = None


def parse_args():
  parser = pinning.parser(__doc__)
  parser.add_argument("--train-steps", type=int, default=600, help="600 = one epoch")
  return parser.parse_args()


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


def folded_conv_params(variables) -> dict:
  """The ConvClassifier's inference-mode weights with each BatchNorm folded into its conv:
  {"convs": [(kernel HWIO, bias)], "dense": [(kernel, bias)]}."""
  params, stats = variables["params"], variables["batch_stats"]
  convs = []
  for i in range(sum(name.startswith("Conv_") for name in params)):
    norm, moments = params[f"BatchNorm_{i}"], stats[f"BatchNorm_{i}"]
    scale = norm["scale"] / jnp.sqrt(moments["var"] + 1e-5)
    convs.append((params[f"Conv_{i}"]["kernel"] * scale, norm["bias"] - moments["mean"] * scale))
  dense = [(params[name]["kernel"], params[name]["bias"]) for name in ("Dense_0", "Dense_1")]
  return {"convs": convs, "dense": dense}


def plain_conv_logits(params: dict, x: jax.Array) -> jax.Array:
  """A user's model: x [B, H, W, C] -> logits [B, K] with lax.conv_general_dilated (stride 2,
  padding k/2 - 1), folded BatchNorm, ReLU, then the two dense layers."""
  for kernel, bias in params["convs"]:
    pad = layers.same_padding(kernel.shape[0])
    x = jax.lax.conv_general_dilated(x, kernel, (2, 2), ((pad, pad), (pad, pad)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = jax.nn.relu(x + bias)
  x = x.reshape((x.shape[0], -1))
  for kernel, bias in params["dense"]:
    x = x @ kernel + bias
  return x


def torch_pgd(model, x, y, delta, optimizer: str, step_size: float, early_stop: bool):
  """dmr's pgd (L-inf eps 0.3, box [0, 1], cross-entropy) written in PyTorch. Returns success [B].

  Same loop as dmr: project (ball, then box; 5 rounds for adam), evaluate, keep the iterate to
  return, step; after the last step evaluate the final iterate.
  """
  rounds = 5 if optimizer == "adam" else 1
  delta = delta.clone().requires_grad_(optimizer == "adam")
  adam = torch.optim.Adam([delta], lr=step_size) if optimizer == "adam" else None
  best_loss = torch.full((len(x),), -float("inf"), device=x.device)
  best_success = torch.zeros(len(x), dtype=torch.bool, device=x.device)

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
  return best_success.cpu().numpy()


def gradient_floor(logits_fn, x, y):
  """run() computing STEPS jitted input gradients of the summed cross-entropy, one at a time."""
  grad_fn = jax.jit(jax.grad(lambda images: optax.softmax_cross_entropy_with_integer_labels(
      logits_fn(images), y).sum()))
  return lambda: [grad_fn(x) for _ in range(STEPS)][-1].block_until_ready()


def dmr_attack(logits_fn, x, y, key, **options):
  """run() of one timed dmr.attacks.pgd call: L-inf eps 0.3, 40 steps, every step run."""
  return lambda: attacks.pgd(logits_fn, x, y, key=key, eps=EPS, steps=STEPS, early_stop=False,
                             **options).x_adv.block_until_ready()


def synchronized(run):
  """run() followed by waiting for torch's device."""
  if torch is None or not torch.cuda.is_available():
    return run
  return lambda: (run(), torch.cuda.synchronize())


def main():
  args = parse_args()
  if torch is not None:
    pinning.size_torch_pools(torch, CORES)
  print(pinning.describe(CORES, torch))
  x_train, y_train, x_test, y_test, source = load_data()
  model = ConvClassifier(num_classes=10)
  start = time.perf_counter()
  variables = train(model, jnp.asarray(x_train), jnp.asarray(y_train), args.train_steps)
  train_seconds = time.perf_counter() - start
  x, y = jnp.asarray(x_test[:args.batch]), jnp.asarray(y_test[:args.batch])
  logits_fn = jax.tree_util.Partial(lambda v, images: model.apply(v, images, train=False),
                                    variables)
  plain_fn = jax.tree_util.Partial(plain_conv_logits, folded_conv_params(variables))
  correct = np.asarray(jnp.argmax(logits_fn(x), axis=1) == y)
  key = jax.random.key(0)
  plain_gap = float(jnp.abs(plain_fn(x) - logits_fn(x)).max())
  print(f"data: {source}; ConvClassifier after {args.train_steps} steps of 100 "
        f"({train_seconds:.0f} s); clean accuracy on the {args.batch} attacked test images: "
        f"{correct.mean():.2f}; plain lax model max |logit difference| {plain_gap:.1e}")

  contenders = {
      "dmr pgd, defaults (unroll=auto)": dmr_attack(logits_fn, x, y, key),
      "dmr pgd, unroll=False (while loop)": dmr_attack(logits_fn, x, y, key, unroll=False),
      "dmr pgd, unroll=True": dmr_attack(logits_fn, x, y, key, unroll=True),
      "plain lax model: dmr pgd, defaults": dmr_attack(plain_fn, x, y, key),
      "plain lax model: fast_convs=False": dmr_attack(plain_fn, x, y, key, fast_convs=False),
      "dmr adam (paper), while loop": dmr_attack(logits_fn, x, y, key, unroll=False,
                                                 **ATTACKS["adam"]),
      "dmr adam (paper), unroll=True": dmr_attack(logits_fn, x, y, key, unroll=True,
                                                  **ATTACKS["adam"]),
      "gradient floor": gradient_floor(logits_fn, x, y),
      "plain lax model: gradient floor": gradient_floor(plain_fn, x, y),
  }
  starts_for_torch = {}
  if torch is None:
    print(f"PyTorch is missing ({TORCH_ERROR}); `pip install -e .[bench]` adds the torch rows.")
  else:
    device = pinning.torch_device(torch)
    twin = torch_twin.conv_classifier_from_flax(variables, x.shape[1:]).to(device)
    xt = torch_twin.to_torch_images(np.asarray(x)).to(device)
    yt = torch.from_numpy(np.array(y)).long().to(device)
    with torch.no_grad():
      twin_gap = np.abs(twin(xt).cpu().numpy() - np.asarray(logits_fn(x))).max()
    print(f"PyTorch twin max |logit difference| {twin_gap:.1e}")
    for name, options in ATTACKS.items():
      delta = starts.restart_perturbations(key, x.shape, EPS, "linf", options["init"], 1)[0]
      starts_for_torch[name] = torch_twin.to_torch_images(np.asarray(delta)).to(device)
    if torchattacks is None:
      print("torchattacks is missing: `pip install torchattacks` adds its PGD row.")
    else:
      pgd = torchattacks.PGD(twin, eps=EPS, alpha=ATTACKS["sign"]["step_size"], steps=STEPS,
                             random_start=True)
      contenders["torchattacks PGD"] = synchronized(lambda: pgd(xt, yt))
    for name, options in ATTACKS.items():
      contenders[f"torch, dmr's {name} loop"] = synchronized(
          lambda name=name, options=options: torch_pgd(
              twin, xt, yt, starts_for_torch[name], name, options["step_size"], False))
  timings = pinning.interleaved_timings(contenders, args.repeats)

  print(f"\nL-inf eps {EPS}, {STEPS} steps, batch {args.batch}, median of {args.repeats} "
        f"interleaved rounds; 'vs floor' is time over the same model's gradient floor; "
        f"'x torchattacks' is its time / this time")
  header = f"{'contender':<40}{'img/s':>8}{'cpu/wall':>9}{'vs floor':>10}{'x torchattacks':>16}"
  print(f"{header}\n{'-' * len(header)}")
  reference = timings.get("torchattacks PGD", (None,))[0]
  for name, (seconds, _, utilization) in timings.items():
    row = f"{name:<40}{args.batch / seconds:>8.0f}{utilization:>9.2f}"
    floor = "plain lax model: gradient floor" if name.startswith("plain") else "gradient floor"
    is_attack = "floor" not in name and not name.startswith("torch")
    row += f"{100 * (seconds / timings[floor][0] - 1):>+9.0f}%" if is_attack else f"{'':>10}"
    if reference is not None:
      row += f"{reference / seconds:>15.2f}x"
    print(row)

  print("\nsuccess rate (paper's evaluation: early_stop=True, on correct inputs)")
  for name, options in ATTACKS.items():
    result = attacks.pgd(logits_fn, x, y, key=key, eps=EPS, steps=STEPS, **options)
    line = f"{name:<7}dmr {100 * float(attacks.success_rate(result, correct)):5.1f}%"
    if torch is not None:
      success = torch_pgd(twin, xt, yt, starts_for_torch[name], name, options["step_size"], True)
      with torch.no_grad():
        twin_correct = twin(xt).argmax(1).cpu().numpy() == np.asarray(y)
      rate = (success & twin_correct).sum() / max(twin_correct.sum(), 1)
      line += (f"   torch {100 * rate:5.1f}%   inputs judged differently: "
               f"{int((success != np.asarray(result.success)).sum())}")
    print(line)
  plain = {fast: attacks.pgd(plain_fn, x, y, key=key, eps=EPS, steps=STEPS, fast_convs=fast,
                             **ATTACKS["sign"]) for fast in (True, False)}
  rates = {fast: 100 * float(attacks.success_rate(r, correct)) for fast, r in plain.items()}
  print(f"sign, plain lax model: fast_convs=True {rates[True]:5.1f}%, False {rates[False]:5.1f}%;"
        f" inputs judged differently: {int((plain[True].success != plain[False].success).sum())}")
  print("\ntargets: default pgd >= 1.2x torchattacks and <= +10% over the floor; plain lax model "
        ">= 1.0x; success rates within 1 point.")


if __name__ == "__main__":
  main()
