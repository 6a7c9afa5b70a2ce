"""TensorBoard event files of a run, written with tensorboardX (no TensorFlow), by process 0.

Every trained model is one TensorBoard run, named as its directory inside the workdir:
  WORKDIR/tensorboard/models/<variant>/n<N>/seed<S>/   a classifier
  WORKDIR/tensorboard/manifolds/<class or all>/        a VAE-GAN
View them with `tensorboard --logdir WORKDIR/tensorboard`. Scalars are `train/<metric>`, one per
numeric training metric of metrics.jsonl (plus `train/learning_rate`); images are grids of
images in [0, 1].
"""
from __future__ import annotations

import itertools
import os
from typing import Mapping

import jax
import numpy as np

DIRECTORY = "tensorboard"
_files = itertools.count()  # Event files of this process, in the order they were opened.


def logdir(workdir: str) -> str:
  """The directory to give `tensorboard --logdir`: WORKDIR/tensorboard."""
  return os.path.join(workdir, DIRECTORY)


def run_dir(workdir: str, model_dir: str) -> str:
  """The TensorBoard run of the model kept in `model_dir` (a directory inside `workdir`)."""
  relative = os.path.relpath(model_dir, workdir)
  if relative.startswith(os.pardir):
    raise ValueError(f"model directory {model_dir} is not inside the workdir {workdir}.")
  return os.path.join(logdir(workdir), relative)


class Writer:
  """Scalars and images of one run into `directory`; on processes other than 0 it writes nothing.

  purge_step: the first step a resumed run logs; TensorBoard hides the events an earlier,
  interrupted run wrote at or after it (they are written again), as metrics.jsonl drops them.
  """

  def __init__(self, directory: str, purge_step: int | None = None):
    self._writer = None
    if jax.process_index() == 0:
      import tensorboardX  # Here: the attack library and the loaders need no TensorBoard.
      # tensorboardX names files by the second they were opened: a suffix keeps two writers of
      # one second (training, then its images) from overwriting each other.
      suffix = f".{os.getpid()}.{next(_files):06d}"
      self._writer = tensorboardX.SummaryWriter(directory, purge_step=purge_step,
                                                filename_suffix=suffix)

  def scalars(self, step: int, values: Mapping[str, float], prefix: str = "train/") -> None:
    """One scalar `prefix + key` per numeric value (other values are skipped)."""
    if self._writer is None:
      return
    for key, value in values.items():
      if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        self._writer.add_scalar(prefix + key, float(value), step)

  def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """One grid per tag of images [n, H, W, C] with values in [0, 1]."""
    if self._writer is None:
      return
    for tag, batch in images.items():
      batch = np.clip(np.asarray(batch, np.float32), 0.0, 1.0)
      if batch.ndim != 4:
        raise ValueError(f"images {tag!r} have shape {batch.shape}; expected [n, H, W, C].")
      self._writer.add_images(tag, batch, step, dataformats="NHWC")

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()

  def __enter__(self) -> "Writer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def write_images(workdir: str, model_dir: str, images: Mapping[str, np.ndarray],
                 step: int) -> None:
  """Adds image grids {tag: [n, H, W, C] in [0, 1]} to the run of the model in `model_dir`,
  e.g. a VAE-GAN's reconstructions or a classifier's adversarial examples."""
  with Writer(run_dir(workdir, model_dir)) as writer:
    writer.images(step, images)
