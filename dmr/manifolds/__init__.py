"""The data manifolds of a run, each behind one interface (dmr.manifolds.base.Manifold).

  kinds = manifolds.load(("learned", "true"), ds, workdir, mesh, run.vaegan, run.distances)
  on = kinds["learned"].attack(logits_fn, rows, spec, key, batch_size, mesh)

A run lists its kinds in config.manifolds: "learned" (the VAE-GANs of the `manifolds` stage,
dmr.manifolds.learned) and "true" (the known FONTS manifold, dmr.manifolds.known); a run may
hold both. "learned_agnostic" is the learned manifold attacked through the class-agnostic
VAE-GAN (its own eps, on_manifold_attack.eps_agnostic): an attack kind of every run with
"learned" (`attack_kinds`).
"""
from __future__ import annotations

from dmr.data.dataset import Dataset
from dmr.manifolds.base import Manifold, OnManifold
from dmr.manifolds.known import KnownManifold
from dmr.manifolds.learned import LearnedManifold
from dmr.manifolds.vaegans import load_vaegans, train_all
from dmr.specs import DistancesSpec, VaeganSpec


def load(kinds: tuple[str, ...], ds: Dataset, workdir: str, mesh, vaegan: VaeganSpec,
         distances: DistancesSpec, encode_batch_size: int = 1000) -> dict[str, Manifold]:
  """The manifolds `kinds` of ds, by kind; "learned" needs the finished `manifolds` stage in
  workdir (its VAE-GANs, `vaegan`); encode_batch_size: the batches of training codes
  on-manifold adversarial training encodes."""
  d = distances
  vaes = (load_vaegans(vaegan, workdir, ds, mesh)
          if any(k.startswith("learned") for k in kinds) else None)
  build = {
      "learned": lambda agnostic=False: LearnedManifold(
          ds, vaes, mesh, encode_batch_size, d.projection_steps, d.projection_lr,
          d.projection_restarts, class_agnostic=agnostic),
      "learned_agnostic": lambda: build["learned"](True),
      "true": lambda: KnownManifold(ds, d.projection_steps),
  }
  return {kind: build[kind]() for kind in kinds}


def attack_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
  """The on-manifold attacks of a run with manifolds `kinds`: each kind, and "learned_agnostic"
  right after "learned"."""
  return tuple(a for k in kinds for a in ((k, "learned_agnostic") if k == "learned" else (k,)))


__all__ = ["Manifold", "OnManifold", "KnownManifold", "LearnedManifold", "attack_kinds", "load",
           "train_all"]
