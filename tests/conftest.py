"""Test session set-up: 8 fake CPU devices so multi-device code is tested in-process."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
