"""Mutations of the training variants, the attacks stage and claim 1's measure."""
from mutations import Mutation

MUTATIONS = [
    Mutation("off_adv_trains_clean", "off_adv trains on the clean images",
             "dmr/train/variants.py",
             "    return attacks.pgd(logits_fn, x, y, key=key, bounds=(0.0, 1.0), **spec.options()).x_adv",
             "    return x", ("tests/test_variants.py",)),
    Mutation("training_attack_cannot_reach_ball", "the training attack's reach is not validated",
             "dmr/config.py", "  _validate_training_reach(c.adversarial_training)\n", "",
             ("tests/test_variants.py",)),
    Mutation("safe_half_removed", "on_adv_learned attacks codes outside the prior as they are",
             "dmr/manifolds/learned.py",
             "  return jnp.where(within_prior(mu)[:, None], mu, drawn)", "  return mu",
             ("tests/test_variants.py",)),
    Mutation("misclassified_counted_correct", "misclassified inputs count as correct in the "
             "off-manifold rate", "dmr/robustness.py",
             "  correct = predict(logits_fn, x, batch_size, mesh) == y\n",
             "  correct = np.ones(len(y), bool)\n", ("tests/test_robustness.py",)),
    Mutation("successes_not_verified", "successes are counted without re-verification",
             "dmr/robustness.py", "success & ok[:, None], int(", "success, int(",
             ("tests/test_robustness.py",)),
    Mutation("claim1_share_sign_flipped", "the claim-1 share changes sign",
             "dmr/distances.py", "return float(np.sum(leaving_sq)) / total",
             "return -float(np.sum(leaving_sq)) / total", ("tests/test_distances.py",)),
    Mutation("claim1_biased_share", "the claim-1 share from d(x_adv)^2 - d(x)^2 again",
             "dmr/distances.py", "np.sum((r_adv - r)**2, axis=1)",
             "np.sum(r_adv**2, axis=1) - np.sum(r**2, axis=1)", ("tests/test_distances.py",)),
    Mutation("on_outcome_rows_misplaced", "on-manifold outcomes land on the wrong test rows",
             "dmr/experiments.py", "  correct[where] = outcome.correct\n",
             "  correct[:len(where)] = outcome.correct\n", ("tests/test_robustness.py",)),
]
