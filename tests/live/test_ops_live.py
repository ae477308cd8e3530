"""Operator workflows on a real local cluster: keys, ssh-config, ssh mesh, sync, support-bundle (by causing each
condition the classification must see)."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("ops"), computes=2, prefix="op") as cluster:
        yield cluster


def nodes(lc) -> list[str]:
    return [f"{lc.name}-head-1", f"{lc.name}-node-1", f"{lc.name}-node-2"]


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def authorized(lc) -> dict[str, str]:
    return {n: lc.on(n, "cat ~/.ssh/authorized_keys").stdout for n in nodes(lc)}


def test_keys_add_twice_list_remove(lc, tmp_path):
    key = keygen(tmp_path / "k", "operator@laptop")
    blob = key.with_suffix(".pub").read_text().split()[1]
    p = lc.cli("keys", "add", str(key.with_suffix(".pub")), "--json")
    out = json.loads(p.stdout)
    assert {h: v["detail"].split()[0] for h, v in out["hosts"].items()} == {n: "added" for n in nodes(lc)}
    # Same key with another comment: still the same key, nothing appended.
    other = tmp_path / "same.pub"
    other.write_text(f"ssh-ed25519 {blob} another-comment\n")
    out = json.loads(lc.cli("keys", "add", str(other), "--json").stdout)
    assert {v["detail"].split()[0] for v in out["hosts"].values()} == {"present"}
    for n, text in authorized(lc).items():
        assert text.count(blob) == 1, n
        assert lc.on(n, "stat -c '%a %U' ~/.ssh/authorized_keys").stdout.split() == ["600", "root"]
    fp = subprocess.run(["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], capture_output=True, text=True,
                        check=True).stdout.split()[1]
    listed = json.loads(lc.cli("keys", "list", "--json").stdout)
    assert sorted(listed["keys"][fp]["hosts"]) == sorted(nodes(lc))
    out = json.loads(lc.cli("keys", "remove", str(key.with_suffix(".pub")), "--json").stdout)
    assert {v["detail"].split()[0] for v in out["hosts"].values()} == {"removed"}
    assert all(blob not in t for t in authorized(lc).values())
    assert fp not in json.loads(lc.cli("keys", "list", "--json").stdout)["keys"]


def test_private_key_refused_and_nothing_changed(lc, tmp_path):
    key = keygen(tmp_path / "secret", "do-not-send")
    before = authorized(lc)
    p = lc.cli("keys", "add", str(key), check=False)
    assert p.returncode == 2 and "PRIVATE key" in p.stderr
    assert authorized(lc) == before
    bad = tmp_path / "dsa.pub"
    bad.write_text("ssh-dss AAAAB3NzaC1kc3MAAACBAP8= x\n")
    p = lc.cli("keys", "add", str(bad), check=False)
    assert p.returncode == 2 and "ssh-dss" in p.stderr
    assert lc.cli("keys", "add", str(tmp_path / "missing.pub"), check=False).returncode == 2
    assert authorized(lc) == before


def test_host_down_fails_alone(lc, tmp_path):
    from slurmkit.local.cluster import start_sshd, stop_sshd

    key = keygen(tmp_path / "k2", "while-down")
    blob = key.with_suffix(".pub").read_text().split()[1]
    down = f"{lc.name}-node-2"
    stop_sshd(lc.name, down)
    try:
        p = lc.cli("keys", "add", str(key.with_suffix(".pub")), "--json", check=False)
    finally:
        start_sshd(lc.name, down)
    out = json.loads(p.stdout)
    assert p.returncode == 1 and out["failed_hosts"] == [down]
    assert "unreachable" in out["hosts"][down]["detail"]
    texts = authorized(lc)
    assert blob in texts[f"{lc.name}-node-1"] and blob in texts[f"{lc.name}-head-1"] and blob not in texts[down]
    out = json.loads(lc.cli("keys", "add", str(key.with_suffix(".pub")), "--json").stdout)
    assert out["hosts"][down]["detail"].startswith("added") and out["failed_hosts"] == []
    lc.cli("keys", "remove", str(key.with_suffix(".pub")))


def test_ssh_config_works_with_ssh_F(lc, tmp_path):
    cfg = tmp_path / "ssh_config"
    lc.cli("ssh-config", "--write", str(cfg))
    for n in nodes(lc):
        p = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes", n, "hostname"], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == n, p.stderr
    # The compute node was reached through the head: its session comes from the head's private address.
    head_private = lc.head("getent hosts $(hostname) | cut -d' ' -f1").stdout.strip()
    p = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes", f"{lc.name}-node-1", "echo $SSH_CONNECTION"],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.split()[0] == head_private


def test_mesh_node_to_node(lc):
    n1, n2, head = f"{lc.name}-node-1", f"{lc.name}-node-2", f"{lc.name}-head-1"
    for n in (n1, n2):
        lc.on(n, "rm -f ~/.ssh/id_ed25519 ~/.ssh/id_ed25519.pub ~/.ssh/known_hosts")
    assert lc.on(n1, f"ssh -o BatchMode=yes {n2} hostname", check=False).returncode != 0
    p = lc.cli("ssh", "mesh", "--json")
    assert json.loads(p.stdout)["failed_hosts"] == []
    for a, b in ((n1, n2), (n2, n1), (n1, head)):
        assert lc.on(a, f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes {b} hostname").stdout.strip() == b
    # known_hosts holds node-2's real host key (the one its sshd's HostKey points at), by name and address.
    real = lc.head(f"cat {Path(lc.spec['ssh']['known_hosts']).parent}/nodes/{n2}/ssh/ssh_host_ed25519_key.pub").stdout
    assert real.split()[1] in lc.on(n1, "cat ~/.ssh/known_hosts").stdout
    ip2 = lc.on(n2, "hostname -I").stdout.split()[0]
    assert lc.on(n1, f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes {ip2} hostname").stdout.strip() == n2
    key = (lc.file.parent / ".slurmkit" / "mesh_ed25519")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    again = json.loads(lc.cli("ssh", "mesh", "--json").stdout)
    assert {v["detail"] for v in again["hosts"].values()} == {"up to date"}


def test_sync_second_run_transfers_nothing(lc, tmp_path):
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 20)
    dest = "/root/synced"  # /root is per node (an overlay); /tmp is shared by the local nodes
    out = json.loads(lc.cli("sync", str(src), dest, "--json", "--parallel", "2").stdout)
    assert out["failed_hosts"] == []
    for n in nodes(lc):
        t = out["transfers"][n]
        assert t["files"] == 2 and t["bytes"] == 6 + 5120, (n, t)
        assert lc.on(n, f"sha256sum {dest}/sub/b.bin").stdout.split()[0] == \
            subprocess.run(["sha256sum", str(src / "sub" / "b.bin")], capture_output=True, text=True).stdout.split()[0]
    again = json.loads(lc.cli("sync", str(src), dest, "--json").stdout)
    assert all(t["files"] == 0 and t["bytes"] == 0 and t["itemized"] == [] for t in again["transfers"].values())
    (src / "a.txt").unlink()
    n1 = f"{lc.name}-node-1"
    out = json.loads(lc.cli("sync", str(src), dest, "--delete", "--nodes", n1, "--json").stdout)
    assert list(out["transfers"]) == [n1] and any("deleting" in i for i in out["transfers"][n1]["itemized"])
    assert lc.on(n1, f"test -e {dest}/a.txt", check=False).returncode != 0
    assert lc.on(f"{lc.name}-node-2", f"test -e {dest}/a.txt").returncode == 0
    assert lc.cli("sync", str(src), dest, "--nodes", "nope-1", check=False).returncode == 2


def bundle(lc, tmp_path: Path, name: str) -> tuple[dict, Path]:
    out = tmp_path / f"{name}.tar.gz"
    p = lc.cli("support-bundle", "-o", str(out), "--json", check=False, timeout=300)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout), out


def severities(summary: dict) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for f in summary["findings"]:
        out.setdefault(f["severity"], []).append(f["title"])
    return out


def test_support_bundle_classifies_caused_conditions(lc, tmp_path):
    lc.bootstrap()
    n1, n2 = f"{lc.name}-node-1", f"{lc.name}-node-2"
    summary, path = bundle(lc, tmp_path, "healthy")
    assert summary["severity"] is None and summary["findings"] == []
    munge_key = (lc.file.parent / ".slurmkit" / "munge.key").read_bytes()
    private = Path(lc.spec["ssh"]["identity_file"]).read_text()
    mesh_private = (lc.file.parent / ".slurmkit" / "mesh_ed25519")
    with tarfile.open(path) as tar:
        names = tar.getnames()
        blobs = [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]
    assert any(n.endswith("/slurm/sinfo.txt") for n in names) and any(n.endswith("/SUMMARY.txt") for n in names)
    assert any(n.endswith(f"/hosts/{n2}/logs/var_log_slurm_slurmd.log") for n in names)
    for b in blobs:
        assert munge_key not in b and b"PRIVATE KEY" not in b and private.encode() not in b
        if mesh_private.exists():
            assert mesh_private.read_bytes() not in b

    # Severity 3: one node drained for maintenance.
    lc.head(f"scontrol update nodename={n1} state=drain reason=maintenance")
    try:
        summary, _ = bundle(lc, tmp_path, "drained")
    finally:
        lc.head(f"scontrol update nodename={n1} state=resume")
    assert summary["severity"] == 3 and severities(summary) == {3: ["one node drained for maintenance"]}

    # Severity 2: one slurmd stopped (seen on the host at once; Slurm's SlurmdTimeout is not awaited).
    lc.on(n2, "kill $(cat /run/slurmd.pid)")
    lc.wait_for(f"ssh {n2} 'test -e /proc/$(cat /run/slurmd.pid 2>/dev/null || echo 0)/comm || echo gone'",
                lambda out: "gone" in out, "slurmd to exit")
    summary, _ = bundle(lc, tmp_path, "slurmd-down")
    assert summary["severity"] == 2
    f = next(f for f in summary["findings"] if f["severity"] == 2)
    assert f["hosts"] == [n2] and "slurmd is not running" in " ".join(f["evidence"])
    lc.bootstrap()

    # Severity 1: the controller stopped.
    pid = lc.head("cat /run/slurmctld.pid").stdout.strip()
    lc.head(f"kill {pid}")
    try:
        lc.wait_for(f"test -e /proc/{pid}/comm || echo gone", lambda out: "gone" in out, "slurmctld to exit")
        summary, path = bundle(lc, tmp_path, "ctld-down")
    finally:
        lc.bootstrap()
    assert summary["severity"] == 1
    f = next(f for f in summary["findings"] if f["severity"] == 1)
    assert f["title"].startswith("controller down")
    assert any("slurmctld is not running" in e for e in f["evidence"])
    with tarfile.open(path) as tar:
        text = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("/SUMMARY.txt"))).read().decode()
    assert "Overall: Severity 1" in text and "controller down" in text


def test_support_bundle_with_a_host_down(lc, tmp_path):
    from slurmkit.local.cluster import start_sshd, stop_sshd

    n2 = f"{lc.name}-node-2"
    stop_sshd(lc.name, n2)
    try:
        p = lc.cli("support-bundle", "-o", str(tmp_path / "b.tar.gz"), "--json", check=False)
    finally:
        start_sshd(lc.name, n2)
    summary = json.loads(p.stdout)
    assert p.returncode == 1 and list(summary["unreachable"]) == [n2]
    f = next(f for f in summary["findings"] if f["severity"] == 2)
    assert n2 in f["hosts"] and "unreachable" in " ".join(f["evidence"])
    assert (tmp_path / "b.tar.gz").is_file()
