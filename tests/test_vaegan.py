"""VAE-GAN: the paper's architecture at both input sizes, its layers, training, resume, stage."""
import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dmr import config as dmr_config
from dmr import parallel, results, specs
from dmr.manifolds import vaegans
from dmr.data.dataset import Dataset
from dmr.models import layers, vaegan
from dmr.train import loop
from dmr.train import vaegan as training
from tests.test_config import get_config

TINY = dict(latent_dim=4, channels=4, discriminator_channels=4)


@pytest.mark.parametrize("shape, sizes", [((28, 28, 1), [(14, 14), (7, 7), (3, 3)]),
                                          ((56, 48, 3), [(28, 24), (14, 12), (7, 6), (3, 3)])])
def test_shapes_follow_the_classifier_conv_stack(shape, sizes):
  """Shapes only (jax.eval_shape: nothing is compiled)."""
  nets = vaegan.make_vaegan(shape, latent_dim=10)
  x, z, key = jnp.zeros((2,) + shape), jnp.zeros((2, 10)), jax.random.key(1)
  enc, dec, disc = (jax.eval_shape(nets.encoder.init, key, x),
                    jax.eval_shape(nets.decoder.init, key, z),
                    jax.eval_shape(nets.discriminator.init, key, x))
  mu, log_var = jax.eval_shape(nets.encoder.apply, enc, x)
  assert mu.shape == log_var.shape == (2, 10)
  assert jax.eval_shape(nets.decoder.apply, dec, z).shape == (2,) + shape
  assert jax.eval_shape(nets.discriminator.apply, disc, x).shape == (2, 1)
  depth, top = len(sizes), 64 * 2**(len(sizes) - 1)
  assert layers.conv_stack_sizes(*shape[:2])[1:] == sizes
  assert [enc["params"][f"Conv_{i}"]["kernel"].shape for i in range(depth)] == [
      (4, 4, shape[2] if i == 0 else 64 * 2**(i - 1), 64 * 2**i) for i in range(depth)]
  assert [disc["params"][f"Conv_{i}"]["kernel"].shape[:2] for i in range(depth)] == [(6, 6)] * depth
  assert dec["params"]["Dense_0"]["kernel"].shape == (10, 3 * 3 * top)  # 3*3*256 for 28x28.
  assert dec["params"][f"TransposedConv_{depth - 1}"]["Conv_0"]["kernel"].shape == (
      3, 3, 64, 4 * shape[2])  # Kernel 6, stride 2: 4 phases of 3x3 taps.


def torch_conv_transpose(x, w, out_size):
  """PyTorch's ConvTranspose2d(kernel 6, stride 2, padding 2), written out: x [h, w, C],
  w [6, 6, C, F] -> [*out_size, F]."""
  out = np.zeros(tuple(out_size) + (w.shape[-1],))
  for i in range(x.shape[0]):
    for j in range(x.shape[1]):
      for ti in range(6):
        for tj in range(6):
          o, p = 2 * i - 2 + ti, 2 * j - 2 + tj
          if 0 <= o < out_size[0] and 0 <= p < out_size[1]:
            out[o, p] += x[i, j] @ w[ti, tj]
  return out


