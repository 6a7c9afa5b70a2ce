"""AttackSpec: every option of an attack except its inputs, as one hashable value.

  spec = attacks.AttackSpec(eps=0.3, optimizer="adam", init="paper", restarts=5)
  r = attacks.pgd(logits_fn, x, y, key=key, **spec.options())

Frozen and hashable, so a spec can be a `jax.jit` static argument and a config section maps
onto exactly one spec.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class AttackSpec:
  """Options of `pgd` / `latent_pgd` (see `pgd` for the meaning of each); unroll "auto"
  unrolls the step loop for conv models on CPU, max_rows None runs all restarts at once."""
  eps: float
  norm: str = "linf"
  steps: int = 40
  step_size: float | None = None
  optimizer: str = "sign"
  restarts: int = 1
  init: str = "uniform"
  loss: str = "ce"
  targeted: bool = False
  early_stop: bool = True
  unroll: bool | str = "auto"
  max_rows: int | None = None

  def replace(self, **changes) -> "AttackSpec":
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)

  def options(self) -> dict[str, object]:
    """The spec as keyword arguments of `pgd` / `latent_pgd`."""
    return dataclasses.asdict(self)
