"""Local sweep: the (variant, N, seed) models of one config, trained by concurrent processes that
share one workdir.

  python launch/sweep.py --config=configs/fashion.py:quick --workdir=runs/sweep \
      --variants=normal,off_adv --sizes=1000,5000 --seeds=0,1,2 --jobs=2 [--config.x=y ...]

Each job is one `python -m dmr.main` process for one model:
  --config.variants='("v",)' --config.training_sizes='(n,)' --config.seed=s
  --config.models_per_size=1 --config.stages='("classifiers",)'   (the stages of --stages)
It runs in three steps, each process logging to WORKDIR/logs/<name>.log:
  1. the manifolds stage alone, once, when a job needs the VAE-GANs (variant on_adv_learned, or
     --stages beyond classifiers) and the config's stages include it;
  2. the jobs, at most --jobs at a time, in the order variant, N, seed (job index 0, 1, ...),
     each variant at its N (--config.variant_training_sizes.<variant>=... narrows them);
  3. once every job succeeded, one run of the config's remaining stages over all models (e.g.
     attacks, distances, report; finished work is skipped), unless --no-final.
Then it prints a summary: jobs ok and failed, times, where the results are, the verdict of each
claim (once the report stage ran), and the last log lines of every failed job. Rerunning the same command skips finished models and resumes
unfinished ones; results.json is merged under a file lock, so the processes share the workdir.

Options (defaults come from the config):
  --config=FILE[:preset]   config file, as for dmr.main
  --workdir=DIR            the shared workdir
  --variants=a,b           variants to train (default: config.variants)
  --sizes=n1,n2            training set sizes N (default: config.training_sizes)
  --seeds=s1,s2            seeds, one model each (default: config.seed + i, i < models_per_size)
  --jobs=K                 concurrent jobs (default 1; each process uses all local devices)
  --stages=a,b             stages of every job (default: classifiers)
  --no-final               skip step 3
  --dry-run                print the commands instead of running them
  --merge-with=DIR,...     workdirs of the same config swept elsewhere (other seeds, machines):
                           after the sweep, one report over all of them into WORKDIR/report-merged,
                           its intervals recomputed from every model's per-image outcomes
  --config.x=y             any other config override, passed to every process;
                           --config.stages=... sets the stages of the whole sweep
  (Slurm, see launch/slurm_array.sh) --plan, --job-index=I, --only=manifolds|final
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time

from absl import flags
from ml_collections import config_flags

from dmr import config as dmr_config
from dmr import report, results

# Config fields every command sets itself: the sweep's options set them, not --config.x=y.
SWEPT_FIELDS = {"variants": "--variants", "training_sizes": "--sizes", "seed": "--seeds",
                "models_per_size": "--seeds"}
OVERRIDE = re.compile(r"--config\.([\w.]+)=")
LOG_TAIL_LINES = 15


@dataclasses.dataclass(frozen=True)
class Job:
  name: str  # the log file's stem
  command: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Sweep:
  workdir: str
  variants: tuple[str, ...]
  sizes: tuple[int, ...]
  seeds: tuple[int, ...]
  job_stages: tuple[str, ...]
  first_stages: tuple[str, ...]  # run once before the jobs: () or ("manifolds",)
  final_stages: tuple[str, ...]  # run once after the jobs: () to skip
  shared_args: tuple[str, ...]  # --config=... and the pass-through overrides
  dataset: str = "fashion_mnist"
  merge_with: tuple[str, ...] = ()  # other workdirs merged into WORKDIR/report-merged
  settings: tuple[tuple[str, int], ...] = ()  # (variant, N) of the jobs: training_sizes_of


def comma_list(item_type):
  return lambda text: tuple(item_type(item) for item in text.split(",") if item)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """The sweep's options and the --config.x=y overrides to pass through."""
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      allow_abbrev=False, usage="%(prog)s --config=FILE[:preset] --workdir=DIR [options]")
  parser.add_argument("--config", required=True, help="config file, e.g. configs/fashion.py:quick")
  parser.add_argument("--workdir", required=True, help="the workdir all jobs share")
  parser.add_argument("--variants", type=comma_list(str), help="default: config.variants")
  parser.add_argument("--sizes", type=comma_list(int), help="default: config.training_sizes")
  parser.add_argument("--seeds", type=comma_list(int),
                      help="default: config.seed + i for i < config.models_per_size")
  parser.add_argument("--jobs", type=int, default=1, help="concurrent jobs (default 1)")
  parser.add_argument("--stages", type=comma_list(str), default=("classifiers",),
                      help="stages of every job (default: classifiers)")
  parser.add_argument("--no-final", action="store_true", help="skip the final run")
  parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
  parser.add_argument("--merge-with", type=comma_list(str), default=(),
                      help="workdirs swept elsewhere, merged into WORKDIR/report-merged")
  parser.add_argument("--plan", action="store_true",
                      help='print "<jobs> <manifolds first: 0|1> <final run: 0|1> <workdir>"')
  parser.add_argument("--job-index", type=int, help="run only job I (a Slurm array task)")
  parser.add_argument("--only", choices=("manifolds", "final"),
                      help="run only the manifolds stage before the jobs, or the final run")
  args, overrides = parser.parse_known_args(argv)
  for arg in overrides:
    match = OVERRIDE.match(arg)
    if not match:
      parser.error(f"unknown argument {arg!r}: config overrides take the form --config.x=y")
    if match.group(1) in SWEPT_FIELDS:
      parser.error(f"{arg.split('=')[0]} is set per job: use {SWEPT_FIELDS[match.group(1)]}")
  if args.jobs < 1:
    parser.error(f"--jobs={args.jobs} must be >= 1")
  return args, overrides


