"""`slurmkit bootstrap` killed (SIGKILL, its whole process group) at 20 moments of a first run on a fresh local
cluster: no host is left with a half-written config or munge key (each is whole or absent), nor is the local
munge key; the rerun converges and a third run changes nothing.

The 20 delays are spread over an uninterrupted first run measured first on a fresh cluster of the same shape; each
is printed with what the kill left and how the rerun went (run with -s to see them).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.live.localcluster import LocalCluster, skip_unless_possible, slurmkit

pytestmark = pytest.mark.live
KILLS = int(os.environ.get("SK_KILLS", "20"))
TARGETS = ("slurm.conf", "cgroup.conf")  # what a CPU-only cluster without topology renders
LOCAL_STATE = Path("/var/lib/slurmkit/local")


def bootstrap_popen(lc: LocalCluster) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slurmkit", "-c", str(lc.file), "bootstrap", "--json"], cwd=lc.cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(p: subprocess.Popen) -> tuple[int, dict]:
    out, err = p.communicate(timeout=300)
    try:
        return p.returncode, json.loads(out)
    except ValueError:
        raise AssertionError(f"bootstrap printed no JSON (exit {p.returncode})\n{out}\n{err}") from None


def wait_key(lc: LocalCluster, p: subprocess.Popen) -> float | None:
    """Seconds until the local munge key exists (None: the run ended first)."""
    t0 = time.monotonic()
    key = lc.file.parent / ".slurmkit" / "munge.key"
    while not key.exists():
        if p.poll() is not None:
            return None
        time.sleep(0.005)
    return time.monotonic() - t0


def in_process(lc: LocalCluster) -> dict:
    """A bootstrap run by the library in this process (what the CLI calls; no interpreter start of ~2 s on this
    busy machine), reported as `bootstrap --json` reports it."""
    from slurmkit.bootstrap import bootstrap
    from slurmkit.cli.bootstrap import outcome_json
    from slurmkit.cluster import load_cluster
    from slurmkit.hardware import hardware_source

    cluster = load_cluster(lc.file)
    return outcome_json(bootstrap(cluster, lc.file, hardware_source(cluster, lc.file)))


def host_files(name: str, host: str) -> dict[str, bytes | None]:
    """The node's own /etc/slurm and /etc/munge (the directories its mount namespace binds over them)."""
    etc = LOCAL_STATE / name / "nodes" / host / "etc"
    found: dict[str, bytes | None] = {}
    for sub in ("slurm", "munge"):
        for f in sorted(p for p in (etc / sub).iterdir() if p.is_file()) if (etc / sub).is_dir() else []:
            found[f"/etc/{sub}/{f.name}"] = f.read_bytes()
    return found


def judge(lc: LocalCluster, hosts: list[str], rendered: dict[str, bytes], key: bytes | None,
          before: dict[str, dict[str, bytes | None]]) -> dict[str, str]:
    """Per host: every target whole or absent (a problem otherwise), the files the host had before (the package's
    plugstack.conf) untouched, and the temp files left beside the targets."""
    verdict = {}
    for host in hosts:
        files = host_files(lc.name, host)
        want = {f"/etc/slurm/{t}": rendered[t] for t in TARGETS}
        want["/etc/munge/munge.key"] = key
        bad = [p for p, w in want.items() if p in files and files[p] != w]
        bad += [p for p, old in before[host].items() if p not in want and files.get(p) != old]
        temps = sorted(p for p in files if p.endswith(".slurmkit-tmp"))
        unknown = sorted(set(files) - set(want) - set(temps) - set(before[host]))
        assert not bad, f"{host}: half-written or wrong {bad}"
        assert not unknown, f"{host}: unexpected files {unknown}"
        present = [p.rsplit("/", 1)[1] for p in want if p in files]
        verdict[host] = f"{len(present)}/{len(want)} in place" + (f", temp {[t.rsplit('/', 1)[1] for t in temps]}" if temps else "")
    return verdict


