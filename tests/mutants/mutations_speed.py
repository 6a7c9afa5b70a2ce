"""Mutations of the fast conv forms (dmr/models/convs.py)."""
from mutations import Mutation

MUTATIONS = [
    Mutation("convs_kernel_not_flipped", "the HWIO input gradient convolves with the unflipped "
             "kernel", "dmr/models/convs.py",
             "jnp.flip(kernel, (0, 1)).transpose((0, 1, 3, 2))", "kernel.transpose((0, 1, 3, 2))",
             ("tests/test_convs.py",)),
    Mutation("convs_patches_transposed", "im2col gathers its windows' taps column by column",
             "dmr/models/convs.py", "for i in range(kh) for j in range(kw)]",
             "for j in range(kw) for i in range(kh)]", ("tests/test_convs.py",)),
]
