"""dmr: Disentangling adversarial robustness and generalization, in JAX."""
import setuptools

EXPERIMENTS = [
    "flax>=0.10",
    "orbax-checkpoint>=0.11",
    "tensorflow-datasets>=4.9.7",
    "chex>=0.1.88",
    "ml-collections>=1.0",
    "absl-py",
    "tqdm",
    "tensorboardX>=2.6",  # TensorBoard event files without TensorFlow
    "matplotlib",
    "pillow",
]

setuptools.setup(
    name="dmr",
    version="0.1.0",
    description=("Reproduces Stutz, Hein and Schiele, 'Disentangling Adversarial Robustness "
                 "and Generalization' (CVPR 2019) in JAX, with a JAX attack library."),
    packages=setuptools.find_packages(include=["dmr", "dmr.*"]),
    python_requires=">=3.11",
    # `pip install dmr` is the attack library alone (dmr.attacks needs only these);
    # the reproduction (python -m dmr.main, the notebooks) needs the `experiments` extra.
    install_requires=["jax>=0.7", "optax>=0.2.4", "numpy"],
    extras_require={
        "experiments": EXPERIMENTS,
        # tensorboard: the tests read events back with its reader.
        "dev": EXPERIMENTS + ["pytest", "pytest-timeout", "pytest-xdist", "nbformat", "nbclient",
                              "ipykernel", "equinox", "tensorboard"],
        # torchattacks: install it with `pip install --no-deps` (see the Makefile's bench
        # target): its torchvision requirement makes pip replace a CPU torch by a CUDA build.
        "bench": ["torch>=2.3", "torchattacks>=3.5", "scipy", "requests"],
        "cuda": EXPERIMENTS + ["jax[cuda12]"],
        "tpu": EXPERIMENTS + ["jax[tpu]"],
    },
)
