"""CelebA, Male vs not, 56x48x3 (docs/protocol.md#datasets). Usage: --config=configs/celeba.py[:paper|claims|quick|smoke]."""
from dmr import config

# Fields of this dataset, per preset (in place of their values in dmr/config/fields.py).
ROWS = {
    #  field                 paper   claims  quick   smoke
    "vaegan.latent_dim":    (25,     25,     25,     25),
    "vaegan.epochs":        (30,     5,      2,      1),
    "vaegan.beta":          (3.0,    3.0,    3.0,    3.0),
    "vaegan.beta_agnostic": (3.0,    3.0,    3.0,    3.0),
}


def get_config(preset: str = "paper"):
  return config.build("celeb_a", preset or "paper", ROWS)
