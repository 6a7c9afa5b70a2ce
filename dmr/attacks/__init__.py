"""dmr.attacks: projected gradient attacks in pure JAX (no flax, nothing else of dmr).

  r = attacks.pgd(logits_fn, x, y, key=key, eps=0.3)            # Madry et al.'s L-inf PGD
  r = attacks.pgd(logits_fn, x, y, key=key, eps=0.3, optimizer="adam", init="paper",
                  restarts=5)                                     # the paper's attack
  attacks.success_rate(r, correct)                                # the paper's rate
  attacks.latent_pgd(decode_fn, logits_fn, z, y, key=key, eps=0.3, box=(lo, hi))

Every function works under jax.jit, jax.vmap and on sharded batches.
"""
from dmr.attacks.latent import LatentAttackResult, latent_pgd
from dmr.attacks.metrics import robust_accuracy, success_rate, worst_case_success_rate
from dmr.attacks.projected_gradient import AttackResult, pgd
from dmr.attacks.spec import AttackSpec
from dmr.attacks.projections import (clip_to_box, lp_norm, project_ball, project_l1,
                                     project_l2, project_linf, project_perturbation)

__all__ = [
    "AttackResult", "AttackSpec", "LatentAttackResult", "pgd", "latent_pgd", "success_rate",
    "worst_case_success_rate", "robust_accuracy", "lp_norm", "project_linf", "project_l2",
    "project_l1", "project_ball", "clip_to_box", "project_perturbation",
]
