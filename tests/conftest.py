"""Shared test helpers. Live tests (tests/live) need root, Slurm, munge and sshd; they skip with the reason
otherwise, and CI runs as root with everything installed, so there they run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
HARDWARE = FIXTURES / "hardware"


def hardware_fixture(name: str) -> str:
    """A captured hardware output (tests/fixtures/hardware), as captured: newline="" keeps CRLF line ends."""
    with open(HARDWARE / name, encoding="utf-8", newline="") as fh:
        return fh.read()


def run_slurmkit(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None, timeout: float = 120,
                 input: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI (`python -m slurmkit ...`) as a user would; returns the completed process."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SLURMKIT_CLUSTER", None) if env is None or "SLURMKIT_CLUSTER" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "slurmkit", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout, input=input,
    )


@pytest.fixture
def cli():
    return run_slurmkit
