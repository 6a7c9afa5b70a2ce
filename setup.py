"""dmr: Disentangling adversarial robustness and generalization, in JAX."""
import setuptools

setuptools.setup(
    name="dmr",
    version="0.1.0",
    description=("Reproduces Stutz, Hein and Schiele, 'Disentangling Adversarial Robustness "
                 "and Generalization' (CVPR 2019) in JAX, with a JAX attack library."),
    packages=setuptools.find_packages(include=["dmr", "dmr.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.7",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "tensorflow-datasets>=4.9.7",
        "chex>=0.1.88",
        "ml-collections>=1.0",
        "absl-py",
        "numpy",
        "tqdm",
        "tensorboardX>=2.6",  # TensorBoard event files without TensorFlow
        "matplotlib",
        "pillow",
    ],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "nbformat", "nbclient", "ipykernel",
                "tensorboard"],  # The viewer; the tests read event files back with it.
        "bench": ["torch>=2.3"],
        "cuda": ["jax[cuda12]"],
        "tpu": ["jax[tpu]"],
    },
)
