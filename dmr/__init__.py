"""dmr: adversarial robustness and generalization on (learned and known) data manifolds, in JAX.

`dmr.load_classifier` and `dmr.load_manifold` (dmr.loaders) give a run's trained models as JAX
functions, read from the inference exports their training wrote (the stages load them the same
way, dmr.train.classifier.load); they are imported on first use, so `import dmr.attacks` stays
light.
"""
__version__ = "0.1.0"

_LOADERS = ("load_classifier", "load_manifold")


def __getattr__(name: str):
  if name in _LOADERS:
    from dmr import loaders
    return getattr(loaders, name)
  raise AttributeError(f"module 'dmr' has no attribute {name!r}")
