"""`slurmkit discover` on a real local cluster: facts over SSH through the head, the cache beside the cluster
file, rendering and bootstrapping from those facts, an unreachable host, declared hardware that contradicts."""

from __future__ import annotations

import json
import re
import tarfile
from datetime import datetime

import pytest

from slurmkit import hostlist
from slurmkit.facts import COMMANDS, ROUTE_TO_HEAD
from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live

HW_KEYS = ("sockets", "cores_per_socket", "threads_per_core", "memory_mb")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("discover"), computes=2, prefix="scd") as lc:
        yield lc


def nodes(lc) -> list[str]:
    return [f"{lc.name}-node-1", f"{lc.name}-node-2"]


def cache(lc, host: str):
    return lc.file.parent / ".slurmkit" / "facts" / f"{host}.json"


def slurmd_c(lc, node: str) -> dict[str, str]:
    out = lc.on(node, "slurmd -C").stdout
    return dict(re.findall(r"(\w+)=(\S+)", out))


def test_discover_reports_cpu_only_nodes_and_caches_facts(cluster):
    p = cluster.cli("discover", "--json")
    report = json.loads(p.stdout)
    hosts = [f"{cluster.name}-head-1", *nodes(cluster)]
    assert sorted(report["hosts"]) == sorted(hosts) and report["unreachable"] == []
    for name in nodes(cluster):
        h = report["hosts"][name]
        sd = slurmd_c(cluster, name)
        assert h["ok"] and h["gpus"] == [] and h["hcas"] == [] and h["rails"] == []
        assert set(h["nccl_env"]) == {"NCCL_SOCKET_IFNAME"}  # no IB: no NCCL_IB_HCA (the interface: next test)
        assert (h["sockets"], h["cores_per_socket"], h["threads_per_core"]) == (
            int(sd["Boards"]) * int(sd["SocketsPerBoard"]), int(sd["CoresPerSocket"]), int(sd["ThreadsPerCore"]))
    # CPU-only nodes have no rail to be down: no finding at all, even with --strict
    assert report["findings"] == []
    assert cluster.cli("discover", "--strict").returncode == 0
    text = cluster.cli("discover").stdout
    assert all(n in text for n in hosts) and "findings: none" in text
    env = cluster.cli("discover", "--nccl-env").stdout
    assert "export NCCL_IB_HCA" not in env and "no usable InfiniBand rail" in env and "export NCCL_SOCKET_IFNAME=" in env
    for name in hosts:
        record = json.loads(cache(cluster, name).read_text())
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0
        expected = set(COMMANDS) | {ROUTE_TO_HEAD} | ({"ibnetdiscover"} if name.endswith("head-1") else set())
        assert set(record["commands"]) == expected and set(record["outputs"]) == expected
        assert record["commands"]["slurmd"] == COMMANDS["slurmd"]
        assert record["outputs"]["nvidia_smi_query"] == "" and record["facts"]["gpus"] == []
        assert record["outputs"]["slurmd"].startswith(f"NodeName={name} ")
        # the Slurm the host runs, as its own slurmd -V says it (read here by hand: "slurm-wlm 22.05.8")
        version = cluster.on(name, "/usr/sbin/slurmd -V").stdout.split()[-1]
        assert record["facts"]["slurm"]["daemons"]["slurmd"] == version
        assert report["hosts"][name]["slurm"] == [{"version": version, "source": "installed"}]
    assert report["slurm"]["release"] == version.rsplit(".", 1)[0] and report["slurm"]["source"] == "nodes"
    assert f"render and bootstrap target {version.rsplit('.', 1)[0]}" in " ".join(text.split())


def holding_interface(lc, node: str, address: str) -> str:
    """What `ip -o -4 addr` inside the node says holds ``address`` (awk, not slurmkit's parser)."""
    out = lc.on(node, f"ip -o -4 addr show | awk -v a={address} '{{split($4, p, \"/\"); if (p[1] == a) print $2}}'").stdout.split()
    assert len(out) == 1, out
    return out[0]


def test_nccl_socket_ifname_names_the_interface_holding_the_node_address(cluster):
    spec_addresses = hostlist.expand(cluster.spec["nodes"][0]["addresses"])
    report = json.loads(cluster.cli("discover", "--json").stdout)
    ifnames = {n: holding_interface(cluster, n, a) for n, a in zip(nodes(cluster), spec_addresses)}
    assert len(set(ifnames.values())) == 1, ifnames
    (ifname,) = set(ifnames.values())
    for name in nodes(cluster):
        assert report["hosts"][name]["mgmt_ifname"] == ifname
        assert report["hosts"][name]["nccl_env"] == {"NCCL_SOCKET_IFNAME": f"={ifname}"}
    (group,) = [g for g in report["groups"] if g["group"] == "nodes[0]"]
    assert group["mgmt_ifname"] == ifname
    assert group["nccl_env"] == [{"hosts": hostlist.fold(nodes(cluster)), "env": {"NCCL_SOCKET_IFNAME": f"={ifname}"}}]
    env = cluster.cli("discover", "--nccl-env").stdout
    assert f"export NCCL_SOCKET_IFNAME='={ifname}'" in env
    # the head is reached on its management address: its interface is the one holding that one
    head = f"{cluster.name}-head-1"
    assert report["hosts"][head]["mgmt_ifname"] == holding_interface(cluster, head, cluster.head_addr)