def load_config(config_arg: str, overrides: list[str]):
  """The config of `config_arg` with the overrides applied, as dmr.main would see it."""
  argv = [sys.argv[0], f"--config={config_arg}", *overrides]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config file", flag_values=flag_values,
                                  sys_argv=argv)
  flag_values(argv)
  return flag_values.config


def needs_manifolds_first(variants, job_stages) -> bool:
  """Whether jobs read the VAE-GANs: on_adv_learned training or any stage after classifiers."""
  return "on_adv_learned" in variants or any(s != "classifiers" for s in job_stages)


def plan_sweep(args: argparse.Namespace, overrides: list[str]) -> Sweep:
  """The sweep the options describe; raises ValueError on an invalid config or option."""
  config = load_config(args.config, overrides)
  allowed = dmr_config.STAGES[1:]  # manifolds runs once, not per job
  if "classifiers" not in args.stages or not set(args.stages) <= set(allowed):
    raise ValueError(f"--stages={','.join(args.stages)}: each job trains its model, so the stages "
                     f"include classifiers, and are among {allowed}")
  variants = args.variants or tuple(config.variants)
  seeds = args.seeds or tuple(config.seed + i for i in range(config.models_per_size))
  swept = config.copy_and_resolve_references()
  swept.variants, swept.training_sizes = variants, args.sizes or tuple(config.training_sizes)
  dmr_config.validate(swept)
  first = ("manifolds",) if ("manifolds" in config.stages
                              and needs_manifolds_first(variants, args.stages)) else ()
  final = tuple(s for s in config.stages if s not in args.stages + first)
  shared = (f"--config={args.config}",) + tuple(
      o for o in overrides if not o.startswith("--config.stages="))
  missing = [w for w in args.merge_with if not os.path.exists(results.path(w))]
  if missing:
    raise ValueError(f"--merge-with: no results.json in {', '.join(missing)}")
  return Sweep(os.path.abspath(args.workdir), variants, tuple(swept.training_sizes), seeds,
               tuple(args.stages), first, () if args.no_final else final, shared,
               config.dataset, tuple(os.path.abspath(w) for w in args.merge_with),
               tuple((v, n) for v in variants for n in dmr_config.training_sizes_of(swept, v)))


