"""The config's fields, each declared once: name, default, meaning, check, whether it changes
results, and its value under each preset (docs/protocol.md#presets).

`dmr.config` builds `base` and the presets from FIELDS and validates by their checks; `dmr.main
--print_config` prints their help; dmr.fingerprint keeps the fields that change results.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from dmr import data, geometry
from dmr.config.checks import (Check, boolean, choice, integer, non_negative, non_negative_int,
                               optional, positive_int, positive_number, sizes, text, tuple_of,
                               unit_interval)
from dmr.models.classifiers import ARCHITECTURES

PRESETS = ("paper", "claims", "quick", "smoke")
SEED_STREAMS = ("model_init", "data_order", "attacks", "pca")
MANIFOLDS = ("learned", "true")
THETA_RANGES = {"augmentation": geometry.AUGMENTATION, **geometry.FONTS_RANGES}
# In run order: on_adv_learned training needs the VAE-GANs of `manifolds`.
STAGES = ("manifolds", "classifiers", "attacks", "distances", "report")
VARIANTS = ("normal", "off_adv", "on_adv_learned", "on_adv_true", "stn_augm", "stn_adv")
PAPER_VARIANTS = ("normal", "off_adv", "on_adv_learned", "stn_augm", "stn_adv")
REDUCED_VARIANTS = ("normal", "off_adv", "on_adv_learned")
# Claims 1-3 compare normal models with on-manifold adversarially trained ones.
CLAIMS_VARIANTS = ("normal", "on_adv_learned")
PAPER_TRAINING_SIZES = (250, 500, 1000, 1500, 2000, 2500, 5000, 7500, 10000, 15000, 20000, 30000,
                        40000)
# The attacks of dmr.attacks.evaluate that attack.cross_check may name (square: linf only).
CROSS_CHECK_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "square")
ARCHITECTURE_NAMES = tuple(sorted(ARCHITECTURES))


@dataclasses.dataclass(frozen=True)
class Field:
  """A config field. default None: a placeholder taking check.type values from overrides.
  result: whether it changes results (in the fingerprint); a field's name: only while that
  field is not None. presets: its value under each of PRESETS (None keeps the default).
  datasets: the datasets that have it (None: every one)."""
  name: str
  default: Any
  help: str
  check: Check
  result: bool | str = True
  presets: tuple = (None,) * len(PRESETS)
  datasets: tuple[str, ...] | None = None


def _attack(section: str, about: str, defaults: dict, presets: dict,
            not_result: tuple[str, ...] = ()) -> list[Field]:
  """The fields of an attack section: `defaults` {name: value} in order, each with its check and
  the help "<about>: <meaning>"."""
  return [Field(f"{section}.{name}", default, f"{about}: {ATTACK_HELP[name]}", ATTACK_CHECKS[name],
                result=name not in not_result, presets=presets.get(name, (None,) * len(PRESETS)))
          for name, default in defaults.items()]


ATTACK_HELP = {
    "eps": "radius of the attack's L-p ball",
    "norm": "the attack's norm: linf | l2 | l1",
    "steps": "iterations of the attack",
    "step_size": "step size of each iteration",
    "optimizer": "update rule: sign (signed gradient) | adam",
    "init": "start: paper | uniform (random in the ball) | zero",
    "restarts": "independent restarts per input",
    "early_stop": "stop a row once it is misclassified (False keeps the highest-loss iterate)",
    "num_test": "test images attacked (the first ones)",
    "batch_size": "images per batch of the attack (memory only)",
}
ATTACK_CHECKS = {
    "eps": positive_number, "norm": choice(("linf", "l2", "l1")), "steps": positive_int,
    "step_size": positive_number, "optimizer": choice(("sign", "adam")),
    "init": choice(("uniform", "paper", "zero")), "restarts": positive_int, "early_stop": boolean,
    "num_test": positive_int, "batch_size": positive_int,
}

FIELDS_IN_ORDER = [
    Field("dataset", None, "fashion_mnist | emnist | celeb_a | fonts", choice(data.DATASETS)),
    Field("preset", None, "paper | claims | quick | smoke: the column of defaults this config "
          "started from", choice(PRESETS), result=False),
    Field("progress", True, "progress bars with ETA on a terminal (dmr.progress); False: none",
          boolean, result=False),
    # The base seed, and the offset of each named stream from it (see `seed`): changing one offset
    # (--config.seeds.attacks=1 redraws the attack noise) moves no other stream. `seed` names the
    # models (model seeds seed + m, see dmr.config.model_seeds): a sweep sets it per model.
    Field("seed", 0, "base seed; the models of each size have seeds seed, seed + 1, ...", integer,
          result=False),
    *[Field(f"seeds.{stream}", 0, "offset of each random stream from the seed; changing one "
            "moves no other stream", integer) for stream in SEED_STREAMS],
    Field("stages", STAGES, "stages to run, in order: manifolds, classifiers, attacks, "
          "distances, report", tuple_of(STAGES), result=False),
    # Preset values: (paper, claims, quick, smoke). claims: sized from measured stage times so
    # that one run of configs/fashion.py (claims 1-3) or configs/fonts.py (claims 1-4) settles its
    # claims in under an hour on a 2-core CPU: only the variants the claims compare, more attacked
    # images than quick, VAE-GANs trained longer. Claim 3 compares training runs: every model
    # trains at least 120 steps (at N=250 ten epochs are 30 steps, and those unconverged models'
    # test errors spread over 26-36% between seeds, hiding the effect; 40 epochs bring the
    # effect's SD under a point), on-manifold adversarial training (the costly part) runs at the
    # small N only, and normal models span 250 to 8000 (once N=250 trains to convergence, its
    # on-manifold success equals N=2000's). Measured: docs/protocol.md#presets.
    Field("training_sizes", PAPER_TRAINING_SIZES, "training set sizes N (the first N training "
          "images)", sizes, result=False,
          presets=(PAPER_TRAINING_SIZES, (250, 8000), (500, 2000), (200,))),
    Field("models_per_size", 3, "models (seeds) per variant and training size", positive_int,
          result=False, presets=(3, 12, 1, 1)),
    Field("variants", PAPER_VARIANTS, "training variants: normal, off_adv, on_adv_learned, "
          "on_adv_true, stn_augm, stn_adv", tuple_of(VARIANTS), result=False,
          presets=(PAPER_VARIANTS, CLAIMS_VARIANTS, REDUCED_VARIANTS, REDUCED_VARIANTS)),
    # Per variant, the N of training_sizes it trains at (None: every one); see `training_sizes_of`.
    *[Field(f"variant_training_sizes.{variant}", None, "per variant, the N of training_sizes it "
            "trains at (None: all)", optional(sizes, "None (every N of training_sizes) or a "
                                              "non-empty tuple of positive integers"),
            result=False, presets=(None, (250,), None, None) if variant == "on_adv_learned"
            else (None,) * len(PRESETS)) for variant in VARIANTS],
    # The data manifolds of the run (dmr.manifolds): "learned" (VAE-GANs, stage `manifolds`),
    # "true" (the known FONTS manifold). The first is the one the attacks stage reports.
    Field("manifolds", ("learned",), "data manifolds of the run: learned (VAE-GANs) and/or true "
          "(FONTS only); the first is the one the attacks stage reports",
          tuple_of(MANIFOLDS, non_empty=True)),
    # The theta range of stn_augm and stn_adv: "augmentation" (docs/protocol.md#training-variants)
    # or a FONTS difficulty.
    Field("stn_theta_range", "augmentation", "theta range of stn_augm and stn_adv: augmentation "
          "or a FONTS difficulty", choice(tuple(THETA_RANGES))),

    Field("data.dir", None, "directory of the data files (None: the source's default)",
          optional(text, "None (the source's default) or a directory"), result=False),
    Field("data.num_train", 960_000, "FONTS training images", positive_int, datasets=("fonts",)),
    Field("data.num_test", 160_000, "FONTS test images", positive_int, datasets=("fonts",)),
    Field("data.seed", 0, "FONTS seed of the transformations", integer, datasets=("fonts",)),
    Field("data.difficulty", "hard", "FONTS theta range: easy | moderate | hard",
          choice(tuple(geometry.FONTS_RANGES)), datasets=("fonts",)),
    Field("data.max_fonts", None, "FONTS: use only the first fonts (None: every usable font)",
          optional(positive_int, "None (every usable font) or a positive integer"),
          datasets=("fonts",)),

    Field("classifier.architecture", "conv", "classifier network",
          choice(ARCHITECTURE_NAMES, str(list(ARCHITECTURE_NAMES)))),

    Field("train.epochs", 20, "classifier training epochs", positive_int, presets=(20, 10, 10, 1)),
    # None: `epochs` at every N (the paper). Else every classifier trains at least this many
    # optimizer steps: at small N its epochs rise to ceil(min_steps / batches per epoch).
    Field("train.min_steps", None, "least optimizer steps per classifier; epochs rise at small N "
          "(None: off)", optional(positive_int, "a positive integer, or None (epochs at every N)"),
          result="train.min_steps", presets=(None, 120, None, None)),
    Field("train.batch_size", 100, "classifier training batch size (half clean, half the "
          "variant's)", positive_int),
    Field("train.learning_rate", 0.01, "Adam learning rate", positive_number),
    Field("train.lr_decay", 0.95, "learning-rate decay per epoch, applied continuously every "
          "batch", unit_interval),
    Field("train.b1", 0.5, "Adam beta1", unit_interval),
    Field("train.b2", 0.9, "Adam beta2", unit_interval),
    # Coupled L2 on all parameters (PyTorch Adam's weight_decay).
    Field("train.weight_decay", 1e-4, "coupled L2 weight decay on all parameters", non_negative),
    Field("train.eval_batch_size", 1000, "images per batch when evaluating (memory only)",
          positive_int, result=False),
    Field("train.checkpoint_every_steps", 500, "steps between checkpoints (and at every epoch's "
          "end)", positive_int, result=False, presets=(500, 500, 500, 1)),
    Field("train.log_every_steps", 50, "steps between metrics.jsonl records", positive_int,
          result=False, presets=(50, 50, 50, 1)),

    # Adversarial training (off_adv, on_adv_*, stn_adv): the paper's attack, all steps, keeping the
    # highest-loss iterate (early_stop False), one restart, in eval mode; steps x step_size must
    # reach the largest eps (a sign or Adam step moves each coordinate by at most step_size).
    # eps: image-space L-inf (off_adv), latent / theta L-inf (on_adv_*), theta L-inf around the
    # identity (stn_adv).
    Field("adversarial_training.off_eps", 0.3, "adversarial training: image-space L-inf radius "
          "(off_adv)", positive_number),
    Field("adversarial_training.on_eps", 0.3, "adversarial training: latent or theta radius "
          "(on_adv_*)", positive_number),
    Field("adversarial_training.stn_eps", 0.3, "adversarial training: theta radius around the "
          "identity (stn_adv)", positive_number),
    # Small N is where on-manifold training should help; 10 attack steps per training batch keep
    # quick's adversarial training within the demo's 15 minutes on 2 CPU cores. Every preset's
    # training attack reaches its whole eps-ball (steps x step_size >= eps, see `validate`):
    # paper keeps the authors' Adam with lr 0.3 / 40 (40 x 0.0075 = 0.3); cut presets take sign
    # steps of 2.5 eps / steps.
    *_attack("adversarial_training", "attack of adversarial training", dict(
        steps=40, step_size=0.0075, optimizer="adam", init="paper", restarts=1, early_stop=False),
        presets=dict(steps=(40, 10, 10, 3), step_size=(0.0075, 0.075, 0.075, 0.25),
                     optimizer=("adam", "sign", "sign", "sign"))),

    # Off-manifold (regular) evaluation attack: L-inf eps 0.3 on the first num_test test images.
    # smoke: sign steps reaching eps, so that tests see successful examples after 3 steps.
    *_attack("attack", "off-manifold evaluation attack", dict(
        eps=0.3, norm="linf", steps=40, step_size=0.005, optimizer="adam", init="paper",
        restarts=5, num_test=1000, batch_size=500),
        presets=dict(steps=(40, 40, 40, 3), restarts=(5, 2, 2, 2),
                     optimizer=("adam", "adam", "adam", "sign"),
                     step_size=(0.005, 0.005, 0.005, 0.25), num_test=(1000, 500, 500, 40),
                     batch_size=(500, 500, 500, 40)), not_result=("batch_size",)),
    # A stronger attack run beside the paper's on the same images at the same eps: None, or a
    # tuple of dmr.attacks.evaluate attacks (CROSS_CHECK_ATTACKS). An input counts as broken when
    # either breaks it; the report's off-manifold rates then count the union. Left out of the
    # fingerprint while None, so that configs without it keep the fingerprint they had before it.
    Field("attack.cross_check", None, "None, or dmr.attacks.evaluate attacks run beside the "
          "paper's attack (an input broken by either counts)",
          optional(tuple_of(CROSS_CHECK_ATTACKS, non_empty=True),
                   f"None or a non-empty tuple of {CROSS_CHECK_ATTACKS}"),
          result="attack.cross_check"),
    # The variants whose models the attacks stage attacks: None, all of them; else a tuple, e.g.
    # ("normal",) when only normal models' success rates are wanted (claims 1-3 read the other
    # variants' test errors alone). Claim 4's own model family is always attacked.
    Field("attack.variants", None, "None (every variant), or the variants whose models the "
          "attacks stage attacks (claim 4's own models always)",
          optional(tuple_of(VARIANTS, non_empty=True),
                   f"None (every variant) or a non-empty tuple of {VARIANTS}"), result=False),

    # On-manifold evaluation attack: L-inf eps in the latent space of the true class's VAE-GAN
    # (eps_agnostic for the class-agnostic one) or in theta space on FONTS.
    *_attack("on_manifold_attack", "on-manifold evaluation attack (latent or theta space)",
             dict(eps=0.3), {}),
    Field("on_manifold_attack.eps_agnostic", 0.1, "on-manifold attack radius in the "
          "class-agnostic VAE-GAN's latent space", positive_number),
    *_attack("on_manifold_attack", "on-manifold evaluation attack (latent or theta space)", dict(
        steps=40, step_size=0.005, optimizer="adam", init="paper", restarts=5, num_test=2500,
        batch_size=500),
        presets=dict(steps=(40, 40, 40, 3), restarts=(5, 2, 2, 2),
                     optimizer=("adam", "adam", "adam", "sign"),
                     step_size=(0.005, 0.005, 0.005, 0.25), num_test=(2500, 1000, 500, 40),
                     batch_size=(500, 500, 500, 40)), not_result=("batch_size",)),

    # Claim 4's own models (docs/protocol.md#claims): normal and off_adv at one N, models_per_size
    # seeds each, under their own architecture and epochs, reported apart from the sweep's models.
    # In the fingerprint only while claim4.architecture is set (None: claim 4 uses the sweep's).
    Field("claim4.architecture", None, "claim 4's own models: their classifier (None: claim 4 "
          "uses the sweep's models)", optional(choice(ARCHITECTURE_NAMES), "None (claim 4 uses the "
          f"sweep's models) or one of {list(ARCHITECTURE_NAMES)}"), result="claim4.architecture"),
    Field("claim4.epochs", None, "claim 4's own models: training epochs (None: train.epochs)",
          optional(positive_int, "None (train.epochs) or a positive integer"),
          result="claim4.architecture"),
    Field("claim4.training_size", None, "claim 4's own models: their N (None: the largest of "
          "training_sizes)", optional(positive_int, "None (the largest training size) or a "
                                      "positive integer"), result=False),

    # Claim 1: distances of test images and adversarial examples to the manifold.
    Field("distances.num_test", 1000, "test images whose distances to the manifold are measured",
          positive_int, presets=(1000, 500, 250, 40)),
    Field("distances.projection_steps", 100, "Adam steps of each projection onto a manifold",
          positive_int, presets=(100, 100, 100, 5)),
    Field("distances.projection_lr", 0.1, "learning rate of the projections", positive_number),
    Field("distances.projection_restarts", 1, "restarts of each projection", positive_int),
    Field("distances.neighbours", 50, "nearest training images spanning each local subspace",
          positive_int),
    Field("distances.pca_dims", 40, "dimensions of the PCA space the neighbours are searched in",
          positive_int),

    # VAE-GANs of the learned manifold (docs/protocol.md#vae-gan; stage `manifolds`): one per
    # class and one class-agnostic, each on the FULL training set of its class (the first
    # max_train_images rows of it when set). Per-dataset values: the rows of configs/<dataset>.py.
    # quick: the 11 Fashion-MNIST VAE-GANs in about 2-3 minutes on a 2-core CPU (measured),
    # reconstructions still recognizable.
    Field("vaegan.latent_dim", 10, "VAE-GAN latent dimensions", positive_int),
    Field("vaegan.epochs", 30, "VAE-GAN training epochs", positive_int, presets=(30, 5, 2, 1)),
    Field("vaegan.beta", 3.0, "weight of the L1 reconstruction loss (class-specific VAE-GANs)",
          positive_number),
    Field("vaegan.beta_agnostic", 3.0, "weight of the L1 reconstruction loss (class-agnostic "
          "VAE-GAN)", positive_number),
    Field("vaegan.gamma", 1.0, "weight of the GAN losses", positive_number),
    Field("vaegan.learning_rate", 0.005, "VAE-GAN Adam learning rate", positive_number),
    Field("vaegan.lr_decay", 0.9, "VAE-GAN learning-rate decay per epoch", unit_interval),
    Field("vaegan.b1", 0.5, "VAE-GAN Adam beta1", unit_interval),
    Field("vaegan.b2", 0.9, "VAE-GAN Adam beta2", unit_interval),
    Field("vaegan.weight_decay", 1e-4, "VAE-GAN coupled L2 weight decay", non_negative),
    Field("vaegan.batch_size", 100, "VAE-GAN training batch size", positive_int),
    Field("vaegan.channels", 64, "channels of the first encoder conv (doubling) and last decoder "
          "conv", positive_int, presets=(64, 16, 16, 4)),
    Field("vaegan.discriminator_channels", 64, "channels of the discriminator's first conv",
          positive_int, presets=(64, 16, 16, 4)),
    Field("vaegan.max_train_images", None, "train each VAE-GAN on the first images of its class "
          "only (None: all)", optional(positive_int, "None (all) or a positive integer"),
          presets=(None, 3000, 3000, 200)),
    Field("vaegan.eval_batch_size", 1000, "images per batch when evaluating VAE-GANs (memory "
          "only)", positive_int, result=False, presets=(1000, 1000, 1000, 500)),
    Field("vaegan.checkpoint_every_steps", 500, "VAE-GAN steps between checkpoints", positive_int,
          result=False, presets=(500, 500, 500, 1)),
    Field("vaegan.log_every_steps", 50, "VAE-GAN steps between metrics.jsonl records",
          positive_int, result=False, presets=(50, 50, 50, 1)),

    Field("parallel.distributed", False, "call jax.distributed.initialize (multi-host runs)",
          boolean, result=False),
    Field("parallel.coordinator_address", None, "multi-host: address of process 0 (None: "
          "auto-detected)", optional(text, "None (auto-detected) or host:port"), result=False),
    Field("parallel.num_processes", None, "multi-host: number of processes (None: auto-detected)",
          optional(positive_int, "None (auto-detected) or a positive integer"), result=False),
    Field("parallel.process_id", None, "multi-host: this process's index (None: auto-detected)",
          optional(non_negative_int, "None (auto-detected) or a non-negative integer"),
          result=False),
]
FIELDS = {f.name: f for f in FIELDS_IN_ORDER}
