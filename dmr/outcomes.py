"""Per-image outcomes behind every rate and distance, so intervals can be recomputed and runs merged.

A model folder (models/<variant>/n<N>/seed<S>/) holds `outcomes.npz`; its record in results.json
names it under "outcomes" (relative to the workdir). Keys (bool unless said otherwise):

  test_correct            [T]     classified correctly, every test image (test error = 1 - mean)
  off_correct             [A]     clean input correctly classified (first A test images)
  off_success             [R, A]  the regular attack's restart r fooled the model (re-verified)
  on_<kind>_evaluated     [M]     the input enters the on-manifold rate (learned: |mu| <= 2)
  on_<kind>_correct       [M]     correct on the on-manifold start (learned: on dec_y(mu))
  on_<kind>_success       [R, M]  on-manifold restart r fooled the model (re-verified)

<kind> names a manifold ("learned", "learned_agnostic", "true"). The claim-1 folder distances/
holds `outcomes.npz` with float32 [N] arrays per manifold kind:

  <kind>_test_distance, <kind>_off_distance, <kind>_on_distance    distances to the manifold
  <kind>_leaving_sq       squared norm of the part of each regular perturbation leaving the manifold
  <kind>_perturbation_sq  squared norm of each regular perturbation
  <kind>_tangent_leaving_sq, <kind>_tangent_perturbation_sq the same for a direction along the
                          manifold at the same images (the measure's floor)
  <kind>_random_leaving_sq, <kind>_random_perturbation_sq   the same for a random direction
  <kind>_on_leaving_sq, <kind>_on_perturbation_sq           the same for on-manifold perturbations

so the off-manifold share of claim 1 is sum(leaving_sq) / sum(perturbation_sq) over images.
"""
from __future__ import annotations

import os

import numpy as np

from dmr import results

FILENAME = "outcomes.npz"


def path(directory: str) -> str:
  return os.path.join(directory, FILENAME)


def load(directory: str) -> dict[str, np.ndarray]:
  """Every array of directory/outcomes.npz ({} when there is none)."""
  try:
    with np.load(path(directory)) as f:
      return {k: f[k] for k in f.files}
  except FileNotFoundError:
    return {}


def save(directory: str, **arrays) -> str:
  """Merges `arrays` into directory/outcomes.npz (replacing keys it already has), atomically;
  returns the file's path."""
  merged = {**load(directory), **{k: np.asarray(v) for k, v in arrays.items()}}
  results.savez_atomic(path(directory), compressed=True, **merged)
  return path(directory)
