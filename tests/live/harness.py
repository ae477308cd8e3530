"""Real munged, slurmctld and slurmd on this machine, for live tests of rendered configs (no namespaces).

Each daemon gets its own socket, ports, pid and log files under a temporary directory; teardown stops exactly
the processes started (by pid file) and removes the cgroups slurmd made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

NEEDED = ("munged", "slurmctld", "slurmd", "scontrol", "sinfo")


def slurmd_C() -> dict[str, str]:
    """This machine's `slurmd -C` as Key -> value (read here by hand: the tests check slurmkit against it)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    first = next(ln for ln in out.splitlines() if ln.startswith("NodeName="))
    return dict(kv.split("=", 1) for kv in first.split())


def require_live() -> None:
    if os.geteuid() != 0:
        pytest.skip("live test: needs root (CI runs as root)")
    missing = [b for b in NEEDED if shutil.which(b) is None]
    if missing:
        pytest.skip(f"live test: {', '.join(missing)} not installed (apt-get install slurm-wlm munge)")


class Harness:
    def __init__(self, root: Path):
        self.root = root
        self.munge_dir = root / "munge"
        self.socket = self.munge_dir / "munge.sock"
        self.pids: list[Path] = []
        self.nodes: list[str] = []

    def start_munged(self) -> None:
        self.munge_dir.mkdir(mode=0o755)
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        shutil.chown(self.munge_dir, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        pid = self.munge_dir / "munged.pid"
        subprocess.run(
            ["runuser", "-u", "munge", "--", "munged", f"--socket={self.socket}", f"--key-file={key}",
             f"--pid-file={pid}", f"--log-file={self.munge_dir / 'munged.log'}", f"--seed-file={self.munge_dir / 'seed'}"],
            check=True, capture_output=True, text=True,
        )
        self.pids.append(pid)

    def slurm_overrides(self, port_base: int) -> dict:
        """slurm_conf keys that keep this test's daemons apart from anything else on the machine."""
        state = self.root / "state"
        state.mkdir()
        shutil.chown(state, "slurm", "slurm")
        (self.root / "spool").mkdir()
        return {
            "SlurmctldPort": port_base,
            "SlurmdPort": port_base + 1,
            "AuthInfo": f"socket={self.socket}",
            "SlurmctldPidFile": str(self.root / "slurmctld.pid"),
            "SlurmctldLogFile": str(self.root / "slurmctld.log"),
            "SlurmdPidFile": str(self.root / "slurmd-%n.pid"),
            "SlurmdLogFile": str(self.root / "slurmd-%n.log"),
            "SlurmdSpoolDir": str(self.root / "spool" / "%n"),
        }

    def env(self, conf: Path) -> dict:
        return {**os.environ, "SLURM_CONF": str(conf)}

    def start_slurmctld(self, conf: Path) -> None:
        pid = self.root / "slurmctld.pid"
        r = subprocess.run(["slurmctld", "-f", str(conf)], capture_output=True, text=True, env=self.env(conf))
        assert r.returncode == 0, r.stderr
        self.pids.append(pid)
        self.wait(lambda: self.run(conf, "scontrol", "ping").returncode == 0, "slurmctld to answer", conf)

    def start_slurmd(self, conf: Path, node: str) -> None:
        (self.root / "spool" / node).mkdir(exist_ok=True)
        r = subprocess.run(["slurmd", "-f", str(conf), "-N", node], capture_output=True, text=True, env=self.env(conf))
        assert r.returncode == 0, r.stderr
        self.pids.append(self.root / f"slurmd-{node}.pid")
        self.nodes.append(node)

    def run(self, conf: Path, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True, env=self.env(conf), timeout=30)

    def wait(self, predicate, what: str, conf: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.3)
        log = (self.root / "slurmctld.log").read_text()[-3000:] if (self.root / "slurmctld.log").exists() else ""
        raise AssertionError(f"timed out waiting for {what}\n{log}")

    def stop(self) -> None:
        for pid_file in reversed(self.pids):
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        for node in self.nodes:
            for d in Path("/sys/fs/cgroup").glob(f"*/slurm_{node}"):
                subprocess.run(["find", str(d), "-depth", "-type", "d", "-exec", "rmdir", "{}", ";"], capture_output=True)
