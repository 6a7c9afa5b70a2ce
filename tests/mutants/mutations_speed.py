"""Mutations of the fast conv forms (dmr/models/convs.py) and of the training loop's device path."""
from mutations import Mutation

MUTATIONS = [
    Mutation("convs_kernel_not_flipped", "the HWIO input gradient convolves with the unflipped "
             "kernel", "dmr/models/convs.py",
             "jnp.flip(kernel, (0, 1)).transpose((0, 1, 3, 2))", "kernel.transpose((0, 1, 3, 2))",
             ("tests/test_convs.py",)),
    Mutation("convs_patches_transposed", "im2col gathers its windows' taps column by column",
             "dmr/models/convs.py", "for i in range(kh) for j in range(kw)]",
             "for j in range(kw) for i in range(kh)]", ("tests/test_convs.py",)),
    Mutation("loop_key_folded_on_host", "each step's key is folded from a Python int on the host "
             "(an implicit transfer per step)", "dmr/train/loop.py",
             "state, metrics = step_fn(state, xb, yb, wb, base_key, *auxb)",
             "state, metrics = step_fn(state, xb, yb, wb, jax.random.fold_in(base_key, step), *auxb)",
             ("tests/test_train.py",)),
]
