"""dmr: adversarial robustness and generalization on (learned and known) data manifolds, in JAX."""
__version__ = "0.1.0"
