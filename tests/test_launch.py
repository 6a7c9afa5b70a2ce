"""launch/: the local sweep runner for real (two concurrent processes, one workdir), its summary
of failed jobs, and the --dry-run output of the Slurm and TPU scripts, which must need neither
sbatch nor gcloud. The multi-host run itself is tested in test_multihost.py."""
import datetime
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from dmr import results
from dmr.data import fashion_mnist
from tests.helpers import REPO, subprocess_env

LAUNCH = os.path.join(REPO, "launch")
SMOKE = "--config=configs/fashion.py:smoke"


def load_sweep_module():
  spec = importlib.util.spec_from_file_location("launch_sweep", os.path.join(LAUNCH, "sweep.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up there
  spec.loader.exec_module(module)
  return module


sweep = load_sweep_module()


@pytest.fixture
def no_cluster_tools(tmp_path):
  """PATH with sbatch, srun and gcloud stubs that fail: a dry run must not call them."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for tool in ("sbatch", "srun", "gcloud"):
    stub = bin_dir / tool
    stub.write_text(f"#!/bin/sh\necho '{tool} was called' >&2\nexit 99\n")
    stub.chmod(0o755)
  return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def run(command: list, path: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
  env = subprocess_env(PYTHON=sys.executable)
  if path:
    env["PATH"] = path
  out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
  if check:
    assert out.returncode == 0, out.stdout + out.stderr
  return out


def run_sweep(*args: str, check: bool = True) -> subprocess.CompletedProcess:
  return run([sys.executable, os.path.join(LAUNCH, "sweep.py"), *args], check=check)


def run_script(name: str, *args: str, path: str | None = None) -> str:
  return run(["bash", os.path.join(LAUNCH, name), *args], path=path).stdout


def log_interval(path: str) -> tuple[datetime.datetime, datetime.datetime]:
  """First and last absl timestamp (e.g. I1124 06:40:24.614331) of a job's log."""
  with open(path) as f:
    stamps = re.findall(r"^[IWE](\d{4} \d\d:\d\d:\d\d\.\d+)", f.read(), re.MULTILINE)
  times = [datetime.datetime.strptime(s, "%m%d %H:%M:%S.%f") for s in stamps]
  return times[0], times[-1]


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_sweep_trains_two_models_at_once_into_one_workdir(tmp_path):
  workdir = str(tmp_path / "sweep")
  out = run_sweep(SMOKE, f"--workdir={workdir}", "--variants=normal", "--sizes=200,300",
                  "--stages=classifiers", "--jobs=2", "--no-final")
  assert "Sweep: 2 jobs, 2 ok, 0 failed" in out.stdout
  assert f"Results: {workdir}/results.json" in out.stdout
  records = results.load(workdir)["records"]
  assert [(r["variant"], r["n"], r["seed"]) for r in records] == [("normal", 200, 0),
                                                                  ("normal", 300, 0)]
  assert all(0.0 < r["test_error"] < 1.0 for r in records)
  (start_a, end_a), (start_b, end_b) = (
      log_interval(os.path.join(workdir, "logs", f"normal_n{n}_seed0.log")) for n in (200, 300))
  assert max(start_a, start_b) < min(end_a, end_b), "the two jobs did not run at the same time"


def test_failed_jobs_are_reported_with_the_end_of_their_log(tmp_path, capsys):
  jobs = [sweep.Job("good", (sys.executable, "-c", "print('fine')")),
          sweep.Job("bad", (sys.executable, "-c", "print('line 1'); print('the cause'); "
                                                  "raise SystemExit(3)"))]
  outcomes = sweep.run_concurrently(jobs, str(tmp_path), concurrency=2)
  assert sorted((o.job.name, o.returncode) for o in outcomes) == [("bad", 3), ("good", 0)]
  plan = sweep.Sweep(str(tmp_path), ("normal",), (200,), (0, 1), ("classifiers",), (), (), ())
  sweep.print_summary(plan, outcomes, [], seconds=1.0)
  printed = capsys.readouterr().out
  assert "Sweep: 2 jobs, 1 ok, 1 failed" in printed
  assert f"bad failed (exit 3); the end of {tmp_path}/logs/bad.log" in printed
  assert "the cause" in printed and "Rerun the same command" in printed


def test_sweep_dry_run_prints_one_command_per_model(tmp_path):
  workdir = str(tmp_path)
  out = run_sweep(SMOKE, f"--workdir={workdir}", "--variants=normal,on_adv_learned",
                  "--sizes=200,300", "--seeds=0,1", "--jobs=2", "--config.train.epochs=2",
                  "--dry-run").stdout
  jobs = re.findall(r"^\[(\d+)\] (.*)$", out, re.MULTILINE)
  assert [int(i) for i, _ in jobs] == list(range(8))
  assert jobs[3][1] == (
      f"{sys.executable} -m dmr.main {SMOKE} --config.train.epochs=2 --workdir={workdir} "
      "'--config.variants=(\"normal\",)' '--config.training_sizes=(300,)' --config.seed=1 "
      "--config.models_per_size=1 '--config.stages=(\"classifiers\",)'")
  first, final = out.split("\n[0]")[0], out.split("[7]")[1]
  assert "'--config.stages=(\"manifolds\",)'" in first  # on_adv_learned needs the VAE-GANs
  assert "'--config.stages=(\"attacks\", \"distances\", \"report\")'" in final
  assert not list(tmp_path.iterdir())  # a dry run writes nothing
  # on_adv_learned narrowed to N=200: its N=300 jobs are not planned, normal keeps both N.
  out = run_sweep(SMOKE, f"--workdir={workdir}", "--variants=normal,on_adv_learned",
                  "--sizes=200,300", "--seeds=0,1", "--dry-run",
                  "--config.variant_training_sizes.on_adv_learned=(200,)").stdout
  names = re.findall(r"--config.variants=\(\"(\w+)\",\)' '--config.training_sizes=\((\d+),\)'",
                     out)
  assert names == [("normal", "200")] * 2 + [("normal", "300")] * 2 + [("on_adv_learned", "200")] * 2


def test_sweep_plan_and_option_errors(tmp_path):
  plan = run_sweep(SMOKE, f"--workdir={tmp_path}", "--variants=normal", "--sizes=200,300",
                   "--seeds=0,1", "--plan").stdout.split()
  assert plan == ["4", "0", "1", str(tmp_path)]  # manifolds then runs in the final run
  out = run_sweep(SMOKE, f"--workdir={tmp_path}", "--config.seed=3", "--plan", check=False)
  assert out.returncode != 0 and "--config.seed is set per job: use --seeds" in out.stderr
  out = run_sweep(SMOKE, f"--workdir={tmp_path}", "--variants=nromal", "--plan", check=False)
  assert out.returncode != 0 and "config.variants=('nromal',) is invalid" in out.stderr


def test_slurm_array_dry_run_prints_the_sbatch_commands(tmp_path, no_cluster_tools):
  workdir = tmp_path / "run"
  sweep_args = (SMOKE, f"--workdir={workdir}", "--variants=normal,on_adv_learned",
                "--sizes=200,300", "--seeds=0,1")
  out = run_script("slurm_array.sh", "--dry-run", "--max-parallel=2", "--partition=gpu", "--",
                   *sweep_args, path=no_cluster_tools)
  script, args = os.path.join(LAUNCH, "slurm_array.sh"), " ".join(sweep_args)
  manifolds, array, final = [line for line in out.splitlines() if line.startswith("sbatch ")]
  assert all("--partition=gpu" in line for line in (manifolds, array, final))
  assert manifolds.endswith(f"{script} --in-job=manifolds {args}")
  assert "--dependency=afterok:<manifolds_job_id>" in array and "--array=0-7%2" in array
  assert array.endswith(f"{script} --in-job=array {args}")
  assert "--dependency=afterok:<array_job_id>" in final
  assert final.endswith(f"{script} --in-job=final {args}")
  task = re.search(r"^\[7\] (.*)$", out, re.MULTILINE).group(1)  # what array task 7 runs
  assert "--config.variants=(\"on_adv_learned\",)" in task and "--config.seed=1" in task
  assert not workdir.exists()


def test_slurm_multihost_dry_run_starts_one_distributed_process_per_node(no_cluster_tools):
  out = run_script("slurm_multihost.sh", "--dry-run", "--nodes=4", "--", SMOKE,
                   "--workdir=/shared/run", path=no_cluster_tools)
  submit, comment, job = out.splitlines()
  assert submit.startswith("sbatch ") and "--nodes=4" in submit
  assert job == (f"srun --ntasks-per-node=1 {sys.executable} -m dmr.main {SMOKE} "
                 "--workdir=/shared/run --config.parallel.distributed=True")


def test_tpu_pod_dry_run_installs_then_runs_on_all_workers(no_cluster_tools):
  out = run_script("tpu_pod.sh", "--dry-run", "--tpu=pod", "--zone=us-central2-b",
                   "--repo=https://example.org/dmr.git", "--", SMOKE, "--workdir=/mnt/run",
                   path=no_cluster_tools)
  install, main = out.splitlines()
  ssh = "gcloud compute tpus tpu-vm ssh pod --zone=us-central2-b --worker=all"
  assert install.startswith(ssh) and "git clone -q https://example.org/dmr.git dmr" in install
  assert "pip install -q -e './dmr[tpu]'" in install.replace("'\\''", "'")
  assert main.startswith(ssh)
  assert (f"cd ~/dmr && python3 -m dmr.main {SMOKE} --workdir=/mnt/run "
          "--config.parallel.distributed=True") in main


def test_tpu_pod_copy_mode_copies_the_checkout(no_cluster_tools):
  out = run_script("tpu_pod.sh", "--dry-run", "--tpu=pod", "--zone=z", "--copy", "--background",
                   "--", SMOKE, "--workdir=/mnt/run", path=no_cluster_tools)
  assert "gcloud compute tpus tpu-vm scp" in out and "git clone" not in out
  assert "nohup python3 -m dmr.main" in out and "> ~/dmr.log" in out


@pytest.mark.parametrize("name", ["slurm_array.sh", "slurm_multihost.sh", "tpu_pod.sh"])
def test_script_help_documents_its_arguments(name):
  out = run_script(name, "--help")
  assert out.splitlines()[0] and "Usage" in out and "--dry-run" in out


def test_sweep_summary_merges_workdirs_swept_elsewhere(tmp_path, capsys):
  from tests.test_report import full_run
  here, there = tmp_path / "here", tmp_path / "there"
  full_run(here, (0, 1))
  full_run(there, (2,))
  plan = sweep.Sweep(str(here), ("normal", "on_adv_learned"), (500, 2000), (0, 1),
                     ("classifiers",), (), (), (), "fashion_mnist", (str(there),))
  sweep.print_summary(plan, [], [], seconds=1.0)
  printed = capsys.readouterr().out
  assert f"Merged report of 2 workdirs: {here}/report-merged/report.md" in printed
  # Seeds 0, 1 here and 2 there: three models per setting, so claim 3 is settled.
  assert "  claim 1: held\n  claim 2: held\n  claim 3: held\n  claim 4: not measured" in printed
  out = run_sweep(SMOKE, f"--workdir={tmp_path}", f"--merge-with={tmp_path}/nowhere", "--plan",
                  check=False)
  assert out.returncode != 0 and f"--merge-with: no results.json in {tmp_path}/nowhere" in out.stderr
