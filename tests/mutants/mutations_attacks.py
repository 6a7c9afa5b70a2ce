"""Semantic mutations of dmr.attacks (APGD, Square, evaluate, the guarantees every attack keeps)
and the tests that must catch each one."""
from __future__ import annotations

from mutations import Mutation

APGD_TESTS = ("tests/attacks/test_apgd.py",)

MUTATIONS = [
    Mutation("apgd_no_step_halving", "APGD keeps its step size at every checkpoint",
             "dmr/attacks/apgd.py", "step=jnp.where(halve, s.step / 2.0, s.step)",
             "step=s.step", APGD_TESTS),
    Mutation("apgd_auto_unrolls", "apgd unroll='auto' unrolls conv models on CPU (minutes to "
             "compile) instead of the host loop", "dmr/attacks/_execution.py",
             'return "host" if eager and unroll_pays else "rolled"',
             'return "unrolled" if unroll_pays else "rolled"', APGD_TESTS),
    Mutation("apgd_output_rounded_past_eps", "APGD iterates clipped and cast, not made exactly "
             "feasible in the input dtype", "dmr/attacks/apgd.py",
             "return projections.feasible_point(x, delta, eps, norm, bounds, dtype)",
             "return projections.clip_to_box(x + delta, bounds).astype(dtype).astype(x.dtype)",
             APGD_TESTS),
    Mutation("square_output_rounded_past_eps", "Square points clipped and cast, not made "
             "exactly feasible in the input dtype", "dmr/attacks/square.py",
             "return projections.feasible_point(x, projections.project_linf(delta, eps), eps, "
             "\"linf\",\n                                    bounds, spec.dtype)",
             "return projections.clip_to_box(x + projections.project_linf(delta, eps), "
             "bounds).astype(spec.dtype).astype(x.dtype)", ("tests/attacks/test_square.py",)),
    Mutation("feasible_point_no_retry", "a row whose rounded point overshoots eps falls back to "
             "x without the shrunk retries", "dmr/attacks/projections.py",
             "  for shrink in shrinks:", "  for shrink in (0.0,):",
             ("tests/attacks/test_projections.py",)),
    Mutation("linf_feasible_no_retry", "an L-inf coordinate whose rounded value overshoots eps "
             "falls back to x without the shrunk retries", "dmr/attacks/projections.py",
             "    for shrink in reversed(shrinks):", "    for shrink in (0.0,):",
             ("tests/attacks/test_projections.py",)),
    Mutation("linf_feasible_per_row", "L-inf feasibility retries whole rows",
             "dmr/attacks/projections.py", '  if norm == "linf":\n    point = x\n',
             '  if False:\n    point = x\n', ("tests/attacks/test_projections.py",)),
    Mutation("success_on_nan_logits", "a row with NaN logits counts as a success when its "
             "argmax differs from the label", "dmr/attacks/losses.py",
             "valid = jnp.all(jnp.isfinite(logits), axis=1) & (labels >= 0)",
             "valid = (labels >= 0)",
             ("tests/attacks/test_apgd.py", "tests/attacks/test_square.py",
              "tests/attacks/test_guarantees.py")),
    Mutation("stale_weights_reused", "a Partial over a bound method of a model holding params "
             "is compiled once and reused with the weights of the first call",
             "dmr/attacks/_execution.py", "    owners.append(func.__self__)\n",
             "    pass\n", ("tests/attacks/test_guarantees.py",)),
    Mutation("evaluate_trusts_claims", "evaluate counts an input as broken when the attack "
             "claims success, without re-verifying its x_adv", "dmr/attacks/evaluate.py",
             "broken = todo[adversarial]", "broken = todo[claimed]",
             ("tests/attacks/test_evaluate.py",)),
    Mutation("evaluate_ball_slack", "evaluate accepts x_adv up to a relative 1e-6 outside the "
             "eps-ball", "dmr/attacks/evaluate.py", "feasible &= distance <= eps\n",
             "feasible &= distance <= eps * (1.0 + 1e-6)\n", ("tests/attacks/test_evaluate.py",)),
    Mutation("evaluate_attacks_broken_inputs", "evaluate runs every attack on every correct "
             "input, not only those still robust", "dmr/attacks/evaluate.py",
             "todo = rows[robust[rows]]", "todo = rows[clean_correct[rows]]",
             ("tests/attacks/test_evaluate.py",)),
    Mutation("dlr_wrong_scale", "DLR divided by z_(1) - z_(2) instead of z_(1) - z_(3)",
             "dmr/attacks/losses.py", "(ranked[:, 0] - ranked[:, 2] + _TINY)",
             "(ranked[:, 0] - ranked[:, 1] + _TINY)", ("tests/attacks/test_losses.py",)),
    Mutation("l1_box_projection_ignores_box", "APGD-L1's projection ignores the box",
             "dmr/attacks/projections.py", "    room = _rows(jnp.where(v >= 0, hi - x, x - lo))\n",
             "    room = jnp.full(flat.shape, jnp.inf, flat.dtype)\n",
             ("tests/attacks/test_apgd.py",)),
]
