"""`init --from-head` against a real controller: a local cluster (1 head, 2 computes) is bootstrapped by slurmkit
(munge, slurmctld, slurmd), then every node's /etc/slurm/slurm.conf is replaced by a hand-written, production-style
file (NodeName=DEFAULT lines, tabs, comments at line ends, a backslash continuation, two overlapping partitions, one
of them Nodes=ALL) and the daemons restarted by hand; once sinfo shows the nodes idle,
slurmkit.cli.adopt.run_adopt (what `init --from-head` calls) reads it over SSH, with the local cluster's key and
known_hosts and an OpenSSH config (the head by name, computes through it, as a site's ~/.ssh/config has them).

The adopted file validates, names the same head, nodes (and their hardware) and partitions (ALL resolved to every
node, as Slurm does), and `bootstrap --dry-run` on it changes no node or partition definition. What the dry run
does report is asserted as it is: the slurm.conf text (hand-written vs rendered), cgroup.conf (its header names the
profile: the adopted file has none, `local`'s had one); not the munge key: run_adopt kept the head's own
/etc/munge/munge.key where bootstrap looks for the adopted file's (before, bootstrap would have installed a new key
on every node of the running cluster)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from slurmkit.cluster import parse_cluster
from slurmkit.hostlist import expand
from slurmkit.render import render_cluster
from slurmkit.slurm import conf as sc
from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live

HAND_WRITTEN = """\
# slurm.conf of {name} -- kept by hand, as sites do.
# See slurm.conf(5).
ClusterName={name}\t\t# the cluster's name in accounting
SlurmctldHost={head}
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=slurm
StateSaveLocation={state_dir}\t# on the shared disk
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldTimeout=120
SlurmdTimeout=300
MpiDefault=none
JobAcctGatherType=jobacct_gather/cgroup
AccountingStorageType=accounting_storage/none
MailProg=/bin/true

# COMPUTE NODES
NodeName=DEFAULT\tSockets={sockets} CoresPerSocket={cores} ThreadsPerCore={threads}  # every node is the same box
NodeName=DEFAULT RealMemory={memory}\tState=UNKNOWN
NodeName={n1} NodeAddr={a1} \\
\tCPUs={cpus}\t# first rack
NodeName={n2}\tNodeAddr={a2} CPUs={cpus}

# PARTITIONS
PartitionName=debug\tNodes=ALL Default=YES MaxTime=INFINITE State=UP   # everyone
PartitionName=short Nodes={n1}\tMaxTime=60 State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("adopthead"), computes=2, prefix="sb") as lc:
        lc.bootstrap()
        yield lc


def _hand_written(lc) -> str:
    g = lc.spec["nodes"][0]
    (n1, n2), (a1, a2) = expand(g["names"]), expand(g["addresses"])
    return HAND_WRITTEN.format(
        name=lc.name, head=expand(lc.spec["heads"]["names"])[0], state_dir=lc.spec["state_dir"],
        sockets=g["sockets"], cores=g["cores_per_socket"], threads=g["threads_per_core"], memory=g["memory_mb"],
        cpus=g["sockets"] * g["cores_per_socket"] * g["threads_per_core"], n1=n1, n2=n2, a1=a1, a2=a2)


