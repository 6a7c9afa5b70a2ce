"""The paper's optimizer: Adam (betas 0.5, 0.9) with coupled L2 and per-batch exponential decay."""
from __future__ import annotations

import optax


def paper_schedule(learning_rate: float, decay: float, steps_per_epoch: int) -> optax.Schedule:
  """lr * decay ** (step / steps_per_epoch): docs/protocol.md#classifier-training: lr * decay^(epoch + batch/num_batches)."""
  return optax.exponential_decay(learning_rate, transition_steps=steps_per_epoch,
                                 decay_rate=decay)


def paper_adam(learning_rate: float, decay: float, steps_per_epoch: int, b1: float = 0.5,
               b2: float = 0.9, weight_decay: float = 1e-4) -> optax.GradientTransformation:
  """Adam with weight decay added to the gradient before the moments (PyTorch's Adam, not AdamW)."""
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.scale_by_adam(b1=b1, b2=b2, eps=1e-8),
      optax.scale_by_learning_rate(paper_schedule(learning_rate, decay, steps_per_epoch)),
  )
