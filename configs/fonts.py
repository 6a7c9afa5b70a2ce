"""FONTS: letters A-J rendered from the machine's fonts under random affine transforms, the one
dataset whose manifold is known exactly (PAPER.md). `make fonts` installs ~1000 Debian fonts.

Usage: --config=configs/fonts.py[:paper|quick|smoke].
"""
from dmr import config


def get_config(preset: str = "paper"):
  preset = preset or "paper"
  c = config.base("fonts", preset)
  c.data.num_train = 960_000
  c.data.num_test = 160_000
  c.data.seed = 0
  c.data.difficulty = "hard"  # easy | moderate | hard (PAPER.md's theta ranges)
  c.data.max_fonts = config.placeholder(int)  # None: every usable font of the machine.
  config.vaegan_defaults(c, latent_dim=10, epochs=10, beta=3.0)
  # The known manifold replaces the learned one: theta-space on-manifold attacks and training
  # (on_adv_true) and exact distances, so no VAE-GANs are trained.
  c.variants = tuple(v for v in c.variants if v != "on_adv_learned") + ("on_adv_true",)
  c.stages = tuple(s for s in c.stages if s != "manifolds")
  if preset == "quick":
    c.data.num_train, c.data.num_test = 20_000, 2_000
  elif preset == "smoke":  # Every variant, to exercise each of them end to end.
    c.data.num_train, c.data.num_test, c.data.max_fonts = 1_000, 200, 10
    c.variants = ("normal", "off_adv", "stn_augm", "stn_adv", "on_adv_true")
  return c
