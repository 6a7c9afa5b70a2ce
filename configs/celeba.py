"""CelebA, Male vs not, 56x48x3 (PAPER.md). Usage: --config=configs/celeba.py[:paper|quick|smoke]."""
from dmr import config


def get_config(preset: str = "paper"):
  return config.base("celeb_a", preset or "paper")
