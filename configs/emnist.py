"""EMNIST digits (PAPER.md). Usage: --config=configs/emnist.py[:paper|quick|smoke]."""
from dmr import config


def get_config(preset: str = "paper"):
  return config.base("emnist", preset or "paper")
