"""CelebA, Male vs not, 56x48x3 (PAPER.md). Usage: --config=configs/celeba.py[:paper|quick|smoke]."""
from dmr import config


def get_config(preset: str = "paper"):
  c = config.base("celeb_a", preset or "paper")
  config.vaegan_defaults(c, latent_dim=25, epochs=30, beta=3.0)
  return c
