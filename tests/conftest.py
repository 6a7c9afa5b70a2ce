"""Test session set-up: 8 fake CPU devices so multi-device code is tested in-process, and one
compilation cache for the session's runs (in-process and subprocesses), fresh per session unless
DMR_TEST_COMPILATION_CACHE names one to share across sessions (`make mutants` does)."""
import os
import tempfile

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture(scope="session", autouse=True)
def compilation_cache():
  """A persistent compilation cache shared by every test and every dmr.main subprocess of the
  session (they inherit JAX_COMPILATION_CACHE_DIR): the smoke runs compile the same programs."""
  shared = os.environ.get("DMR_TEST_COMPILATION_CACHE")
  if shared:
    yield use_compilation_cache(shared)
    return
  with tempfile.TemporaryDirectory(prefix="dmr-xla-") as directory:
    yield use_compilation_cache(directory)


def use_compilation_cache(directory: str) -> str:
  import jax
  os.environ["JAX_COMPILATION_CACHE_DIR"] = directory
  jax.config.update("jax_compilation_cache_dir", directory)
  return directory
