"""evaluate: AutoAttack-style robust accuracy of a classifier over a dataset, re-verified.

  ev = evaluate(logits_fn, x, y, key=key, eps=0.3)       # apgd-ce, apgd-t, fab-t, square
  ev.robust_accuracy, ev.records()[i]                     # per-sample outcome
  print(ev.summary())                                     # robust accuracy and seconds per attack

The default ensemble per norm is AutoAttack's `standard` version where dmr has the attack:
  linf: APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries);
  l2:   APGD-CE, APGD-T, FAB-T (AutoAttack adds an L2 Square Attack, which dmr does not have);
  l1:   APGD-CE (5 restarts), APGD-T (5 targets) (AutoAttack adds FAB-T and Square at L1).
An attack named for a norm it does not support is rejected before any work.

Per batch, the attacks run in the given order, each only on the inputs still robust (correct
and unbroken so far). Every x_adv an attack returns is judged afresh, whatever the attack
claims: it counts only if it is finite, lies in the eps-ball around its input (exactly:
lp_norm(x_adv - x) <= eps computed in float32, as the attacks guarantee) and in the box, and a
new forward pass gives finite logits whose argmax is not the label. Claims that fail this check
are counted in `rejected`.

Two conventions, not to be mixed up:
  - worst case (this function, robust accuracy): an input counts as broken when ANY attack or
    restart breaks it; robust accuracy = share of ALL inputs correct and unbroken. It is the
    number to compare with AutoAttack and RobustBench.
  - restart-averaged success rate (the paper's, `attacks.success_rate`): over correct inputs,
    the share of (input, restart) pairs that succeed; it measures how often ONE run of an
    attack succeeds, is lower than the worst-case rate, and is what the paper reports.
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dmr.attacks import losses, projections, validation
from dmr.attacks.apgd import apgd as run_apgd
from dmr.attacks.fab import NORMS as FAB_NORMS
from dmr.attacks.fab import fab as run_fab
from dmr.attacks._execution import as_pytree_fn, inspect_model
from dmr.attacks.projected_gradient import AttackResult, LogitsFn, compute_dtype
from dmr.attacks.validation import check_model
from dmr.attacks.square import check_layout
from dmr.attacks.square import square as run_square

DEFAULT_ATTACKS = {"linf": ("apgd-ce", "apgd-t", "fab-t", "square"),
                   "l2": ("apgd-ce", "apgd-t", "fab-t"), "l1": ("apgd-ce", "apgd-t")}
SUPPORTED_NORMS = {"apgd-ce": projections.NORMS, "apgd-dlr": projections.NORMS,
                   "apgd-t": projections.NORMS, "fab-t": FAB_NORMS, "square": ("linf",)}
# AutoAttack's standard L1 runs: APGD-CE with 5 restarts, APGD-T over 5 target classes.
L1_RESTARTS, L1_TARGETS, TARGETS = 5, 5, 9
NOT_BROKEN = -1


class Evaluation(NamedTuple):
  """Per sample [N] (numpy), for inputs x [N, ...]:

  clean_correct: the clean input is classified correctly (finite logits, argmax == label).
  robust: clean_correct and no verified adversarial example found.
  broken_by: index into `attacks` of the attack whose x_adv broke it, else NOT_BROKEN (-1).
  perturbation_norm: ||x_adv - x|| in the attack norm (0 where x_adv is x).
  margin: best other logit minus the label's logit at x_adv (> 0: misclassified).
  x_adv [N, ...]: the breaking example, else the highest-margin verified-feasible point an
    attack returned, else x.
  rejected: how many attacks claimed a success on the input that failed re-verification.
  Per attack [A]:
  seconds: wall seconds spent in the attack (its runs and their re-verification), all batches.
  """
  attacks: tuple[str, ...]
  clean_correct: np.ndarray
  robust: np.ndarray
  broken_by: np.ndarray
  perturbation_norm: np.ndarray
  margin: np.ndarray
  x_adv: np.ndarray
  rejected: np.ndarray
  seconds: np.ndarray

  @property
  def clean_accuracy(self) -> float:
    return float(np.mean(self.clean_correct))

  @property
  def robust_accuracy(self) -> float:
    """Worst case over attacks: share of all inputs correct and unbroken."""
    return float(np.mean(self.robust))

  def robust_accuracy_after(self) -> np.ndarray:
    """[A]: robust accuracy once attacks 0..a have run (the last equals robust_accuracy)."""
    broken = self.broken_by[None, :]
    survived = (broken == NOT_BROKEN) | (broken > np.arange(len(self.attacks))[:, None])
    return np.mean(self.clean_correct[None, :] & survived, axis=1)

  def per_attack(self) -> list[dict]:
    """One dict per attack, in order: attack, broken (inputs it broke), robust_accuracy (after
    it), seconds."""
    return [dict(attack=a, broken=int(np.sum(self.broken_by == i)), robust_accuracy=float(r),
                 seconds=float(t))
            for i, (a, r, t) in enumerate(zip(self.attacks, self.robust_accuracy_after(),
                                              self.seconds))]

  def summary(self) -> str:
    """A table: clean accuracy, then per attack the inputs it broke, the robust accuracy after
    it and its wall seconds."""
    lines = [f"clean accuracy {100 * self.clean_accuracy:.2f}%"]
    lines += [f"after {p['attack']:<9} robust accuracy {100 * p['robust_accuracy']:6.2f}%  "
              f"broken {p['broken']:5d}  {p['seconds']:8.1f} s" for p in self.per_attack()]
    return "\n".join(lines)

  def records(self) -> list[dict]:
    """One dict per sample: clean_correct, robust, broken_by (attack name or None),
    perturbation_norm, margin, rejected."""
    return [dict(clean_correct=bool(c), robust=bool(r),
                 broken_by=None if b == NOT_BROKEN else self.attacks[b],
                 perturbation_norm=float(p), margin=float(m), rejected=int(j))
            for c, r, b, p, m, j in zip(self.clean_correct, self.robust, self.broken_by,
                                        self.perturbation_norm, self.margin, self.rejected)]


def _named_attacks(norm: str, steps: int, square_queries: int, classes: int,
                   layout: str) -> dict:
  """name -> attack(logits_fn, x, y, *, key, eps, norm, bounds) -> AttackResult, for a model
  with `classes` classes (AutoAttack's standard settings for `norm`)."""
  targets = min(L1_TARGETS if norm == "l1" else TARGETS, classes - 1)

  def apgd(loss):
    restarts = L1_RESTARTS if norm == "l1" and loss == "ce" else 1
    def run(logits_fn, x, y, *, key, eps, norm, bounds):
      return run_apgd(logits_fn, x, y, key=key, eps=eps, norm=norm, loss=loss, steps=steps,
                      restarts=restarts, target_classes=targets, bounds=bounds, host_loop=True)
    return run

  def fab_t(logits_fn, x, y, *, key, eps, norm, bounds):
    return run_fab(logits_fn, x, y, key=key, eps=eps, norm=norm, steps=steps,
                   target_classes=min(TARGETS, classes - 1), bounds=bounds, host_loop=True)

  def square(logits_fn, x, y, *, key, eps, norm, bounds):
    del norm
    return run_square(logits_fn, x, y, key=key, eps=eps, queries=square_queries, bounds=bounds,
                      host_loop=True, layout=layout)

  return {"apgd-ce": apgd("ce"), "apgd-dlr": apgd("dlr"), "apgd-t": apgd("dlr-targeted"),
          "fab-t": fab_t, "square": square}


def check_attack_names(attacks, norm: str) -> None:
  """Every named attack exists and supports `norm`."""
  for a in attacks:
    if not isinstance(a, str):
      continue
    validation.check_choice("attack", a, SUPPORTED_NORMS)
    if norm not in SUPPORTED_NORMS[a]:
      raise ValueError(f"attack {a!r} supports norm {' or '.join(SUPPORTED_NORMS[a])}, not "
                       f"{norm!r}; for norm={norm!r} use attacks from {DEFAULT_ATTACKS[norm]}.")


@jax.jit
def _clean(logits_fn, x, y):
  """(correct [N], margin [N]) of the clean inputs."""
  logits = logits_fn(x).astype(jnp.float32)
  return losses.is_success(logits, y, True), losses.margin(logits, y)


def _verify(logits_fn, x, y, x_adv, eps, bounds, norm: str):
  """(adversarial [N], feasible [N], margin [N], distance [N]) of candidates x_adv [N, ...]:
  feasible = finite, inside the ball (lp_norm(x_adv - x) <= eps in float32, no slack) and the
  box; adversarial = feasible and a fresh forward pass gives finite logits that misclassify."""
  wide = compute_dtype(x.dtype)
  distance = projections.lp_norm(x_adv.astype(wide) - x.astype(wide), norm)
  feasible = jnp.all(jnp.isfinite(x_adv).reshape((x.shape[0], -1)), axis=1)
  feasible &= distance <= eps
  if bounds is not None:
    lo, hi = bounds
    inside = (x_adv >= lo) & (x_adv <= hi)
    feasible &= jnp.all(inside.reshape((x.shape[0], -1)), axis=1)
  logits = logits_fn(jnp.where(jnp.isfinite(x_adv), x_adv, x)).astype(jnp.float32)
  finite = jnp.all(jnp.isfinite(logits), axis=1)
  margin = jnp.where(finite, losses.margin(logits, y), -jnp.inf)
  return feasible & losses.is_success(logits, y, False), feasible, margin, distance


_verify_jit = jax.jit(_verify, static_argnames="norm")


def _bucket(count: int, batch_size: int) -> int:
  """Padded size for `count` rows: the smallest of batch_size / 1, 2, 4, 8 holding them (few
  shapes, so few compilations)."""
  sizes = [max(batch_size // 2**k, 1) for k in range(4)]
  return min(size for size in sizes if size >= count)


def _check(logits_fn, x, y, key, eps, norm, attacks, batch_size, bounds, layout) -> int:
  """All checks of `evaluate`, before any attack; returns the model's number of classes."""
  validation.check_choice("norm", norm, projections.NORMS)
  validation.check_count("batch_size", batch_size)
  validation.check_problem(key, eps, x, y, bounds)
  if not attacks:
    raise ValueError("attacks is empty; name at least one, e.g. ('apgd-ce', 'apgd-t').")
  check_attack_names(attacks, norm)
  if "square" in attacks:
    check_layout(np.shape(x), layout)
  model = inspect_model(logits_fn, x[:1])
  check_model(model, x[:1], y[:1], None, False)
  validation.check_label_values(y, model.logits.shape[1])
  return model.logits.shape[1]


def evaluate(logits_fn: LogitsFn, x: np.ndarray | jax.Array, y: np.ndarray | jax.Array, *,
             key: jax.Array, eps: float, norm: str = "linf",
             attacks: Sequence[str | Callable[..., AttackResult]] | None = None,
             batch_size: int = 500, bounds: projections.Bounds = (0.0, 1.0), steps: int = 100,
             square_queries: int = 5000, layout: str = "NHWC") -> Evaluation:
  """Worst-case robust accuracy of logits_fn on (x, y) under an ensemble of attacks.

  Args:
    logits_fn: pure function, inputs [N, ...] -> logits [N, K], rows independent.
    x: inputs [N, ...] (numpy or jax), floating (float32, bfloat16, float16, float64), finite,
      inside `bounds`.
    y: int labels [N] in [0, K).
    key: jax.random key; attack a on batch b uses fold_in(key, b * len(attacks) + a).
    eps: radius of the `norm` ball.
    norm: "linf" | "l2" | "l1".
    attacks: run in order, each on the inputs still robust; None: DEFAULT_ATTACKS[norm].
      Names: "apgd-ce", "apgd-dlr", "apgd-t" (targeted DLR over min(9, K - 1) classes; 5 at
      l1), "fab-t" (targeted FAB over min(9, K - 1) classes; linf, l2), "square" (linf); or
      callables attack(logits_fn, x, y, *, key, eps, norm, bounds) -> AttackResult.
    batch_size: inputs per batch; the still-robust inputs of a batch are padded to one of
      batch_size / 1, 2, 4, 8 rows.
    bounds: (lo, hi) box of valid inputs, or None.
    steps: APGD iterations per run (AutoAttack: 100).
    square_queries: Square Attack queries (AutoAttack: 5000).
    layout: "NHWC" | "NCHW": the image layout of x, for Square (see `square`).
    APGD, FAB and Square run with host_loop=True (see `apgd`): evaluate is a Python loop.

  Returns:
    Evaluation with per-sample arrays, robust_accuracy and clean_accuracy, and per attack the
    robust accuracy after it and its seconds (per_attack(), summary()).
  """
  x, y = np.asarray(x), np.asarray(y)
  attacks = DEFAULT_ATTACKS.get(norm, ()) if attacks is None else tuple(attacks)
  classes = _check(logits_fn, x, y, key, eps, norm, attacks, batch_size, bounds, layout)
  named = _named_attacks(norm, steps, square_queries, classes, layout)
  names = tuple(a if isinstance(a, str) else getattr(a, "__name__", repr(a)) for a in attacks)
  runs = [named[a] if isinstance(a, str) else a for a in attacks]
  fn = as_pytree_fn(logits_fn)
  n = x.shape[0]
  clean_correct, robust = np.zeros(n, bool), np.zeros(n, bool)
  broken_by = np.full(n, NOT_BROKEN, np.int32)
  distance, margin = np.zeros(n, np.float32), np.zeros(n, np.float32)
  x_adv, rejected = x.copy(), np.zeros(n, np.int32)
  seconds = np.zeros(len(runs))
  for b, first in enumerate(range(0, n, batch_size)):
    rows = np.arange(first, min(first + batch_size, n))
    correct, clean_margin = (np.asarray(v) for v in _clean(fn, x[rows], y[rows]))
    clean_correct[rows], robust[rows], margin[rows] = correct, correct, clean_margin
    for a, run in enumerate(runs):
      todo = rows[robust[rows]]
      if todo.size == 0:
        break
      started = time.perf_counter()
      padded = np.resize(todo, _bucket(todo.size, batch_size))
      result: AttackResult = run(fn, x[padded], y[padded],
                                 key=jax.random.fold_in(key, b * len(runs) + a), eps=eps,
                                 norm=norm, bounds=bounds)
      candidate = np.asarray(result.x_adv)[:todo.size]
      claimed = np.asarray(result.success)[:todo.size]
      adversarial, feasible, new_margin, new_distance = (np.asarray(v) for v in _verify_jit(
          fn, x[todo], y[todo], candidate, eps, bounds, norm=norm))
      rejected[todo] += claimed & ~adversarial
      keep = adversarial | (feasible & (new_margin > margin[todo]))
      kept = todo[keep]
      x_adv[kept], margin[kept], distance[kept] = (candidate[keep], new_margin[keep],
                                                   new_distance[keep])
      broken = todo[adversarial]
      robust[broken], broken_by[broken] = False, a
      seconds[a] += time.perf_counter() - started
  return Evaluation(names, clean_correct, robust, broken_by, distance, margin, x_adv, rejected,
                    seconds)
