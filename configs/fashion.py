"""Fashion-MNIST (docs/protocol.md#datasets). Usage: --config=configs/fashion.py[:paper|claims|quick|smoke]."""
from dmr import config

# Fields of this dataset, per preset (in place of their values in dmr/config/fields.py).
ROWS = {
    #  field                 paper   claims  quick   smoke
    "vaegan.latent_dim":    (10,     10,     10,     10),
    "vaegan.epochs":        (60,     5,      2,      1),
    "vaegan.beta":          (2.75,   2.75,   2.75,   2.75),
    "vaegan.beta_agnostic": (3.0,    3.0,    3.0,    3.0),
    # Claims 1-3 need normal models' success rates and on_adv_learned's test errors: attacking
    # only normal models leaves the time for the seeds claim 3 needs.
    "attack.variants":      (None,   ("normal",), None, None),
}


def get_config(preset: str = "paper"):
  return config.build("fashion_mnist", preset or "paper", ROWS)