def test_render_without_declared_hardware_matches_slurmd_c(cluster):
    cluster.edit(lambda s: [s["nodes"][0].pop(k) for k in HW_KEYS])
    p = cluster.cli("render", "--stdout")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("NodeName=")]
    for name in nodes(cluster):
        line = next(ln for ln in lines if name in hostlist.expand(ln.split()[0].split("=", 1)[1]))
        got = dict(w.split("=", 1) for w in line.split())
        sd = slurmd_c(cluster, name)
        assert got["CPUs"] == sd["CPUs"]
        assert int(got["Sockets"]) == int(sd["Boards"]) * int(sd["SocketsPerBoard"])
        assert got["CoresPerSocket"] == sd["CoresPerSocket"] and got["ThreadsPerCore"] == sd["ThreadsPerCore"]
        # documented in slurmkit.hardware.memory_to_declare: slurmd's RealMemory rounded down to a whole GiB
        assert int(got["RealMemory"]) == int(sd["RealMemory"]) // 1024 * 1024
    assert "gres.conf" not in p.stdout  # no GPU found, none declared


def test_bootstrap_with_discovered_hardware_nodes_idle(cluster):
    code, out = cluster.bootstrap()
    assert code == 0 and set(out["node_states"]) == set(nodes(cluster))
    assert set(out["node_states"].values()) == {"IDLE"}
    rows = sorted(cluster.head("sinfo -h -N -o '%N %T %c'").stdout.split("\n"))
    assert [r.split() for r in rows if r] == [[n, "idle", slurmd_c(cluster, n)["CPUs"]] for n in nodes(cluster)]


def test_unreachable_host_named_others_cached(cluster):
    from slurmkit.local.cluster import start_sshd, stop_sshd

    up, down = nodes(cluster)
    for n in (up, down):
        cache(cluster, n).unlink()
    stop_sshd(cluster.name, down)
    try:
        p = cluster.cli("discover", check=False)
        pj = cluster.cli("discover", "--json", check=False)
    finally:
        start_sshd(cluster.name, down)
    assert p.returncode == 1 and pj.returncode == 1
    assert down in p.stdout and "unreachable" in p.stdout
    report = json.loads(pj.stdout)
    assert report["unreachable"] == [down] and not report["hosts"][down]["ok"]
    assert [f["node"] for f in report["findings"] if f["code"] == "unreachable"] == [down]
    assert cache(cluster, up).exists() and not cache(cluster, down).exists()
    assert cluster.cli("discover").returncode == 0 and cache(cluster, down).exists()
    limited = json.loads(cluster.cli("discover", "--limit", down, "--json").stdout)
    assert list(limited["hosts"]) == [down] and limited["hosts"][down]["ok"]


def test_declared_hardware_contradicting_facts_fails_validate(cluster):
    name = nodes(cluster)[0]
    sd = slurmd_c(cluster, name)
    cores = int(sd["CoresPerSocket"])

    def declare(s):
        s["nodes"][0].update(sockets=int(sd["Boards"]) * int(sd["SocketsPerBoard"]), cores_per_socket=cores + 2,
                             threads_per_core=int(sd["ThreadsPerCore"]), memory_mb=int(sd["RealMemory"]) + 1000)

    cluster.edit(declare)
    p = cluster.cli("validate", check=False)
    assert p.returncode == 2
    assert f"nodes[0].cores_per_socket: {name} has {cores}, declared {cores + 2}" in p.stderr
    assert f"nodes[0].memory_mb: {name} has {sd['RealMemory']}, declared {int(sd['RealMemory']) + 1000}" in p.stderr
    problems = json.loads(cluster.cli("validate", "--json", check=False).stdout)["problems"]
    assert {pr["path"] for pr in problems} == {"nodes[0].cores_per_socket", "nodes[0].memory_mb"}
    assert cluster.cli("render", "--stdout", check=False).returncode == 2
    # bootstrap and the support bundle go through the same hardware source: they refuse what render refuses
    expected = f"nodes[0].cores_per_socket: {name} has {cores}, declared {cores + 2}"
    p = cluster.cli("bootstrap", "--dry-run", check=False)
    assert p.returncode == 2 and expected in p.stderr and p.stdout == "", p.stdout + p.stderr
    bundle = cluster.cwd / "contradicted.tar.gz"
    cluster.cli("support-bundle", "-o", str(bundle), check=False)
    with tarfile.open(bundle) as tar:
        (error,) = [m for m in tar.getnames() if m.endswith("/rendered/ERROR.txt")]
        assert expected in tar.extractfile(error).read().decode()
        assert not [m for m in tar.getnames() if m.endswith("/rendered/slurm.conf")]
    bundle.unlink()
    cluster.edit(lambda s: s["nodes"][0].update(cores_per_socket=cores, memory_mb=int(sd["RealMemory"]) - 100))
    assert cluster.cli("validate").returncode == 0
