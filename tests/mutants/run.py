"""`make mutants`: applies each semantic mutation of tests/mutants/mutations.py to a scratch copy
of the repository, runs the tests that should catch it, and reports killed / survived.

  python tests/mutants/run.py [--only NAME ...] [--list] [--jobs N]

Mutations live in tests/mutants/mutations.py and mutations_*.py. A mutation is killed when its
tests fail on the mutated copy. A mutation whose text is not found exactly once is reported as
stale (the code moved: update the mutation). Exits 1 unless every mutation is killed. `--jobs`
mutations run at once (one per core by default); they share one compilation cache, which is safe
because XLA keys it by the compiled program, so a mutated program never reuses a pristine one.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mutants"))
from mutations import ALL, Mutation  # noqa: E402


def tracked_files() -> list[str]:
  out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                       capture_output=True, text=True).stdout
  return [f for f in out.splitlines() if (ROOT / f).is_file()]


def scratch_copy(destination: pathlib.Path) -> None:
  for name in tracked_files():
    target = destination / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / name, target)


def apply(mutation: Mutation, root: pathlib.Path) -> bool:
  """Replaces the mutation's `old` text with `new`; False unless `old` occurs exactly once."""
  path = root / mutation.file
  text = path.read_text()
  if text.count(mutation.old) != 1:
    return False
  path.write_text(text.replace(mutation.old, mutation.new))
  return True


def run_tests(mutation: Mutation, root: pathlib.Path, timeout: int,
              cache: pathlib.Path) -> tuple[str, float]:
  """'killed' | 'survived' | 'timeout' and the seconds the tests took."""
  env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1",
         "DMR_TEST_COMPILATION_CACHE": str(cache)}
  command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             "-m", "", *mutation.tests]  # -m "": the slow tests too
  start = time.perf_counter()
  try:
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return "timeout", time.perf_counter() - start
  return ("survived" if result.returncode == 0 else "killed"), time.perf_counter() - start


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", nargs="*", default=None, help="names of mutations to run")
  parser.add_argument("--list", action="store_true", help="list the mutations and exit")
  parser.add_argument("--timeout", type=int, default=600, help="seconds per mutation")
  parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                      help="mutations run at once (default: one per core)")
  args = parser.parse_args()
  chosen = [m for m in ALL if args.only is None or m.name in args.only]
  if args.list or not chosen:
    for m in ALL:
      print(f"{m.name:32s} {m.file}  ->  {' '.join(m.tests)}")
    return 0 if chosen or args.list else 2
  with tempfile.TemporaryDirectory(prefix="dmr-mutants-") as scratch:
    pristine = pathlib.Path(scratch) / "pristine"
    scratch_copy(pristine)
    cache = pathlib.Path(scratch) / "xla-cache"

    def judge(m: Mutation) -> str:
      work = pathlib.Path(scratch) / m.name
      shutil.copytree(pristine, work)
      outcome, seconds = (run_tests(m, work, args.timeout, cache) if apply(m, work)
                          else ("stale", 0.0))
      shutil.rmtree(work)
      print(f"{outcome:9s} {m.name:32s} {seconds:6.1f} s  {m.description}", flush=True)
      return outcome

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
      outcomes = dict(zip((m.name for m in chosen), pool.map(judge, chosen)))
  failed = [name for name, outcome in outcomes.items() if outcome != "killed"]
  print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} mutations killed"
        + (f"; not killed: {', '.join(failed)}" if failed else "."))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
