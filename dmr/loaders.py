"""The trained models of a workdir as plain JAX functions, for dmr.attacks or any other tool.

  logits_fn = dmr.load_classifier("runs/fashion-quick", "normal", 2000, 0)
  learned = dmr.load_manifold("runs/fashion-quick")          # the VAE-GANs
  encode_fn, decode_fn = learned.vaes.classes[3].encode_fn, learned.vaes.classes[3].decode_fn

Both read the run's config.json (written by `python -m dmr.main`), parsed once into a
dmr.specs.RunSpec, and its dataset (for the classes; the learned manifold also for its images). A
classifier loads from the inference export its training wrote (dmr.checkpoint.load_weights; a
workdir written before exports existed loads from its last checkpoint): no optimizer, no N.
"""
from __future__ import annotations

import json
import os

import jax
import ml_collections

from dmr import manifolds, parallel, records, results
from dmr import config as dmr_config
from dmr.specs import RunSpec
from dmr.train import classifier

CONFIG_FILE = "config.json"


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run recorded in workdir/config.json."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no {CONFIG_FILE} in {workdir}: not the workdir of a dmr run "
                            f"(python -m dmr.main --workdir=... writes it).")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _trained(workdir: str) -> list[tuple[str, int, int]]:
  return sorted((r["variant"], r["n"], r["seed"]) for r in results.load(workdir)["records"]
                if records.is_trained(r))


def load_classifier(workdir: str, variant: str, n: int, seed: int,
                    mesh=None) -> jax.tree_util.Partial:
  """logits_fn(x [B, H, W, C] in [0, 1]) -> logits [B, K] of the finished classifier (variant,
  n, seed) of the run in `workdir`, BatchNorm in inference mode.

  A jax.tree_util.Partial over the parameters (replicated over `mesh`, default all devices):
  call it, jit it, or pass it to jitted code such as dmr.attacks.pgd.
  """
  run = RunSpec.from_config(load_config(workdir))
  trained = _trained(workdir)
  if (variant, n, seed) not in trained:
    listed = ", ".join(f"{v} n={m} seed={s}" for v, m, s in trained) or "none"
    raise FileNotFoundError(f"no finished classifier {variant} n={n} seed={seed} in {workdir}; "
                            f"finished: {listed}.")
  return classifier.load(classifier.model_dir(workdir, variant, n, seed),
                         run.classifier.architecture, run.load_dataset().num_classes,
                         mesh or parallel.data_mesh())


def load_manifold(workdir: str, kind: str = "learned", mesh=None) -> manifolds.Manifold:
  """The data manifold `kind` of the run in `workdir` (dmr.manifolds.Manifold).

  "learned": a dmr.manifolds.LearnedManifold; its `vaes` hold the trained VAE-GANs,
  vaes.classes[k] of class k and vaes.agnostic of all classes, each with encode_fn (images
  [B, H, W, C] -> codes mu [B, d]), decode_fn (codes -> images) and box (the range of the
  training codes). "true": the known FONTS manifold.
  """
  if kind not in dmr_config.MANIFOLDS:
    raise ValueError(f"kind={kind!r}; allowed: {dmr_config.MANIFOLDS}.")
  run = RunSpec.from_config(load_config(workdir))
  return manifolds.load((kind,), run.load_dataset(), workdir, mesh or parallel.data_mesh(),
                        run.vaegan, run.distances, run.classifier.train.eval_batch_size)[kind]
