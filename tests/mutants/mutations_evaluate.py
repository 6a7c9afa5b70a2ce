"""Semantic mutations of FAB-T, evaluate's per-norm ensembles and Square's layout check, and the
tests that must catch each one."""
from __future__ import annotations

from mutations import Mutation

FAB_TESTS = ("tests/attacks/test_fab.py",)

MUTATIONS = [
    Mutation("fab_boundary_step_ignores_box", "FAB's step onto the linearised boundary ignores "
             "the box", "dmr/attacks/fab.py",
             "  room = jnp.where(toward > 0, hi - t, t - lo)\n",
             "  room = jnp.full(t.shape, jnp.inf, t.dtype)\n", FAB_TESTS),
    Mutation("fab_no_backward_step", "FAB stays at a fooling iterate instead of moving back "
             "towards x by beta", "dmr/attacks/fab.py",
             "point = jnp.where(projections.per_row(fooled, x), back, moved)",
             "point = moved", FAB_TESTS),
    Mutation("fab_no_bias_to_x", "FAB never mixes in the step from x (alpha = 0)",
             "dmr/attacks/fab.py",
             "alpha = jnp.clip(size_point / (size_point + size_x), 0.0, spec.alpha_max)",
             "alpha = 0.0 * size_point", FAB_TESTS),
    Mutation("fab_only_runner_up", "FAB-T attacks the runner-up class in every target run",
             "dmr/attacks/fab.py", "target = targets[run // spec.restarts]",
             "target = targets[0]", FAB_TESTS),
    Mutation("fab_unverified_success", "FAB reports the distance search's success without a "
             "fresh forward pass of the returned x_adv", "dmr/attacks/fab.py",
             "  success = losses.fools(logits_fn, x_adv, y)\n  return FABResult(",
             "  success = s.distance < jnp.inf\n  return FABResult(", FAB_TESTS),
    Mutation("evaluate_l2_without_fab", "evaluate's default L2 ensemble leaves FAB-T out",
             "dmr/attacks/evaluate.py", '"l2": ("apgd-ce", "apgd-t", "fab-t")',
             '"l2": ("apgd-ce", "apgd-t")', ("tests/attacks/test_evaluate.py",)),
    Mutation("evaluate_seconds_not_per_attack", "evaluate books every attack's seconds on the "
             "first", "dmr/attacks/evaluate.py",
             "seconds[a] += time.perf_counter() - started",
             "seconds[0] += time.perf_counter() - started", ("tests/attacks/test_evaluate.py",)),
    Mutation("square_guesses_layout", "square takes a channels-first batch as NHWC in silence",
             "dmr/attacks/square.py", "  if channels > min(height, width):\n",
             "  if False:\n", ("tests/attacks/test_square.py",)),
]