def test_init_from_head_adopts_a_hand_written_running_cluster(cluster, tmp_path, capsys):
    lc = cluster
    head = expand(lc.spec["heads"]["names"])[0]
    computes = expand(lc.spec["nodes"][0]["names"])
    text = _hand_written(lc)
    put = f"echo {base64.b64encode(text.encode()).decode()} | base64 -d > /etc/slurm/slurm.conf"
    lc.head(put)
    for n in computes:
        lc.on(n, put)
    # restarted as by hand (test_bootstrap's way): the controller first, then each slurmd
    lc.head("p=$(cat /run/slurmctld.pid); kill $p; while [ -d /proc/$p ]; do sleep 0.1; done; "
            "SLURM_CONF=/etc/slurm/slurm.conf /usr/sbin/slurmctld </dev/null >/run/sb-ctld.start 2>&1")
    lc.wait_for("SLURM_CONF=/etc/slurm/slurm.conf scontrol ping", lambda out: "is UP" in out, "slurmctld up")
    for n in computes:
        lc.on(n, "p=$(cat /run/slurmd.pid); kill $p; while [ -d /proc/$p ]; do sleep 0.1; done; "
                 "HWLOC_PLUGINS_BLACKLIST=hwloc_gl,hwloc_opencl,hwloc_xml_libxml /usr/sbin/slurmd "
                 "</dev/null >/run/sb-slurmd.start 2>&1")
    sinfo = lc.wait_for("sinfo -h -N -o '%N %P %T'",
                        lambda out: sorted(out.split()) == sorted(
                            [computes[0], "debug*", "idle", computes[0], "short", "idle", computes[1], "debug*", "idle"]),
                        "both nodes idle in debug, node-1 in short too", timeout=120)
    assert lc.head("cat /etc/slurm/slurm.conf").stdout == text, sinfo

    ssh = lc.spec["ssh"]
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host {head}\n  HostName {lc.head_addr}\n  User root\n  IdentityFile {ssh['identity_file']}\n"
                          f"Host {lc.name}-node-*\n  User root\n  IdentityFile {ssh['identity_file']}\n  ProxyJump {head}\n")
    out = tmp_path / "adopted.yaml"
    from slurmkit.cli.adopt import run_adopt

    before_key = lc.head("sha256sum /etc/munge/munge.key").stdout.split()[0]
    run_adopt(from_slurm_conf=None, gres_conf=None, topology_conf=None, from_head=head, ssh_config=str(ssh_config),
              user="root", identity_file=ssh["identity_file"], known_hosts=ssh["known_hosts"], output=str(out), force=False)

    printed = capsys.readouterr().out
    assert f"munge key: {head}'s kept in " in printed and "(0 finding(s), 0 line(s) not kept)" in printed, printed
    assert "not kept: " not in printed and "finding: " not in printed
    adopted_text = out.read_text()
    assert f"# Adopted by `slurmkit init` from {head}:/etc/slurm/slurm.conf." in adopted_text
    v = subprocess.run([sys.executable, "-m", "slurmkit", "-c", str(out), "validate"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    c = parse_cluster(adopted_text, str(out))
    assert [h.name for h in c.hosts() if h.role == "head"] == [head]
    assert [h.name for h in c.hosts() if h.role == "compute"] == computes
    assert [h.address for h in c.hosts() if h.role == "compute"] == expand(lc.spec["nodes"][0]["addresses"])

    # Slurm's reading of the two files is the same: nodes (hardware, addresses) and partitions (ALL resolved)
    orig = sc.parse_slurm_conf(text)
    rendered = render_cluster(c).files
    ren = sc.parse_slurm_conf(rendered["slurm.conf"])
    assert orig.findings == [] and ren.findings == []
    # nothing was listed as not kept, so nothing Slurm reads may differ: every setting, node and partition option
    assert {k: v[1] for k, v in ren.settings.items()} == {k: v[1] for k, v in orig.settings.items()}
    key = lambda n: (n.name, n.addr, n.hardware(), n.state, n.features, n.weight, n.other)  # noqa: E731
    assert [key(n) for n in ren.nodes.values()] == [key(n) for n in orig.nodes.values()]
    assert {p.name: (orig.partition_nodes(p), p.default, p.max_time) for p in orig.partitions} == {
        "debug": (computes, True, "INFINITE"), "short": ([computes[0]], False, "60")}
    assert {p.name: (ren.partition_nodes(p), p.default, p.max_time, p.options) for p in ren.partitions} == {
        p.name: (orig.partition_nodes(p), p.default, p.max_time, p.options) for p in orig.partitions}
    assert [c_.name for c_ in ren.controllers] == [head]

    # bootstrap --dry-run on the adopted file: what it would change, as it is
    import json

    d = subprocess.run([sys.executable, "-m", "slurmkit", "-c", str(out), "bootstrap", "--dry-run", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert d.returncode == 0, d.stdout + d.stderr
    dry = json.loads(d.stdout)
    assert dry["failed_hosts"] == []
    changed = {h: sorted(s["step"] for s in r["steps"] if s["status"] == "changed") for h, r in dry["hosts"].items()}
    print(json.dumps(changed), file=sys.stderr)
    # the head's munge key was kept beside the adopted file (0600): bootstrap would not replace the cluster's
    assert changed == {h: ["cgroup.conf", "slurm.conf"] for h in [head, *computes]}
    from slurmkit.paths import StateDir

    kept = StateDir.of(out).munge_key
    assert kept.stat().st_mode & 0o777 == 0o600
    import hashlib

    assert hashlib.sha256(kept.read_bytes()).hexdigest() == before_key
    for h in [head, *computes]:  # cgroup.conf: its header alone, which names the profile (`local` rendered it)
        cg = next(s_["diff"] for s_ in dry["hosts"][h]["steps"] if s_["step"] == "cgroup.conf")
        body = [ln for ln in cg.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        assert len(body) == 2 and all(ln[1:].startswith("# Rendered by slurmkit ") for ln in body), cg
        assert body[0][1:].split(" (profile ")[0] == body[1][1:].split(" (profile ")[0], cg
    diff = next(s["diff"] for s in dry["hosts"][head]["steps"] if s["step"] == "slurm.conf")
    # no node or partition line the dry run would write differs from Slurm's reading of the hand-written file
    assert "\n+NodeName=" in diff and "\n+PartitionName=" in diff
    assert sorted(l[1:] for l in diff.splitlines() if l.startswith("+NodeName=")) == sorted(
        l for l in rendered["slurm.conf"].splitlines() if l.startswith("NodeName="))


def test_init_from_head_by_address_without_an_ssh_config_keeps_that_address_for_the_head(cluster, tmp_path):
    """No OpenSSH config: the head reached at its address, as root with the cluster's key and known_hosts. slurm.conf
    names it by name only (SlurmctldHost=<name>), which this machine does not resolve: the address it was reached
    at is its SSH address in the adopted file, and validate passes."""
    lc = cluster
    head = expand(lc.spec["heads"]["names"])[0]
    ssh = lc.spec["ssh"]
    out = tmp_path / "by-address.yaml"
    from slurmkit.cli.adopt import run_adopt

    run_adopt(from_slurm_conf=None, gres_conf=None, topology_conf=None, from_head=lc.head_addr, ssh_config=None,
              user="root", identity_file=ssh["identity_file"], known_hosts=ssh["known_hosts"], output=str(out), force=False)
    c = parse_cluster(out.read_text(), str(out))
    assert [(h.name, h.address) for h in c.hosts() if h.role == "head"] == [(head, lc.head_addr)]
    assert [h.name for h in c.hosts() if h.role == "compute"] == expand(lc.spec["nodes"][0]["names"])
    v = subprocess.run([sys.executable, "-m", "slurmkit", "-c", str(out), "validate"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
