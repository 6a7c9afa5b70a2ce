"""Mutations of the fast conv forms (dmr/models/convs.py, conv_rewrite.py, the attacks' use of
them) and of the training loop's device path."""
from mutations import Mutation

MUTATIONS = [
    Mutation("convs_input_gradient_taps_flipped", "the matrix-product input gradient takes the "
             "kernel's taps in flipped order", "dmr/models/convs.py",
             "jax.linear_transpose(lambda x: im2col_conv(x, kernel), x)",
             "jax.linear_transpose(lambda x: im2col_conv(x, jnp.flip(kernel, (0, 1))), x)",
             ("tests/test_convs.py",)),
    Mutation("unroll_counts_dead_convs", "unroll=\"auto\" counts the convs of a backward rule's "
             "unused kernel gradient", "dmr/attacks/_execution.py",
             "    if not any(used):\n      continue\n", "",
             ("tests/test_convs.py",)),
    Mutation("fast_conv_output_order", "the rewritten conv's output keeps the input's dimension "
             "order", "dmr/models/conv_rewrite.py", "zip((0, 3, 1, 2), spec.out_spec)",
             "zip((0, 3, 1, 2), spec.lhs_spec)", ("tests/test_conv_rewrite.py",)),
    Mutation("fast_convs_unused_by_attack", "the attack's steps differentiate the model's own "
             "convs although fast_convs is on", "dmr/attacks/projected_gradient.py",
             "step_fn = execution.stepping_fn(logits_fn)",
             "step_fn = logits_fn", ("tests/test_conv_rewrite.py",)),
    Mutation("fast_convs_loop_not_reinspected", "unroll=\"auto\" judges the model's own convs "
             "after fast_convs replaced them", "dmr/attacks/_execution.py",
             "on_cpu and backward_convolves(conv_rewrite.with_fast_convs(fn), x))",
             "on_cpu and backward_convolves(fn, x))",
             ("tests/test_conv_rewrite.py",)),
    Mutation("apgd_fast_convs_unused", "APGD's steps differentiate the model's own convs "
             "although fast_convs is on", "dmr/attacks/apgd.py",
             "search(execution.stepping_fn(logits_fn), x, y, key, eps, bounds, spec,",
             "search(logits_fn, x, y, key, eps, bounds, spec,", ("tests/test_conv_rewrite.py",)),
    Mutation("inspect_model_differentiates", "every attack traces the model's input gradient, "
             "also the gradient-free Square Attack", "dmr/attacks/_execution.py",
             '  logits = _trace("logits", fn, x).jaxpr.out_avals[0]',
             '  _trace("gradient", fn, x)\n  logits = _trace("logits", fn, x).jaxpr.out_avals[0]',
             ("tests/attacks/test_square.py",)),
    Mutation("convs_patches_transposed", "im2col gathers its windows' taps column by column",
             "dmr/models/convs.py", "for i in range(kh) for j in range(kw)]",
             "for j in range(kw) for i in range(kh)]", ("tests/test_convs.py",)),
    Mutation("loop_key_folded_on_host", "each step's key is folded from a Python int on the host "
             "(an implicit transfer per step)", "dmr/train/loop.py",
             "state, metrics = step_fn(state, xb, yb, wb, base_key, *auxb)",
             "state, metrics = step_fn(state, xb, yb, wb, jax.random.fold_in(base_key, step), *auxb)",
             ("tests/test_train.py",)),
]
