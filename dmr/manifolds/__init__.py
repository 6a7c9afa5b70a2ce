"""The data manifolds of a run, each behind one interface (dmr.manifolds.base.Manifold).

  kinds = manifolds.load(config, ds, workdir, mesh)   # {"learned": ..., "true": ...}
  on = kinds["learned"].attack(logits_fn, rows, spec, key, batch_size, mesh)

config.manifolds lists the kinds of a run: "learned" (the VAE-GANs of the `manifolds` stage,
dmr.manifolds.learned) and "true" (the known FONTS manifold, dmr.manifolds.known); a run may
hold both.
"""
from __future__ import annotations

import ml_collections

from dmr.data.dataset import Dataset
from dmr.manifolds.base import Manifold, OnManifold
from dmr.manifolds.known import KnownManifold
from dmr.manifolds.learned import LearnedManifold
from dmr.manifolds.vaegans import load_vaegans, train_all


def load(config: ml_collections.ConfigDict, ds: Dataset, workdir: str, mesh,
         kinds: tuple[str, ...] | None = None) -> dict[str, Manifold]:
  """The manifolds `kinds` (default: config.manifolds) of ds, by kind; "learned" needs the
  finished `manifolds` stage in workdir."""
  d = config.distances
  build = {
      "learned": lambda: LearnedManifold(
          ds, load_vaegans(config, workdir, ds, mesh), mesh, config.train.eval_batch_size,
          d.projection_steps, d.projection_lr, d.projection_restarts),
      "true": lambda: KnownManifold(ds, d.projection_steps),
  }
  return {kind: build[kind]() for kind in (config.manifolds if kinds is None else kinds)}


__all__ = ["Manifold", "OnManifold", "KnownManifold", "LearnedManifold", "load", "train_all"]