@pytest.mark.parametrize("size, target", [((3, 3), (7, 6)), ((4, 5), (8, 11))])
def test_decoder_layer_is_pytorchs_transposed_conv(size, target):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1,) + size + (2,)).astype(np.float32)
  w = rng.normal(size=(6, 6, 2, 3)).astype(np.float32)
  # Phase (a, b) of output (2m + a, 2n + b) takes tap (4 - 2u + a, 4 - 2v + b) at offset (u, v).
  phases = np.zeros((3, 3, 2, 2, 2, 3), np.float32)
  for u in range(3):
    for v in range(3):
      for a in range(2):
        for b in range(2):
          phases[u, v, :, a, b] = w[4 - 2 * u + a, 4 - 2 * v + b]
  layer = vaegan.TransposedConv(3, target, use_bias=False)
  y = layer.apply({"params": {"Conv_0": {"kernel": phases.reshape(3, 3, 2, 12)}}}, x)
  np.testing.assert_allclose(y[0], torch_conv_transpose(x[0], w, target), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, kernel", [((2, 7, 7, 8), 4), ((2, 7, 6, 8), 6)])
def test_strided_conv_equals_flax_conv(shape, kernel):
  """Sizes where the conv windows leave a row unused (7 -> 3), the case it exists for."""
  x = jax.random.normal(jax.random.key(0), shape)
  pad = layers.same_padding(kernel)
  reference = nn.Conv(5, (kernel, kernel), strides=2, padding=((pad, pad), (pad, pad)),
                      use_bias=False)
  kernel_weights = np.random.default_rng(0).normal(size=(kernel, kernel, shape[-1], 5))
  variables = {"params": {"kernel": jnp.asarray(kernel_weights, jnp.float32)}}
  np.testing.assert_allclose(jax.jit(layers.StridedConv(5, kernel).apply)(variables, x),
                             jax.jit(reference.apply)(variables, x), rtol=1e-5, atol=1e-5)


def test_strided_conv_initializes_as_flax_conv():
  x = jnp.zeros((1, 7, 7, 2))
  reference = nn.Conv(3, (4, 4), strides=2, padding=((1, 1), (1, 1)), use_bias=False)
  np.testing.assert_array_equal(
      layers.StridedConv(3, 4).init(jax.random.key(3), x)["params"]["kernel"],
      reference.init(jax.random.key(3), x)["params"]["kernel"])


def blob_images(n, key=0):
  """n smooth 28x28x1 images: a bright ellipse at a random place, of random size."""
  rng = np.random.default_rng(key)
  yy, xx = np.mgrid[0:28, 0:28] / 27.0
  c, r = rng.uniform(0.3, 0.7, (n, 2)), rng.uniform(0.1, 0.3, (n, 2))
  d = ((yy - c[:, :1, None]) / r[:, :1, None])**2 + ((xx - c[:, 1:, None]) / r[:, 1:, None])**2
  return np.clip(1.5 - d, 0, 1).astype(np.float32)[..., None]


def blob_dataset():
  """3 classes of blobs, 40 training and 10 test images each."""
  return Dataset("blobs", blob_images(120, key=2), np.arange(120, dtype=np.int32) % 3,
                 blob_images(30, key=3), np.arange(30, dtype=np.int32) % 3, 3)


def tiny_spec(**changes) -> specs.VaeganSpec:
  """Tiny nets; 32 images per model in batches of 16, 2 epochs: 4 steps. Every model (and test)
  shares one optimizer and train step, so one compilation."""
  config = get_config("fashion", "smoke")
  config.vaegan.update(TINY, max_train_images=32, batch_size=16, epochs=2,
                       checkpoint_every_steps=2, beta_agnostic=config.vaegan.beta)
  return dataclasses.replace(specs.RunSpec.from_config(config).vaegan, **changes)


def tiny_step():
  """(host state, step): step(state, x, y, w, key) runs the train step compiled exactly as
  run_epochs compiles it (same mesh, shardings and donation), so all tests share one program."""
  spec = tiny_spec()
  nets = vaegans.make_nets(spec, (28, 28, 1))
  tx, train_step = vaegans.optimizer_and_step(spec, nets, "0", 32)
  mesh = parallel.data_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  jitted = jax.jit(train_step, donate_argnums=(0,), out_shardings=(replicated, replicated))

  def step(state, x, y, w, key):
    return jitted(parallel.replicate(state, mesh), *parallel.shard_batch((x, y, w), mesh), key)

  return training.init_state(nets, tx, jax.random.key(0), (28, 28, 1)), step


def test_training_steps_lower_the_reconstruction_error_on_a_fixed_batch():
  state, step = tiny_step()
  x, y, w = blob_images(16), np.zeros(16, np.int32), np.ones(16, np.float32)
  history = []
  for i in range(25):
    state, metrics = step(state, x, y, w, jax.random.key(i))
    history.append({k: float(v) for k, v in metrics.items()})
  first, last = history[0], history[-1]
  assert int(state.step) == 25
  assert last["l1"] < 0.65 * first["l1"], (first, last)
  assert last["loss"] < first["loss"]
  assert all(np.isfinite(list(h.values())).all() for h in history)
  assert 0.0 <= last["discriminator_accuracy"] <= 1.0


def test_padding_rows_change_nothing():
  """Rows of weight 0 enter neither the losses nor the BatchNorm statistics: whatever they hold,
  the metrics and the new statistics are the same (the first Adam step is lr * sign(gradient),
  so the parameters would only show float noise in near-zero gradients)."""
  state, step = tiny_step()
  state = parallel.to_host(state)
  x, y = blob_images(16), np.zeros(16, np.int32)
  w = np.r_[np.ones(12), np.zeros(4)].astype(np.float32)
  garbage = x.copy()
  garbage[12:] = np.random.default_rng(0).uniform(size=x[12:].shape)
  ref, ref_metrics = step(state, x, y, w, jax.random.key(5))
  other, metrics = step(state, garbage, y, w, jax.random.key(5))
  assert ref_metrics["l1"] > 0
  for k in ref_metrics:
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               ref.batch_stats, other.batch_stats)


def test_kill_mid_epoch_then_resume_ends_bit_identical(tmp_path, monkeypatch):
  """A run killed after step 3 (its last checkpoint: step 2) and run again equals an
  uninterrupted run: parameters, batch statistics and optimizer state, bit for bit."""
  spec, ds, mesh = tiny_spec(), blob_dataset(), parallel.data_mesh()
  reference = parallel.to_host(vaegans.train_vaegan(spec, ds, "1", str(tmp_path / "a"),
                                                             mesh))
  check_finite = loop.check_finite

  def killed_after_step_3(metrics, desc, step, last):
    if step == 3:
      raise KeyboardInterrupt("killed")
    return check_finite(metrics, desc, step, last)

  monkeypatch.setattr(loop, "check_finite", killed_after_step_3)
  with pytest.raises(KeyboardInterrupt):
    vaegans.train_vaegan(spec, ds, "1", str(tmp_path / "b"), mesh)
  monkeypatch.setattr(loop, "check_finite", check_finite)
  resumed = parallel.to_host(vaegans.train_vaegan(spec, ds, "1", str(tmp_path / "b"),
                                                           mesh))
  assert int(reference.step) == int(resumed.step) == 4
  jax.tree.map(np.testing.assert_array_equal, reference, resumed)
  directory = vaegans.vaegan_dir(str(tmp_path / "b"), "1")
  assert [r["step"] for r in loop.read_metrics(os.path.join(directory, "metrics.jsonl"))] == [
      1, 2, 3, 4]