def tuple_literal(values) -> str:
  """A Python tuple literal with double-quoted strings, e.g. ("normal",) or (200, 300)."""
  items = [json.dumps(v) for v in values]
  return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def main_command(sweep: Sweep, variants, sizes, seed: int, models_per_size: int,
                 stages) -> tuple[str, ...]:
  return (sys.executable, "-m", "dmr.main", *sweep.shared_args, f"--workdir={sweep.workdir}",
          f"--config.variants={tuple_literal(variants)}",
          f"--config.training_sizes={tuple_literal(sizes)}", f"--config.seed={seed}",
          f"--config.models_per_size={models_per_size}",
          f"--config.stages={tuple_literal(stages)}")


def model_jobs(sweep: Sweep) -> list[Job]:
  """One job per (variant, N, seed), in this order: the job index of Slurm array tasks."""
  return [Job(f"{v}_n{n}_seed{s}", main_command(sweep, (v,), (n,), s, 1, sweep.job_stages))
          for v, n in sweep.settings for s in sweep.seeds]


def all_models_job(sweep: Sweep, name: str, stages) -> Job | None:
  """A run of `stages` over every model of the sweep (None without stages)."""
  if not stages:
    return None
  return Job(name, main_command(sweep, sweep.variants, sweep.sizes, sweep.seeds[0],
                                len(sweep.seeds), stages))


def first_job(sweep: Sweep) -> Job | None:
  return all_models_job(sweep, "manifolds", sweep.first_stages)


def final_job(sweep: Sweep) -> Job | None:
  return all_models_job(sweep, "final", sweep.final_stages)


def log_path(workdir: str, job: Job) -> str:
  return os.path.join(workdir, "logs", f"{job.name}.log")


@dataclasses.dataclass(frozen=True)
class Outcome:
  job: Job
  returncode: int
  seconds: float


def run_logged(job: Job, workdir: str) -> Outcome:
  """Runs job with stdout and stderr appended to its log file."""
  path = log_path(workdir, job)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  start = time.monotonic()
  with open(path, "a") as log:
    log.write(f"$ {shlex.join(job.command)}\n")
    log.flush()
    returncode = subprocess.run(job.command, stdout=log, stderr=subprocess.STDOUT).returncode
  return Outcome(job, returncode, time.monotonic() - start)


def run_concurrently(jobs: list[Job], workdir: str, concurrency: int) -> list[Outcome]:
  """Runs the jobs, at most `concurrency` at a time; reports each as it ends."""
  outcomes = []
  with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
    futures = [pool.submit(run_logged, job, workdir) for job in jobs]
    for future in concurrent.futures.as_completed(futures):
      outcome = future.result()
      outcomes.append(outcome)
      status = "ok" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"
      print(f"[{len(outcomes)}/{len(jobs)}] {outcome.job.name}: {status} in "
            f"{outcome.seconds:.0f} s", flush=True)
  return outcomes


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
  with open(path, errors="replace") as f:
    return "".join(f.readlines()[-lines:])


def print_summary(sweep: Sweep, jobs: list[Outcome], runs: list[Outcome], seconds: float) -> None:
  """Jobs ok and failed, the once-runs (manifolds, final), where the results are, and the end of
  the log of everything that failed."""
  failed = [o for o in runs + jobs if o.returncode != 0]
  print(f"\nSweep: {len(jobs)} jobs, {sum(o.returncode == 0 for o in jobs)} ok, "
        f"{sum(o.returncode != 0 for o in jobs)} failed; {seconds:.0f} s in total")
  for o in runs:
    print(f"  {o.job.name} run: {'ok' if o.returncode == 0 else 'FAILED'} in {o.seconds:.0f} s")
  print(f"Results: {os.path.join(sweep.workdir, 'results.json')}")
  report_path = os.path.join(sweep.workdir, "report", "report.md")
  if os.path.exists(report_path):
    print(f"Report:  {report_path}")
  print(f"Logs:    {os.path.join(sweep.workdir, 'logs')}")
  if os.path.exists(os.path.join(sweep.workdir, "report", "claims.json")) or sweep.merge_with:
    print_claims(sweep)
  for o in failed:
    path = log_path(sweep.workdir, o.job)
    print(f"\n{o.job.name} failed (exit {o.returncode}); the end of {path}:\n{log_tail(path)}")
  if failed:
    print("Rerun the same command to retry: finished models are skipped.")


