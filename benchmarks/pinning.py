"""Equal cores for side-by-side benchmarks, and timing that interleaves the contenders.

A benchmark script calls `pin_from_argv()` before it imports jax or torch. Without `--cores N` in
its arguments the script is run again once per core count (1, then every core this process may
use), each run in its own process; with `--cores N` the process (and every thread it starts
later: XLA's and torch's pools) is pinned to the first N allowed cores, XLA's and torch's thread
pools are sized N, and the script runs. Both contenders then share the same cores, so neither can
use more CPU than the other; the cpu/wall column shows how much each used.

XLA:CPU sizes its pool from the affinity mask when the backend starts (jax 0.4-0.10); at one core
it is also told to run Eigen single-threaded (--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1). Torch gets set_num_threads(N) and set_num_interop_threads(N).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable

SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def allowed_cores() -> list[int]:
  return sorted(os.sched_getaffinity(0))


def core_counts() -> list[int]:
  """1 and every allowed core (the two settings reported by default)."""
  return sorted({1, len(allowed_cores())})


def pin(cores: int) -> list[int]:
  """Pins this process to its first `cores` allowed cores and sizes XLA's pool; before jax starts."""
  available = allowed_cores()
  if not 1 <= cores <= len(available):
    raise SystemExit(f"--cores {cores}: this process may use {len(available)} cores "
                     f"({available}); pass a count from 1 to {len(available)}.")
  chosen = available[:cores]
  os.sched_setaffinity(0, chosen)
  flags = os.environ.get("XLA_FLAGS", "")
  if cores == 1 and SINGLE_THREAD_XLA_FLAGS not in flags:  # Once, if a second module pins too.
    os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_XLA_FLAGS}".strip()
  for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[name] = str(cores)
  return chosen


def pin_from_argv() -> int:
  """With `--cores N` in sys.argv: pin (see `pin`) and return N. Without: rerun this script with
  `--cores N` for each of `core_counts()` and exit with the worst return code."""
  if "--cores" in sys.argv:
    cores = int(sys.argv[sys.argv.index("--cores") + 1])
    pin(cores)
    return cores
  codes = [subprocess.call([sys.executable, *sys.argv, "--cores", str(n)])
           for n in core_counts()]
  sys.exit(max(codes))


def size_torch_pools(torch, cores: int) -> None:
  """torch's intra- and inter-op pools to `cores` threads (before torch runs anything parallel)."""
  torch.set_num_threads(cores)
  try:
    torch.set_num_interop_threads(cores)
  except RuntimeError:  # Already started: only the intra-op pool can still change.
    pass


def torch_device(torch) -> str:
  """"cuda" when torch sees a GPU, else "cpu": torch runs where jax's default device is."""
  return "cuda" if torch.cuda.is_available() else "cpu"


def describe(cores: int, torch=None) -> str:
  """One line: cores, load, jax's device and XLA_FLAGS, torch's device and threads."""
  import jax
  line = (f"cores {allowed_cores()} ({cores} of {os.cpu_count()}), load average "
          f"{os.getloadavg()[0]:.1f}; jax {jax.__version__} on {jax.devices()[0]}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  if torch is not None:
    line += (f"; torch {torch.__version__} on {torch_device(torch)}, "
             f"{torch.get_num_threads()} threads")
  return line


def parser(doc: str) -> argparse.ArgumentParser:
  """A benchmark's argument parser with the options every benchmark shares."""
  p = argparse.ArgumentParser(description=doc.splitlines()[0])
  p.add_argument("--cores", type=int, help="pin to this many cores (default: 1, then all)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--batch", type=int, default=100)
  return p


def cpu_seconds() -> float:
  """CPU time of every thread of this process so far."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def interleaved_timings(contenders: dict[str, Callable[[], object]],
                        repeats: int) -> dict[str, tuple[float, float, float]]:
  """{name: (median wall s, median cpu s, cpu/wall over all rounds)} of blocking callables.

  One warm-up call each, then `repeats` rounds, each calling every contender once in turn, so
  load from other processes falls on all of them alike. Each round starts one contender later
  than the previous one: the call after torch's last contender ran about a fifth slower at
  2 cores (measured: the same dmr attack at 335 images/s there, 426 later in the round), and the
  rotation gives that place to each contender in turn instead of always to the first.
  """
  for run in contenders.values():
    run()
  walls = {name: [] for name in contenders}
  cpus = {name: [] for name in contenders}
  names = list(contenders)
  for round_index in range(repeats):
    shift = round_index % len(names)
    for name in names[shift:] + names[:shift]:
      run = contenders[name]
      wall, cpu = time.perf_counter(), cpu_seconds()
      run()
      walls[name].append(time.perf_counter() - wall)
      cpus[name].append(cpu_seconds() - cpu)
  return {name: (statistics.median(walls[name]), statistics.median(cpus[name]),
                 sum(cpus[name]) / sum(walls[name])) for name in contenders}
