"""EMNIST digits (PAPER.md). Usage: --config=configs/emnist.py[:paper|quick|smoke]."""
from dmr import config


def get_config(preset: str = "paper"):
  c = config.base("emnist", preset or "paper")
  config.vaegan_defaults(c, latent_dim=10, epochs=30, beta=2.25, beta_agnostic=3.0)
  return c
