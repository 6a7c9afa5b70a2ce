"""Training throughput of dmr's jitted steps against PyTorch twins, side by side at equal cores.

  python benchmarks/train_throughput.py [--cores N] [--repeats 5] [--steps 50] [--vaegan-steps 2]
                                        [--only classifier|vaegan]

Two steps, each against a PyTorch twin doing the same work:
- the paper's conv classifier (Fashion-MNIST, batch 100, Adam 0.5/0.9, coupled L2 1e-4,
  per-batch exponential decay): dmr.train.steps.make_train_step vs benchmarks/torch_twin.py;
- the VAE-GAN at paper width (64 channels, latent 10, beta 2.75, gamma 1, lr 0.005, batch 100):
  dmr.train.vaegan.make_train_step vs torch_twin.TorchVAEGAN with the same losses.
dmr's steps are jitted with the state donated, as dmr.train.loop runs them; torch runs eager with
its default Adam. Without --cores the script runs once at 1 core and once at all cores (see
benchmarks/pinning.py). Each run times `repeats` interleaved rounds after a warm-up and reports
median images/s, cpu/wall and the ratio dmr / torch of median wall times.

Each step's floating-point work is XLA's count for dmr's compiled step (the torch twin computes
the same sums), printed as GFLOP/s beside the ceiling: one large matrix product
(MATMUL_SIZE^3) in XLA and in torch on the same cores. A step's GFLOP/s cannot exceed that
ceiling by much, which bounds the ratio any implementation can reach against torch.
"""
from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))
import pinning  # noqa: E402

CORES = pinning.pin_from_argv()

import contextlib  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import candidates  # noqa: E402
from dmr.models import classifiers, vaegan as vaegan_models  # noqa: E402
from dmr.train import optim, steps, vaegan as vaegan_training  # noqa: E402

try:
  import torch  # noqa: E402
  import torch_twin  # noqa: E402
except ImportError as error:  # torch is an optional extra: pip install -e .[bench]
  torch, torch_twin, TORCH_ERROR = None, None, error

IMAGE_SHAPE = (28, 28, 1)
BATCHES = 20  # Distinct batches cycled through (random images: speed does not depend on them).
VAEGAN = dict(beta=2.75, gamma=1.0, learning_rate=0.005, decay=0.9)
MATMUL_SIZE = 2048


def parse_args():
  parser = pinning.parser(__doc__)
  parser.add_argument("--steps", type=int, default=50, help="classifier steps per timed round")
  parser.add_argument("--vaegan-steps", type=int, default=2, help="VAE-GAN steps per round")
  parser.add_argument("--only", choices=("classifier", "vaegan"))
  return parser.parse_args()


def random_batches(batch: int):
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(BATCHES * batch,) + IMAGE_SHAPE).astype(np.float32)
  y = rng.integers(0, 10, BATCHES * batch).astype(np.int32)
  return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(BATCHES)]


def jax_runner(step, state, batches, steps_per_run: int, tracing=contextlib.nullcontext):
  """run() doing `steps_per_run` steps of jit(step, donate state) on device-resident batches;
  the step is traced and compiled (one step) inside the context `tracing()`. `state` is copied
  (the step donates its state). run.flops: XLA's floating-point operations per run()."""
  state = jax.tree.map(jnp.copy, state)
  batches = [(jnp.asarray(x), jnp.asarray(y), jnp.ones(len(x))) for x, y in batches]
  with tracing():
    step = jax.jit(step, donate_argnums=(0,)).lower(state, *batches[0], jax.random.key(0))
    step = step.compile()
  state, _ = step(state, *batches[0], jax.random.key(0))
  holder = {"state": state, "step": 1}

  def run():
    state = holder["state"]
    for _ in range(steps_per_run):
      x, y, weight = batches[holder["step"] % len(batches)]
      state, metrics = step(state, x, y, weight, jax.random.key(holder["step"]))
      holder["step"] += 1
    jax.block_until_ready(metrics["loss"])
    holder["state"] = state

  run.flops = step.cost_analysis()["flops"] * steps_per_run
  return run


def torch_runner(net, loss_fn, optimizer, schedule, batches, steps_per_run: int):
  """run() doing `steps_per_run` eager steps of loss_fn(net, x, y) on device-resident batches."""
  device = pinning.torch_device(torch)
  net.to(device).train()
  batches = [(torch_twin.to_torch_images(x).to(device), torch.from_numpy(y).long().to(device))
             for x, y in batches]
  holder = {"step": 0}

  def run():
    for _ in range(steps_per_run):
      x, y = batches[holder["step"] % len(batches)]
      optimizer.zero_grad(set_to_none=True)
      loss_fn(net, x, y).backward()
      optimizer.step()
      schedule.step()
      holder["step"] += 1
    if device == "cuda":
      torch.cuda.synchronize()

  return run


def torch_adam(net, learning_rate: float, decay: float, steps_per_epoch: int):
  """PyTorch's Adam (0.5, 0.9, coupled L2 1e-4) with dmr's per-batch exponential decay."""
  optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate, betas=(0.5, 0.9),
                               weight_decay=1e-4)
  schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                               lambda t: decay**(t / steps_per_epoch))
  return optimizer, schedule


