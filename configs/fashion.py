"""Fashion-MNIST (PAPER.md). Usage: --config=configs/fashion.py[:paper|quick|smoke]."""
from dmr import config


def get_config(preset: str = "paper"):
  c = config.base("fashion_mnist", preset or "paper")
  config.vaegan_defaults(c, latent_dim=10, epochs=60, beta=2.75, beta_agnostic=3.0)
  return c
