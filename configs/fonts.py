"""FONTS: letters A-J rendered from the machine's fonts under random affine transforms, the one
dataset whose manifold is known exactly (docs/protocol.md#fonts). `make fonts` installs ~1000 Debian fonts.

Usage: --config=configs/fonts.py[:paper|quick|smoke].
"""
from dmr import config

# Both manifolds, side by side: the known one ("true": theta-space on-manifold attacks and
# training, on_adv_true, exact distances; reported first) and the learned one (VAE-GANs on FONTS,
# on_adv_learned), as the paper compares them. The smoke preset runs every variant, to exercise
# each of them end to end.
MANIFOLDS = ("true", "learned")
PAPER_VARIANTS = ("normal", "off_adv", "stn_augm", "stn_adv", "on_adv_true", "on_adv_learned")
QUICK_VARIANTS = ("normal", "off_adv", "on_adv_true", "on_adv_learned")

# Fields of this dataset, per preset (beside dmr.config.SHARED_PRESETS).
ROWS = {
    #  field                 paper            quick            smoke
    "data.num_train":       (960_000,         20_000,          1_000),
    "data.num_test":        (160_000,         2_000,           200),
    "manifolds":            (MANIFOLDS,       MANIFOLDS,       MANIFOLDS),
    "variants":             (PAPER_VARIANTS,  QUICK_VARIANTS,  PAPER_VARIANTS),
    "vaegan.latent_dim":    (10,              10,              10),
    "vaegan.epochs":        (10,              2,               1),
    "vaegan.beta":          (3.0,             3.0,             3.0),
}


def get_config(preset: str = "paper"):
  c = config.build("fonts", preset or "paper", ROWS)
  c.data.seed = 0
  c.data.difficulty = "hard"  # easy | moderate | hard (docs/protocol.md#fonts)
  c.data.max_fonts = 10 if c.preset == "smoke" else config.placeholder(int)  # None: every font.
  c.stn_theta_range = c.data.get_ref("difficulty") + ""  # The data's range, unless set.
  return c
