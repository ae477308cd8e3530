"""A real local cluster for live tests: `slurmkit local up`, optionally `bootstrap`, ssh helpers, `local down`.

Everything goes through the real CLI, as a user would; teardown always runs `local down`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

NEEDED = ("ip", "nsenter", "sshd", "ssh", "ssh-keygen", "slurmctld", "slurmd", "munged")


def skip_unless_possible() -> None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("live test: needs Linux and root (namespaces, bridges, daemons)")
    missing = [b for b in NEEDED if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        pytest.skip(f"live test: missing {', '.join(missing)} (make setup installs them)")


def slurmkit(*args: str, cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "slurmkit", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"slurmkit {' '.join(args)} -> exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


class LocalCluster:
    def __init__(self, name: str, cwd: Path):
        self.name, self.cwd = name, cwd
        self.file = cwd / ".slurmkit" / "local" / name / "cluster.yaml"
        self.spec = yaml.safe_load(self.file.read_text())
        ssh = self.spec["ssh"]
        self.head_addr = ssh["proxy_jump"].split("@", 1)[1]
        self.ssh_opts = ["-i", ssh["identity_file"], "-o", f"UserKnownHostsFile={ssh['known_hosts']}",
                         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]

    def edit(self, fn) -> None:
        """Change the cluster file: fn(dict) edits the parsed YAML in place."""
        fn(self.spec)
        self.file.write_text(yaml.safe_dump(self.spec, sort_keys=False))

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return slurmkit("-c", str(self.file), *args, cwd=self.cwd, check=check, timeout=timeout)

    def bootstrap(self, *args: str, check: bool = True) -> tuple[int, dict]:
        p = self.cli("bootstrap", "--json", *args, check=False)
        try:
            data = json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"bootstrap printed no JSON (exit {p.returncode})\n{p.stdout}\n{p.stderr}") from None
        if check and p.returncode != 0:
            raise AssertionError(f"bootstrap exit {p.returncode}: {json.dumps(data, indent=1)[:4000]}")
        return p.returncode, data

    def head(self, command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a shell command on the first head, over SSH as a user would."""
        p = subprocess.run(["ssh", *self.ssh_opts, f"root@{self.head_addr}", command], capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"on head: {command} -> exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def on(self, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command on any node through the head (nodes reach each other by name)."""
        import shlex

        return self.head(f"ssh -o BatchMode=yes {node} {shlex.quote(command)}", check=check)

    def wait_for(self, command: str, predicate, what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            out = self.head(command, check=False).stdout
            if predicate(out):
                return out
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last output:\n{out}")


@contextmanager
def local_cluster(cwd: Path, computes: int = 2, heads: int = 1, gpus: int = 0, prefix: str = "t"):
    skip_unless_possible()
    name = f"{prefix}{secrets.token_hex(2)}"
    args = ["local", "up", "-n", str(computes), "--heads", str(heads), "--name", name]
    if gpus:
        args += ["--gpus-per-node", str(gpus), "--gpu-type", "h100"]
    slurmkit(*args, cwd=cwd)
    try:
        yield LocalCluster(name, cwd)
    finally:
        slurmkit("local", "down", "--name", name, cwd=cwd, check=False)
