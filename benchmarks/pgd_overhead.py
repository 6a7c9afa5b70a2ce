"""Where dmr's `pgd` spends its time beyond the gradient floor, on the paper's conv classifier.

  python benchmarks/pgd_overhead.py [--cores N] [--repeats 7] [--batch 100] [--train-steps 200]

The attack's time is split into a per-step cost (the slope between 40 and 80 steps) and a
fixed cost (what remains at 40 steps), each against one jitted input gradient and one forward
pass of the same model and batch. Beside it, the smallest loop doing a sign attack's work (carry
the perturbation, clip x + delta, take the gradient there, step by its sign, clip to the ball)
rolled (lax.fori_loop) and unrolled: the floor an attack loop can reach in each form. Every
contender is dmr's jitted `attack` (no validation or model inspection on the host), L-inf eps
0.3, sign steps of 2.5 eps / 40, one restart, every step run (early_stop=False). Without --cores
the script runs at 1 core and at all cores (benchmarks/pinning.py).
"""
from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(1, str(pathlib.Path(__file__).resolve().parents[1]))
import pinning  # noqa: E402

CORES = pinning.pin_from_argv()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import attacks as attack_benchmark  # noqa: E402
from dmr.attacks import _execution, projected_gradient  # noqa: E402
from dmr.models.classifiers import ConvClassifier  # noqa: E402

EPS, STEP = 0.3, 2.5 * 0.3 / 40


def dmr_attack(logits_fn, x, y, steps: int, unroll: bool):
  """run() of dmr's jitted attack for `steps` sign steps."""
  jitted = jax.jit(projected_gradient.attack, static_argnames=("spec", "execution"))
  spec = projected_gradient.StaticOptions(steps=steps, early_stop=False)
  execution = _execution.Execution(unroll=unroll, fast_convs=False)
  key = jax.random.key(0)
  return lambda: jitted(logits_fn, x, y, key, EPS, STEP, (0.0, 1.0), spec=spec,
                        execution=execution).x_adv.block_until_ready()


def minimal_loop(logits_fn, x, y, unroll: bool):
  """run() of the least work a 40-step sign attack does, as one jitted loop."""
  def loss(images):
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(images), y).sum()

  def attack(x):  # x an argument: a loop of constants would be folded at compile time
    def step(_, delta):
      grad = jax.grad(loss)(jnp.clip(x + delta, 0.0, 1.0))
      return jnp.clip(delta + STEP * jnp.sign(grad), -EPS, EPS)

    return jax.lax.fori_loop(0, 40, step, jnp.zeros_like(x), unroll=unroll)

  run = jax.jit(attack)
  return lambda: run(x).block_until_ready()


def main():
  parser = pinning.parser(__doc__)
  parser.add_argument("--train-steps", type=int, default=200, help="Adam steps of batch 100")
  parser.set_defaults(repeats=7)
  args = parser.parse_args()
  print(pinning.describe(CORES))
  x_train, y_train, x_test, y_test, source = attack_benchmark.load_data()
  model = ConvClassifier(num_classes=10)
  variables = attack_benchmark.train(model, jnp.asarray(x_train), jnp.asarray(y_train),
                                     args.train_steps)
  x, y = jnp.asarray(x_test[:args.batch]), jnp.asarray(y_test[:args.batch])
  logits_fn = jax.tree_util.Partial(lambda v, images: model.apply(v, images, train=False),
                                    variables)
  grad_fn = jax.jit(jax.grad(lambda images: optax.softmax_cross_entropy_with_integer_labels(
      logits_fn(images), y).sum()))
  forward = jax.jit(logits_fn)
  contenders = {f"dmr attack, {form}, {steps} steps": dmr_attack(logits_fn, x, y, steps, unroll)
                for form, unroll in (("rolled", False), ("unrolled", True)) for steps in (40, 80)}
  contenders.update({
      "minimal loop, rolled, 40 steps": minimal_loop(logits_fn, x, y, False),
      "minimal loop, unrolled, 40 steps": minimal_loop(logits_fn, x, y, True),
      "one input gradient": lambda: grad_fn(x).block_until_ready(),
      "one forward pass": lambda: forward(x).block_until_ready()})
  timings = pinning.interleaved_timings(contenders, args.repeats)
  seconds = {name: t[0] for name, t in timings.items()}
  print(f"\ndata: {source}; batch {args.batch}; median of {args.repeats} interleaved rounds")
  for name, (wall, _, utilization) in timings.items():
    print(f"{name:<36}{1000 * wall:9.2f} ms  cpu/wall {utilization:.2f}")
  grad, fwd = seconds["one input gradient"], seconds["one forward pass"]
  print(f"\n{'loop':<12}{'per step':>10}{'vs gradient':>13}{'fixed':>10}{'in forwards':>13}"
        f"{'40 steps vs 40 gradients':>27}")
  for form in ("rolled", "unrolled"):
    t40, t80 = (seconds[f"dmr attack, {form}, {s} steps"] for s in (40, 80))
    per_step, minimal = (t80 - t40) / 40, seconds[f"minimal loop, {form}, 40 steps"]
    fixed = t40 - 40 * per_step
    print(f"{form:<12}{1000 * per_step:>8.2f}ms{100 * (per_step / grad - 1):>+12.0f}%"
          f"{1000 * fixed:>8.1f}ms{fixed / fwd:>12.1f}x{100 * (t40 / (40 * grad) - 1):>+26.0f}%")
    print(f"{'  minimal':<12}{1000 * minimal / 40:>8.2f}ms{100 * (minimal / (40 * grad) - 1):>+12.0f}%")


if __name__ == "__main__":
  main()