def test_manifolds_stage_trains_measures_skips_and_loads(tmp_path):
  spec, ds, workdir, mesh = tiny_spec(epochs=1), blob_dataset(), str(tmp_path), parallel.data_mesh()
  qualities = vaegans.train_all(spec, ds, workdir, mesh)
  assert sorted(qualities) == ["0", "1", "2", "all"]
  for name, quality in qualities.items():
    directory = vaegans.vaegan_dir(workdir, name)
    assert {"checkpoints", "metrics.jsonl", "latent_box.npz", "samples.png",
            "quality.json"} <= set(os.listdir(directory))
    assert quality["images"] == (30 if name == "all" else 10)
    assert 0 < quality["l2"] < quality["l1"] and 0 <= quality["discriminator_accuracy"] <= 1
    assert quality["pair_l2"] > 0 and 0 <= quality["train_codes_within_2"] <= 1
    # 32 training images (the agnostic one: the first 32 of all), batch 16, 1 epoch.
    assert [r["step"] for r in loop.read_metrics(os.path.join(directory, "metrics.jsonl"))] == [
        1, 2]
  assert sorted(qualities["all"]["per_class"]) == ["0", "1", "2"]
  assert results.load(workdir)["manifold"]["vaegan_quality"] == json.loads(json.dumps(qualities))

  quality_file = os.path.join(vaegans.vaegan_dir(workdir, "1"), "quality.json")
  stamp = os.path.getmtime(quality_file)
  assert vaegans.train_all(spec, ds, workdir, mesh) == qualities  # Skips, same result.
  assert os.path.getmtime(quality_file) == stamp

  manifolds = vaegans.load_vaegans(spec, workdir, ds)
  assert len(manifolds.classes) == 3
  call = jax.jit(lambda fn, x: fn(x))  # One compilation for every class.
  x = ds.x_test[:5]
  codes = call(manifolds.classes[1].encode_fn, x)
  lo, hi = manifolds.classes[1].box
  assert codes.shape == (5, 4) and lo.shape == hi.shape == (4,) and bool(jnp.all(lo < hi))
  assert call(manifolds.agnostic.decode_fn, codes).shape == x.shape
  # The loaded encoder gives the codes the stage took the box of.
  train_codes = call(manifolds.classes[1].encode_fn, ds.x_train[ds.y_train == 1][:32])
  np.testing.assert_allclose(jnp.min(train_codes, 0), lo, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jnp.max(train_codes, 0), hi, rtol=1e-5, atol=1e-5)


def test_loading_an_untrained_vaegan_says_what_to_run(tmp_path):
  with pytest.raises(FileNotFoundError, match="run the manifolds stage first"):
    vaegans.load_vaegans(tiny_spec(), str(tmp_path), blob_dataset())


@pytest.mark.parametrize("field, value, message", [
    ("max_train_images", 0, "config.vaegan.max_train_images=0 is invalid; allowed: None"),
    ("latent_dim", 0, "config.vaegan.latent_dim=0 is invalid; allowed: a positive integer"),
    ("lr_decay", 1.5, r"config.vaegan.lr_decay=1.5 is invalid; allowed: a number in \(0, 1\]"),
    ("beta_agnostic", -1.0, "config.vaegan.beta_agnostic=-1.0 is invalid; allowed: a number > 0"),
])
def test_invalid_vaegan_settings_name_the_field(field, value, message):
  config = get_config("fashion", "smoke")
  config.vaegan[field] = value
  with pytest.raises(ValueError, match=message):
    dmr_config.validate(config)


def test_paper_vaegan_settings_follow_the_paper():
  fashion, emnist, celeba = (get_config(name).vaegan for name in ("fashion", "emnist", "celeba"))
  assert (fashion.latent_dim, fashion.epochs, fashion.beta, fashion.beta_agnostic) == (
      10, 60, 2.75, 3)
  assert (emnist.epochs, emnist.beta, emnist.beta_agnostic) == (30, 2.25, 3)
  assert (celeba.latent_dim, celeba.epochs, celeba.beta) == (25, 30, 3)
  assert (fashion.learning_rate, fashion.lr_decay, fashion.b1, fashion.b2, fashion.weight_decay,
          fashion.batch_size, fashion.channels, fashion.gamma) == (0.005, 0.9, 0.5, 0.9, 1e-4, 100,
                                                                   64, 1)
  assert get_config("fashion", "quick").vaegan.epochs == 2  # Presets keep their reductions.