def classifier_contenders(batches, steps_per_run: int) -> dict:
  model = classifiers.make_classifier("conv", 10)
  tx = optim.paper_adam(0.01, 0.95, steps_per_epoch=600)
  state = steps.init_state(model, tx, jax.random.key(0), IMAGE_SHAPE)
  runner = lambda model, **kw: jax_runner(steps.make_train_step(model, tx), state, batches,
                                          steps_per_run, **kw)
  contenders = {"dmr": runner(model)}
  if torch is not None:
    net = torch_twin.TorchConvClassifier(IMAGE_SHAPE, 10)
    cross_entropy = torch.nn.CrossEntropyLoss()
    contenders["torch"] = torch_runner(net, lambda net, x, y: cross_entropy(net(x), y),
                                       *torch_adam(net, 0.01, 0.95, 600), batches, steps_per_run)
  contenders["candidate: GEMM kernel gradients"] = runner(
      model, tracing=candidates.gemm_kernel_gradients)
  contenders["candidate: BatchNorm without mask"] = runner(candidates.ignore_mask(model))
  return contenders


def vaegan_contenders(batches, steps_per_run: int) -> dict:
  nets = vaegan_models.make_vaegan(IMAGE_SHAPE)
  tx = optim.paper_adam(VAEGAN["learning_rate"], VAEGAN["decay"], steps_per_epoch=600)
  state = vaegan_training.init_state(nets, tx, jax.random.key(0), IMAGE_SHAPE)
  runner = lambda nets, **kw: jax_runner(
      vaegan_training.make_train_step(nets, tx, VAEGAN["beta"], VAEGAN["gamma"]), state,
      batches, steps_per_run, **kw)
  contenders = {"dmr": runner(nets)}
  if torch is not None:
    net = torch_twin.TorchVAEGAN(IMAGE_SHAPE)
    loss = lambda net, x, y: torch_twin.vaegan_loss(net, x, VAEGAN["beta"], VAEGAN["gamma"])
    contenders["torch"] = torch_runner(
        net, loss, *torch_adam(net, VAEGAN["learning_rate"], VAEGAN["decay"], 600), batches,
        steps_per_run)
  contenders["candidate: GEMM kernel gradients"] = runner(
      nets, tracing=candidates.gemm_kernel_gradients)
  return contenders


def matmul_contenders() -> dict:
  """One MATMUL_SIZE^3 float32 matrix product in XLA and in torch: the ceiling of GFLOP/s."""
  rng = np.random.default_rng(0)
  a, b = (rng.uniform(size=(MATMUL_SIZE, MATMUL_SIZE)).astype(np.float32) for _ in range(2))
  product = jax.jit(jnp.dot)
  ja, jb = jnp.asarray(a), jnp.asarray(b)
  contenders = {"XLA": lambda: product(ja, jb).block_until_ready()}
  if torch is not None:
    device = pinning.torch_device(torch)
    ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
    contenders["torch"] = lambda: (torch.mm(ta, tb), device == "cuda" and torch.cuda.synchronize())
  return contenders


def report(title: str, timings: dict, images: int, flops: float) -> None:
  print(f"\n{title}: {images} images, {flops / 1e9:.1f} GFLOP per round")
  for name, (wall, cpu, utilization) in timings.items():
    print(f"  {name:<34}{images / wall:>9.1f} images/s{flops / wall / 1e9:>8.1f} GFLOP/s   "
          f"cpu/wall {utilization:4.2f}")
  if "torch" in timings:
    for name, (wall, _, _) in timings.items():
      if name != "torch":
        print(f"  ratio {name} / torch: {timings['torch'][0] / wall:.2f}x")


def main():
  args = parse_args()
  if torch is not None:
    pinning.size_torch_pools(torch, CORES)
  print(pinning.describe(CORES, torch))
  if torch is None:
    print(f"PyTorch is missing ({TORCH_ERROR}); `pip install -e .[bench]` adds the torch twins.")
  batches = random_batches(args.batch)
  ceiling = pinning.interleaved_timings(matmul_contenders(), args.repeats)
  print(f"\nceiling: one {MATMUL_SIZE}^3 float32 matrix product: " + ", ".join(
      f"{name} {2 * MATMUL_SIZE**3 / wall / 1e9:.1f} GFLOP/s (cpu/wall {utilization:4.2f})"
      for name, (wall, _, utilization) in ceiling.items()))
  groups = {"classifier": ("paper conv classifier train step", classifier_contenders, args.steps),
            "vaegan": ("VAE-GAN train step, paper width", vaegan_contenders, args.vaegan_steps)}
  for name, (title, contenders, steps_per_run) in groups.items():
    if args.only in (None, name):
      runs = contenders(batches, steps_per_run)
      timings = pinning.interleaved_timings(runs, args.repeats)
      report(f"{title}, batch {args.batch}, median of {args.repeats} interleaved rounds",
             timings, steps_per_run * args.batch, runs["dmr"].flops)


if __name__ == "__main__":
  main()
