"""results.json under concurrent writers: every update of every process is kept."""
import json
import os
import subprocess
import sys
import textwrap

from dmr import results

WRITER = textwrap.dedent("""
    import sys
    from dmr import results
    workdir, process, updates = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for i in range(updates):
      results.update_record(workdir, "normal", 1000 + i, process, test_error=i / 100)
      results.update_manifold(workdir, **{f"p{process}_{i}": i})
""")


def test_concurrent_updates_from_many_processes_keep_every_record(tmp_path):
  processes, updates = 8, 25
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(p), str(updates)],
                              env=env) for p in range(processes)]
  assert [w.wait(timeout=120) for w in writers] == [0] * processes
  res = results.load(str(tmp_path))
  keys = {(r["n"], r["seed"]) for r in res["records"]}
  assert keys == {(1000 + i, p) for i in range(updates) for p in range(processes)}
  assert len(res["manifold"]) == processes * updates
  assert all(r["test_error"] == (r["n"] - 1000) / 100 for r in res["records"])
  # No temporary file is left behind and the file is valid JSON.
  assert sorted(os.listdir(tmp_path)) == ["results.json", "results.json.lock"]
  json.loads((tmp_path / "results.json").read_text())


def test_update_merges_fields_into_an_existing_record(tmp_path):
  results.update_record(str(tmp_path), "off_adv", 500, 1, test_error=0.2)
  results.update_record(str(tmp_path), "off_adv", 500, 1, off_manifold_success=0.9)
  assert results.load(str(tmp_path))["records"] == [
      {"variant": "off_adv", "n": 500, "seed": 1, "test_error": 0.2,
       "off_manifold_success": 0.9}]
