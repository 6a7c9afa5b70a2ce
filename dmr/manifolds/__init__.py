"""The data manifolds of a run, each behind one interface (dmr.manifolds.base.Manifold).

  kinds = manifolds.load(config, ds, workdir, mesh)   # {"learned": ..., "true": ...}
  on = kinds["learned"].attack(logits_fn, rows, spec, key, batch_size, mesh)

config.manifolds lists the kinds of a run: "learned" (the VAE-GANs of the `manifolds` stage,
dmr.manifolds.learned) and "true" (the known FONTS manifold, dmr.manifolds.known); a run may
hold both. "learned_agnostic" is the learned manifold attacked through the class-agnostic
VAE-GAN (its own eps, on_manifold_attack.eps_agnostic): an attack kind of every run with
"learned" (`attack_kinds`).
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
  kinds = config.manifolds if kinds is None else kinds
  vaes = (load_vaegans(config, workdir, ds, mesh)
          if any(k.startswith("learned") for k in kinds) else None)
  build = {
      "learned": lambda agnostic=False: LearnedManifold(
          ds, vaes, mesh, config.train.eval_batch_size, d.projection_steps, d.projection_lr,
          d.projection_restarts, class_agnostic=agnostic),
      "learned_agnostic": lambda: build["learned"](True),
      "true": lambda: KnownManifold(ds, d.projection_steps),
  }
  return {kind: build[kind]() for kind in kinds}


def attack_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
  """The on-manifold attacks of a run with manifolds `kinds`: each kind, and "learned_agnostic"
  right after "learned"."""
  return tuple(a for k in kinds for a in ((k, "learned_agnostic") if k == "learned" else (k,)))


def attack_eps(config: ml_collections.ConfigDict, kind: str) -> float:
  """The on-manifold attack's eps for manifold kind `kind` (eps_agnostic for learned_agnostic)."""
  o = config.on_manifold_attack
  return o.eps_agnostic if kind == "learned_agnostic" else o.eps


__all__ = ["Manifold", "OnManifold", "KnownManifold", "LearnedManifold", "attack_eps",
           "attack_kinds", "load", "train_all"]
