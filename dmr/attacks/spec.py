"""AttackSpec: every option of an attack except its inputs, as one hashable value.

  spec = attacks.AttackSpec(eps=0.3, optimizer="adam", init="paper", restarts=5)
  r = attacks.pgd(logits_fn, x, y, key=key, **spec.options())

Frozen and hashable, so a spec can be a `jax.jit` static argument and a config section maps
onto exactly one spec.
"""
from __future__ import annotations

import dataclasses

from dmr.attacks.projected_gradient import StaticOptions


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttackSpec(StaticOptions):
  """Options of `pgd` / `latent_pgd` (see `pgd` for the meaning of each), keyword-only: the
  algorithm's compile-time ones (StaticOptions), how it runs (unroll, max_rows, fast_convs),
  and the radius and step size, which the attacks take as traced values. On CPU, for models
  whose input gradient convolves, fast_convs "auto" computes the convs in dmr's forms and
  unroll "auto" unrolls the step loop if convs remain; max_rows None runs all restarts at once."""
  unroll: bool | str = "auto"
  max_rows: int | None = None
  fast_convs: bool | str = "auto"
  eps: float
  step_size: float | None = None

  def replace(self, **changes) -> "AttackSpec":
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)

  def options(self) -> dict[str, object]:
    """The spec as keyword arguments of `pgd` / `latent_pgd`."""
    return dataclasses.asdict(self)