def render(lc: LocalCluster) -> dict[str, bytes]:
    """What bootstrap must put on every host: slurmkit's own render of the cluster file (pure, no host)."""
    from slurmkit.cluster import load_cluster
    from slurmkit.hardware import hardware_source
    from slurmkit.render import render_cluster

    cluster = load_cluster(lc.file)
    files = render_cluster(cluster, hardware_source(cluster, lc.file)).files
    assert sorted(files) == sorted(TARGETS)
    return {t: files[t].encode() for t in TARGETS}


class Fresh:
    """One local cluster (1 head, 2 computes) brought up fresh again and again under one name."""

    def __init__(self, cwd: Path):
        self.cwd, self.name = cwd, f"bk{secrets.token_hex(2)}"

    def up(self) -> LocalCluster:
        slurmkit("local", "up", "-n", "2", "--name", self.name, cwd=self.cwd)
        return LocalCluster(self.name, self.cwd)

    def down(self) -> None:
        slurmkit("local", "down", "--name", self.name, cwd=self.cwd, check=False)


def test_bootstrap_killed_at_20_moments_of_a_first_run_converges(tmp_path):
    skip_unless_possible()
    fresh = Fresh(tmp_path)
    lc = fresh.up()
    try:
        hosts = [f"{fresh.name}-head-1", f"{fresh.name}-node-1", f"{fresh.name}-node-2"]
        t0 = time.monotonic()
        p = bootstrap_popen(lc)
        key_at = wait_key(lc, p)
        code, out = finish(p)
        full = time.monotonic() - t0
        assert code == 0 and key_at is not None, out
        fresh.down()
        # Half the kills at delays from the start spread over the whole run; most of a run is the interpreter's
        # start, whose length varies by a second on this busy machine, so the other half count from the moment
        # the local munge key appears (the last local step before SSH) and spread over the rest of the run.
        half = KILLS // 2
        delays = [("start", round(full * (i + 0.5) / half, 2)) for i in range(half)]
        delays += [("key", round((full - key_at) * (i + 0.5) / (KILLS - half), 2)) for i in range(KILLS - half)]
        print(f"\nuninterrupted first run: {full:.2f} s, local munge key made at {key_at:.2f} s "
              f"(bootstrap's own figure {out['seconds']} s)")
        rows = []
        for since, delay in delays:
            lc = fresh.up()
            try:
                rendered = render(lc)
                before = {h: host_files(lc.name, h) for h in hosts}
                p = bootstrap_popen(lc)
                if since == "key":
                    wait_key(lc, p)
                time.sleep(delay)
                ended_first = p.poll() is not None
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:  # it had ended, and no process of its group was left
                    pass
                p.wait(timeout=30)
                key_file = lc.file.parent / ".slurmkit" / "munge.key"
                key = key_file.read_bytes() if key_file.exists() else None
                assert key is None or len(key) == 1024, f"local munge key has {len(key)} bytes"
                key_state = "absent" if key is None else "whole"
                left = judge(lc, hosts, rendered, key, before)
                r0 = time.monotonic()
                again = in_process(lc)
                rerun = time.monotonic() - r0
                assert again["failed_hosts"] == [], json.dumps(again, indent=1)[:3000]
                key = key_file.read_bytes()
                after = judge(lc, hosts, rendered, key, before)
                assert all(v == "3/3 in place" for v in after.values()), after
                assert sorted(p.name for p in key_file.parent.iterdir() if p.name.startswith("munge.key")) == ["munge.key"]
                third = in_process(lc)
                assert third["failed_hosts"] == [] and third["changed"] == 0, json.dumps(third, indent=1)[:3000]
                rows.append(f"delay {delay:5.2f} s from {since:5}{' (run had ended)' if ended_first else ''}: kill left "
                            f"{'; '.join(f'{h}: {v}' for h, v in left.items())}, local key "
                            f"{key_state}; rerun {again['changed']} changed in "
                            f"{rerun:.1f} s; third run 0 changed")
                print(rows[-1])
            finally:
                fresh.down()
        assert len(rows) == KILLS
    finally:
        fresh.down()