def print_claims(sweep: Sweep) -> None:
  """The claims' verdicts of the sweep's report, or of a report over the sweep's workdir and the
  --merge-with workdirs, written into WORKDIR/report-merged."""
  out = os.path.join(sweep.workdir, "report")
  if sweep.merge_with:
    workdirs = [sweep.workdir, *sweep.merge_with]
    out = os.path.join(sweep.workdir, "report-merged")
    print(f"Merged report of {len(workdirs)} workdirs: "
          f"{report.write_report(workdirs, sweep.dataset, out=out)}")
  with open(os.path.join(out, "claims.json")) as f:
    groups = json.load(f)["groups"]
  for group in groups:
    if len(groups) > 1:
      print(f"  config {group['fingerprint']}:")
    for c in group["claims"]:
      print(f"  claim {c['claim']}: {c['verdict']}" + (f" ({c['reason']})" if c["reason"] else ""))


def print_dry_run(sweep: Sweep, concurrency: int) -> None:
  logs = os.path.join(sweep.workdir, "logs")
  first, final = first_job(sweep), final_job(sweep)
  if first:
    print(f"# before the jobs, once (log {logs}/manifolds.log):\n{shlex.join(first.command)}")
  jobs = model_jobs(sweep)
  print(f"# {len(jobs)} jobs, at most {concurrency} at a time (logs {logs}/<job>.log):")
  for index, job in enumerate(jobs):
    print(f"[{index}] {shlex.join(job.command)}")
  if final:
    print(f"# after all jobs succeeded (log {logs}/final.log):\n{shlex.join(final.command)}")


def succeeded(outcomes: list[Outcome]) -> bool:
  return all(o.returncode == 0 for o in outcomes)


def run_sweep(sweep: Sweep, concurrency: int) -> int:
  """Steps 1-3 of the module docstring; returns the exit status (0: everything succeeded)."""
  start = time.monotonic()
  runs, jobs = [], []
  first, final = first_job(sweep), final_job(sweep)
  if first:
    print(f"Running the manifolds stage first (log {log_path(sweep.workdir, first)})", flush=True)
    runs.append(run_logged(first, sweep.workdir))
  if succeeded(runs):
    jobs = run_concurrently(model_jobs(sweep), sweep.workdir, concurrency)
  if final and succeeded(runs + jobs):
    print(f"Running {', '.join(sweep.final_stages)} over all models "
          f"(log {log_path(sweep.workdir, final)})", flush=True)
    runs.append(run_logged(final, sweep.workdir))
  print_summary(sweep, jobs, runs, time.monotonic() - start)
  return 0 if succeeded(runs + jobs) else 1


def run_in_foreground(job: Job | None) -> int:
  """One step of a Slurm sweep, its output on stdout (the job's log)."""
  if job is None:
    print("Nothing to run.")
    return 0
  print(f"$ {shlex.join(job.command)}", flush=True)
  return subprocess.run(job.command).returncode


def main(argv: list[str]) -> int:
  args, overrides = parse_args(argv)
  try:
    sweep = plan_sweep(args, overrides)
  except (ValueError, KeyError, flags.Error) as e:
    sys.exit(f"error: {e.args[0] if isinstance(e, KeyError) else e}")
  jobs = model_jobs(sweep)
  if args.plan:
    print(len(jobs), int(bool(sweep.first_stages)), int(bool(sweep.final_stages)), sweep.workdir)
    return 0
  if args.dry_run:
    print_dry_run(sweep, args.jobs)
    return 0
  if args.job_index is not None:
    if not 0 <= args.job_index < len(jobs):
      sys.exit(f"error: --job-index={args.job_index}; the sweep has jobs 0..{len(jobs) - 1}")
    return run_in_foreground(jobs[args.job_index])
  if args.only:
    return run_in_foreground(first_job(sweep) if args.only == "manifolds" else final_job(sweep))
  return run_sweep(sweep, args.jobs)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
