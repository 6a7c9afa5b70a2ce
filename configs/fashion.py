"""Fashion-MNIST (PAPER.md). Usage: --config=configs/fashion.py[:paper|quick|smoke]."""
from dmr import config


def get_config(preset: str = "paper"):
  return config.base("fashion_mnist", preset or "paper")
