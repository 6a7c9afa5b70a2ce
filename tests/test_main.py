"""End-to-end smoke run of `python -m dmr.main` on real Fashion-MNIST: the run contract."""
import json
import os
import subprocess
import sys

import jax
import pytest

from dmr import config as dmr_config
from dmr import errors, fingerprint, main, results
from dmr.config import command_line
from dmr.data import fashion_mnist
from tests.helpers import CLASSIFIERS_ONLY, REPO, main_command, run_main, subprocess_env
from tests.test_config import get_config


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_smoke_run_writes_the_run_contract(tmp_path):
  workdir = str(tmp_path)
  out = run_main(workdir, *CLASSIFIERS_ONLY, "--config.training_sizes=(500,)",
                 "--config.train.epochs=2")
  assert f"Results: {workdir}/results.json" in out.stdout
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  assert config["dataset"] == "fashion_mnist" and config["training_sizes"] == [500]
  with open(os.path.join(workdir, "results.json")) as f:
    records = json.load(f)["records"]
  assert [(r["variant"], r["n"], r["seed"]) for r in records] == [("normal", 500, 0)]
  # 500 real images, 2 epochs: far better than chance (0.9), far from perfect.
  assert 0.05 < records[0]["test_error"] < 0.5
  metrics_file = os.path.join(workdir, "models", "normal", "n500", "seed0", "metrics.jsonl")
  with open(metrics_file) as f:
    metrics = [json.loads(line) for line in f]
  assert metrics[-1]["step"] == 10 and metrics[-1]["loss"] < metrics[0]["loss"]


# --- Checks before any work: one line, exit status 2 -----------------------------------------

def run_failing(workdir, *overrides, config="configs/fashion.py:smoke"):
  out = subprocess.run(main_command(str(workdir), *overrides, config=config), cwd=REPO,
                       env=subprocess_env(), capture_output=True, text=True, timeout=300)
  return out.returncode, out.stderr


@pytest.mark.parametrize("overrides, message", [
    (("--config.nope=1",), "error: --config.nope=1: the config has no field 'nope'."),
    (("--config.train.epochz=3",), "error: --config.train.epochz=3: the config has no field "
                                   "'train.epochz'. Did you mean: train.epochs"),
    (("--config.variants=('normal','of_adv')",), "Did you mean: off_adv"),
    (("--config.data.dir=/no/such/dir",), "error: The Fashion-MNIST directory /no/such/dir does "
                                          "not exist."),
])
def test_user_errors_print_one_line_and_exit_2(tmp_path, overrides, message):
  status, stderr = run_failing(tmp_path / "run", *overrides)
  assert status == 2
  assert message in stderr and "Traceback" not in stderr
  assert not os.path.exists(tmp_path / "run" / "config.json")


@pytest.mark.parametrize("overrides", [(), ("--config.train.epochs=3",)])
def test_a_mistyped_preset_is_one_line_with_close_matches(tmp_path, overrides):
  """Loaded at the first access, or while parsing the overrides: the same one line."""
  status, stderr = run_failing(tmp_path / "run", *overrides, config="configs/fashion.py:quikc")
  assert status == 2 and "Traceback" not in stderr
  assert stderr.strip() == ("error: --config=configs/fashion.py:quikc: preset='quikc'; allowed: "
                            "('paper', 'claims', 'quick', 'smoke'). Did you mean: quick?")
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_corrupt_results_json_is_named_with_the_way_out(tmp_path):
  (tmp_path / "results.json").write_text('{"records": [')
  status, stderr = run_failing(tmp_path, *CLASSIFIERS_ONLY)
  assert status == 2 and "Traceback" not in stderr
  assert f"error: {tmp_path}/results.json is not valid JSON" in stderr
  assert "move it away and rerun the same command" in stderr


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_a_run_that_cannot_finish_is_refused_before_any_work(tmp_path):
  # The paper preset's on_adv_learned models need VAE-GANs that neither the workdir nor the run
  # has: refused at once, not after hours of training normal and off_adv.
  status, stderr = run_failing(tmp_path, "--config.stages=('classifiers',)",
                               config="configs/fashion.py")
  assert status == 2 and "Traceback" not in stderr
  assert "error: the classifiers stage needs VAE-GANs (on_adv_learned n=250 seed=0" in stderr
  assert "add the manifolds stage" in stderr
  assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_dry_run_prints_every_unit_with_its_steps_and_writes_nothing(tmp_path):
  out = run_main(str(tmp_path / "run"), "--dry_run")
  lines = out.stdout.splitlines()
  assert lines[0].split() == ["stage", "unit", "status", "steps", "inputs"]
  units = [line.split()[:2] for line in lines[1:-1]]
  assert len(units) == 11 + 3 + 3 + 1 + 1  # VAE-GANs, classifiers, attacks, distances, report
  # smoke: 200 images, batch 100, 1 epoch -> 2 steps; attacks: 40 images in one batch, 3 steps x
  # 2 restarts, off and on the manifold -> 12.
  assert "classifiers off_adv n=200 seed=0 to do 2 data" in [" ".join(l.split()) for l in lines]
  assert "attacks normal n=200 seed=0 to do 12 a trained classifier, data, VAE-GANs" in [
      " ".join(l.split()) for l in lines]
  assert lines[-1].startswith("19 of 19 units to do")
  assert not os.path.exists(tmp_path / "run")


