"""dmr.attacks: projected gradient attacks in pure JAX (needs only jax, optax and numpy).

  r = attacks.pgd(logits_fn, x, y, key=key, eps=0.3)            # Madry et al.'s L-inf PGD
  r = attacks.pgd(logits_fn, x, y, key=key, eps=0.3, optimizer="adam", init="paper",
                  restarts=5)                                     # the paper's attack
  attacks.success_rate(r, correct)          # the paper's rate, averaged over restarts
  attacks.worst_case_success_rate(r, correct)   # an input counts when its x_adv fools
  r = attacks.apgd(logits_fn, x, y, key=key, eps=0.3, loss="dlr-targeted")   # APGD-T
  r = attacks.square(logits_fn, x, y, key=key, eps=0.3)   # gradient-free: a masking check
  ev = attacks.evaluate(logits_fn, x, y, key=key, eps=0.3)   # AutoAttack-style, re-verified
  ev.robust_accuracy                        # worst case over the ensemble, per input
  # On-manifold: codes z [B, d] of a decoder (or transformation parameters of a renderer),
  # inside an eps-ball around z and a per-dimension box:
  attacks.latent_pgd(decode_fn, logits_fn, z, y, key=key, eps=0.3, box=(lo, hi))
  attacks.latent_apgd(decode_fn, logits_fn, z, y, key=key, eps=0.3, box=(lo, hi))   # APGD

A model is a traced argument: jax.tree_util.Partial(apply, params), or from_linen / from_nnx /
from_equinox, reuse one compilation across new params; any other callable compiles per call.
Every attack works under jax.jit, jax.vmap and on sharded batches; evaluate runs eagerly.
Every x_adv (z_adv) is exact in the input dtype (inside the ball and the box) and counts as a
success only when a fresh forward pass of it gives finite, fooled logits.

Each attack's own options come first; the last few say only how it runs (unroll, fast_convs,
host_loop, max_rows: loop form, conv forms on CPU, memory), never what it returns, and their
defaults ("auto") suit CPU, GPU and TPU.
"""
from dmr.attacks.adapters import from_equinox, from_linen, from_nnx
from dmr.attacks.apgd import apgd
from dmr.attacks.evaluate import Evaluation, evaluate
from dmr.attacks.latent import LatentAttackResult, latent_apgd, latent_pgd
from dmr.attacks.losses import fools
from dmr.attacks.metrics import robust_accuracy, success_rate, worst_case_success_rate
from dmr.attacks.projected_gradient import AttackResult, pgd
from dmr.attacks.spec import AttackSpec
from dmr.attacks.square import square
from dmr.attacks.projections import (clip_to_box, lp_norm, project_ball, project_l1,
                                     project_l2, project_linf, project_perturbation)

__all__ = [
    "AttackResult", "AttackSpec", "LatentAttackResult", "pgd", "latent_pgd", "success_rate",
    "worst_case_success_rate", "robust_accuracy", "fools", "from_linen", "from_nnx",
    "from_equinox", "lp_norm", "project_linf", "project_l2", "project_l1", "project_ball",
    "clip_to_box", "project_perturbation", "apgd", "latent_apgd", "square", "evaluate",
    "Evaluation",
]
