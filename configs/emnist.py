"""EMNIST digits (docs/protocol.md#datasets). Usage: --config=configs/emnist.py[:paper|claims|quick|smoke]."""
from dmr import config

# Fields of this dataset, per preset (in place of their values in dmr/config/fields.py).
ROWS = {
    #  field                 paper   claims  quick   smoke
    "vaegan.latent_dim":    (10,     10,     10,     10),
    "vaegan.epochs":        (30,     5,      2,      1),
    "vaegan.beta":          (2.25,   2.25,   2.25,   2.25),
    "vaegan.beta_agnostic": (3.0,    3.0,    3.0,    3.0),
}


def get_config(preset: str = "paper"):
  return config.build("emnist", preset or "paper", ROWS)
