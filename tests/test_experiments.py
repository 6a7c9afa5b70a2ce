"""The stages' own helpers (the stages themselves run end to end in tests/test_pipeline.py)."""
from dmr import experiments, manifolds
from dmr.specs import RunSpec, VaeganSpec
from tests.helpers import get_config


def test_a_stage_hands_the_library_specs_not_the_config(monkeypatch, tmp_path):
  received = []
  monkeypatch.setattr(manifolds, "train_all", lambda *args: received.append(args))
  monkeypatch.setattr(RunSpec, "load_dataset", lambda self: "the dataset")
  config = get_config("fashion", "smoke")
  experiments.STAGES["manifolds"](config, str(tmp_path), "the mesh")
  ((spec, ds, workdir, mesh),) = received
  assert isinstance(spec, VaeganSpec) and spec == RunSpec.from_config(config).vaegan
  assert (ds, workdir, mesh) == ("the dataset", str(tmp_path), "the mesh")