def test_print_config_gives_every_field_a_meaning():
  for dataset in ("fashion", "fonts"):
    text = command_line.describe(get_config(dataset, "smoke"))
    assert "(no description)" not in text
    assert "* train.learning_rate = 0.01" in text
    assert "  train.log_every_steps = 1" in text  # Not in the fingerprint.
  fields = fingerprint.flat_fields(get_config("fonts", "smoke"))
  assert len(text.splitlines()) == 1 + len(fields)


def test_print_config_runs_without_a_workdir():
  out = subprocess.run([sys.executable, "-m", "dmr.main", "--config=configs/fashion.py:smoke",
                        "--print_config", "--config.train.epochs=7"], cwd=REPO,
                       env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert "* train.epochs = 7" in out.stdout and "# classifier training epochs" in out.stdout


# --- Fingerprint ---------------------------------------------------------------------------

TINY = CLASSIFIERS_ONLY + ("--config.training_sizes=(100,)",)


@pytest.mark.slow  # two runs end to end; tests/test_fingerprint.py covers the differences
@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_rerun_under_other_settings_is_refused_or_grouped_apart(tmp_path):
  workdir = str(tmp_path)
  first = run_main(workdir, *TINY)
  digest = json.loads((tmp_path / "fingerprint.json").read_text())["digest"]
  (record,) = results.load(workdir)["records"]
  assert record["fingerprint"] == digest
  # The end of the run: time per stage (also in profile.json), where the results are.
  assert "Time per stage: classifiers " in first.stdout
  (profile,) = json.loads((tmp_path / "profile.json").read_text())["runs"]
  assert list(profile["stages"]) == ["classifiers"] and profile["total"] > 0

  before = (tmp_path / "results.json").read_text()
  status, stderr = run_failing(workdir, *TINY, "--config.train.learning_rate=0.02")
  assert status == 2 and "Traceback" not in stderr
  assert "train.learning_rate: 0.01 -> 0.02" in stderr
  assert "Use a new --workdir, or pass --config_drift=new_group" in stderr
  assert (tmp_path / "results.json").read_text() == before

  # Settings that change no result (logging, sizes) pass the check.
  run_main(workdir, *TINY, "--config.train.log_every_steps=5")
  assert (tmp_path / "results.json").read_text() == before

  run_main(workdir, *TINY, "--config.train.learning_rate=0.02", "--config_drift=new_group")
  (group,) = os.listdir(tmp_path / "groups")
  (new,) = results.load(str(tmp_path / "groups" / group))["records"]
  assert new["fingerprint"] == group != digest
  assert new["test_error"] != record["test_error"]
  assert (tmp_path / "results.json").read_text() == before


def test_summary_prints_the_verdicts_the_report_stage_wrote(tmp_path):
  workdir = str(tmp_path)
  assert "Claim" not in main.summary(workdir, {"classifiers": 2.0})  # No report yet.
  (tmp_path / "report").mkdir()
  claims = [{"claim": 1, "verdict": "held", "interval_text": "share 87% [83, 90]", "reason": ""},
            {"claim": 4, "verdict": "unsettled", "interval_text": "",
             "reason": "needs the known manifold"}]
  (tmp_path / "report" / "claims.json").write_text(json.dumps(
      {"groups": [{"fingerprint": "abc", "workdirs": [workdir], "models": 2, "claims": claims}]}))
  lines = main.summary(workdir, {"classifiers": 2.0, "report": 0.5}).splitlines()
  assert lines == [
      f"Time per stage: classifiers 2.0 s, report 0.5 s (total 2.5 s; {workdir}/profile.json)",
      "Claim 1: held share 87% [83, 90]", "Claim 4: unsettled (needs the known manifold)",
      f"Results: {workdir}/results.json"]


@pytest.mark.parametrize("field, value, suggestion", [
    ("dataset", "fashion_mnst", "Did you mean: fashion_mnist?"),
    ("stages", ("manifolds", "clasifiers"), "Did you mean: classifiers?"),
    ("variants", ("normal", "stn_adversarial"), "Did you mean: stn_adv"),
])
def test_invalid_names_are_user_errors_with_close_matches(field, value, suggestion):
  config = get_config("fashion", "smoke")
  config[field] = value
  with pytest.raises(errors.UserError, match=f"config.{field}=.* is invalid; allowed: .*"
                                             f"{suggestion}"):
    dmr_config.validate(config)


def test_compilation_cache_goes_where_asked_unless_the_environment_says(monkeypatch, tmp_path):
  before = jax.config.jax_compilation_cache_dir
  try:
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    main.enable_compilation_cache(str(tmp_path / "cache"))
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
    main.enable_compilation_cache("")  # Disabled: left as it was.
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
    main.enable_compilation_cache(str(tmp_path / "flag"))
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
  finally:
    jax.config.update("jax_compilation_cache_dir", before)
