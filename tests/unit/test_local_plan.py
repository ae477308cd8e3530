"""The local cluster's pure plan: names, addresses, interfaces, subnets, files, and the cluster-file dict."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from slurmkit.local import LocalClusterError
from slurmkit.local.cluster import (
    SimulatedHardware,
    Plan,
    choose_subnets,
    cluster_file_dict,
    hosts_file,
    interface_tag,
    make_plan,
    node_mounts,
    parse_slurmd_c,
    sshd_config,
)
from slurmkit.local.netns import mount_calls, network_batch, node_cgroup_hierarchies, node_link_batch

HW = SimulatedHardware(sockets=1, cores_per_socket=2, threads_per_core=1, real_memory_mb=24105)
NO_ROUTES: list[ipaddress.IPv4Network] = []


def plan(name: str = "demo", computes: int = 3, heads: int = 2, **kw) -> Plan:
    return make_plan(name, computes, heads, HW, NO_ROUTES, state_root=Path("/var/lib/slurmkit/local"), **kw)


def test_parse_slurmd_c_of_this_machine():
    # Captured on the project's machine (Debian 12, 2 cores): `slurmd -C`
    text = (
        "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105\n"
        "UpTime=0-00:03:34\n"
    )
    assert parse_slurmd_c(text) == SimulatedHardware(1, 2, 1, 24105)


def test_parse_slurmd_c_rejects_other_text():
    with pytest.raises(LocalClusterError):
        parse_slurmd_c("slurmd: error: something\n")


def test_names_and_addresses():
    p = plan()
    mgmt, private = ipaddress.ip_network(p.mgmt_subnet), ipaddress.ip_network(p.private_subnet)
    assert [n.name for n in p.heads] == ["demo-head-1", "demo-head-2"]
    assert [n.name for n in p.computes] == ["demo-node-1", "demo-node-2", "demo-node-3"]
    assert [n.mgmt_address for n in p.heads] == [str(mgmt.network_address + 11), str(mgmt.network_address + 12)]
    assert [n.private_address for n in p.heads] == [str(private.network_address + 1), str(private.network_address + 2)]
    assert [n.private_address for n in p.computes] == [str(private.network_address + k) for k in (11, 12, 13)]
    assert all(n.mgmt_address is None for n in p.computes)
    assert p.host_address == str(mgmt.network_address + 1)
    # computes are reached on their private address (through the jump host), heads on their management one
    assert p.computes[0].ssh_address == p.computes[0].private_address
    assert p.heads[0].ssh_address == p.heads[0].mgmt_address


def test_interfaces_fit_in_15_characters_and_sit_on_the_right_bridge():
    p = make_plan("a-rather-long-cluster-name", 244, 9, HW, NO_ROUTES)
    names = [p.mgmt_bridge, p.private_bridge] + [link.host_ifname for n in p.nodes for link in n.links]
    assert max(len(n) for n in names) <= 15
    assert len(set(names)) == len(names)
    head = p.heads[0]
    assert [(link.inner_ifname, link.bridge) for link in head.links] == [("eth0", p.mgmt_bridge), ("eth1", p.private_bridge)]
    assert [(link.inner_ifname, link.bridge) for link in p.computes[0].links] == [("eth0", p.private_bridge)]
    assert all(p.link_pattern.fullmatch(n) for n in names)


def test_interface_tag():
    assert interface_tag("demo") == "demo"
    long_tag = interface_tag("a-rather-long-cluster-name")
    assert len(long_tag) == 7 and long_tag.startswith("a-")
    assert interface_tag("a-rather-long-cluster-name2") != long_tag


def test_link_pattern_does_not_take_another_clusters_links():
    ab, abc = plan("ab"), plan("ab-c")
    other = [abc.mgmt_bridge, abc.private_bridge] + [link.host_ifname for n in abc.nodes for link in n.links]
    assert not any(ab.link_pattern.fullmatch(n) for n in other)
    assert ab.link_pattern.fullmatch(ab.private_bridge)


def test_subnets_are_deterministic_and_avoid_taken_routes():
    mgmt, private = choose_subnets("demo", [])
    assert (mgmt, private) == choose_subnets("demo", [])
    assert mgmt.prefixlen == private.prefixlen == 24
    assert mgmt.is_private and not mgmt.overlaps(private)
    # a route over the first choice pushes the choice elsewhere; the default route is not a collision
    taken = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network(f"{private.network_address}/25")]
    mgmt2, private2 = choose_subnets("demo", taken)
    assert (mgmt2, private2) != (mgmt, private)
    assert not any(n.overlaps(t) for n in (mgmt2, private2) for t in taken[1:])
    assert choose_subnets("demo", [ipaddress.ip_network("0.0.0.0/0")]) == (mgmt, private)


@pytest.mark.parametrize("bad", ["Demo", "1abc", "a_b", "ab-", "", "x" * 33])
def test_invalid_names(bad):
    with pytest.raises(LocalClusterError):
        plan(bad)


@pytest.mark.parametrize("computes,heads", [(0, 1), (245, 1), (2, 0), (2, 10)])
def test_invalid_counts(computes, heads):
    with pytest.raises(LocalClusterError):
        plan(computes=computes, heads=heads)


def test_cluster_file_dict():
    p = plan(gpus_per_node=8, gpu_type="h100")
    mgmt, private = ipaddress.ip_network(p.mgmt_subnet), ipaddress.ip_network(p.private_subnet)
    m, c = str(mgmt.network_address)[:-2], str(private.network_address)[:-2]  # "10.X.Y"
    state = "/var/lib/slurmkit/local/demo"
    assert cluster_file_dict(p) == {
        "cluster": "demo",
        "profile": "local",
        "ssh": {
            "user": "root",
            "identity_file": f"{state}/id_ed25519",
            "proxy_jump": f"root@{m}.11",
            "known_hosts": f"{state}/known_hosts",
        },
        "heads": {"names": "demo-head-[1-2]", "addresses": f"{m}.[11-12]"},
        "nodes": [
            {
                "names": "demo-node-[1-3]",
                "addresses": f"{c}.[11-13]",
                "sockets": 1,
                "cores_per_socket": 2,
                "threads_per_core": 1,
                "memory_mb": 22899,  # 95 % of 24105
                "gpus": {"type": "h100", "count": 8, "files": "/dev/slurmkit/demo/nvidia[0-7]"},
            }
        ],
        "partitions": [{"name": "debug", "nodes": "ALL", "default": True}],
        "state_dir": f"{state}/shared/slurmctld",
        "shared_dir": f"{state}/shared",
    }


def test_cluster_file_without_gpus_has_no_gpu_key():
    assert "gpus" not in cluster_file_dict(plan())["nodes"][0]


def test_plan_round_trips_through_json_dict():
    p = plan(gpus_per_node=2)
    assert Plan.from_dict(p.to_dict()) == p


def test_hosts_file_names_every_host_at_its_private_address():
    p = plan()
    lines = hosts_file(p).splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    for n in p.nodes:
        assert f"{n.private_address}\t{n.name}" in lines


def test_sshd_config():
    p = plan()
    head, node = p.heads[0], p.computes[0]
    head_cfg, node_cfg = sshd_config(p, head).splitlines(), sshd_config(p, node).splitlines()
    assert f"ListenAddress {head.mgmt_address}" in head_cfg and f"ListenAddress {head.private_address}" in head_cfg
    assert [line for line in node_cfg if line.startswith("ListenAddress")] == [f"ListenAddress {node.private_address}"]
    assert "UsePAM no" in node_cfg and "PidFile /run/sshd.pid" in node_cfg
    assert f"HostKey /var/lib/slurmkit/local/demo/nodes/demo-node-1/ssh/ssh_host_ed25519_key" in node_cfg
    assert "Subsystem sftp /usr/lib/openssh/sftp-server" in node_cfg


def test_node_mounts_cover_slurm_and_munge_default_paths():
    p = plan()
    mounts = node_mounts(p, p.computes[0])
    targets = [m.target for m in mounts]
    for path in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/slurm", "/etc/munge", "/var/log/slurm",
                 "/var/log/munge", "/var/lib/munge", "/var/spool", "/root", "/run"):
        assert path in targets
    assert targets[-1] == "/run"
    node_dir = "/var/lib/slurmkit/local/demo/nodes/demo-node-1"
    assert all(m.source.startswith(node_dir) for m in mounts if m.kind == "bind")
    root = next(m for m in mounts if m.target == "/root")
    assert root.kind == "overlay" and root.source.startswith("lowerdir=/root,upperdir=" + node_dir)


def test_mount_calls_make_mounts_private_then_bind_and_overlay_in_order():
    p = plan()
    mounts = node_mounts(p, p.computes[0])
    calls = mount_calls(mounts)
    assert calls[0] == ("none", "/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE, as unshare(1) does
    node_dir = "/var/lib/slurmkit/local/demo/nodes/demo-node-1"
    assert (f"{node_dir}/run", "/run", None, 0x1000, None) in calls  # MS_BIND
    assert [c[1] for c in calls[1:]] == [m.target for m in mounts] and calls[-1][1] == "/run"
    root = next(c for c in calls if c[1] == "/root")
    assert root[0] == "overlay" and root[2] == "overlay" and root[4].startswith("lowerdir=/root,upperdir=" + node_dir)


def test_network_batches():
    p = plan(computes=1, heads=1)
    head = p.heads[0]
    batch = network_batch(
        [p.mgmt_bridge, p.private_bridge], f"{p.host_address}/24", p.mgmt_bridge,
        {100: head.links, 200: p.computes[0].links}, p.private_subnet,
    ).splitlines()
    assert f"link add {p.mgmt_bridge} type bridge" in batch
    assert f"addr add {p.host_address}/24 dev {p.mgmt_bridge}" in batch
    assert "link add sk-demo-h1c type veth peer name eth1 netns 100" in batch
    assert "link add sk-demo-n1 type veth peer name eth0 netns 200" in batch
    assert f"link set sk-demo-n1 master {p.private_bridge}" in batch
    assert batch[-1] == f"route add unreachable {p.private_subnet}"
    inner = node_link_batch(p.computes[0].links).splitlines()
    assert inner == ["link set lo up", f"addr add {p.computes[0].private_address}/24 dev eth0", "link set eth0 up"]
    assert not any("route" in line for line in inner)


def test_preflight_needs_root(monkeypatch):
    from slurmkit.local import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(LocalClusterError, match="needs root") as info:
        netns.preflight()
    assert info.value.exit_code == 2


def test_preflight_names_the_package_of_a_missing_binary(monkeypatch):
    from slurmkit.local import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "which", lambda b: None if b in ("sshd", "nsenter") else f"/usr/bin/{b}")
    with pytest.raises(LocalClusterError) as info:
        netns.preflight()
    assert "missing nsenter, sshd" in str(info.value)
    assert "apt-get install openssh-server util-linux" in str(info.value)


# /proc/self/cgroup as read on this project's machine (Debian 12, cgroup v1 hybrid, in a container whose memory
# cgroup is its own). The other inputs follow cgroups(7)'s "hierarchy-ID:controller-list:cgroup-path": cpu and
# cpuacct co-mounted on one hierarchy, and a cgroup v2-only host (one line, ID 0).
HYBRID = ("9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n"
          "4:memory:/process_api/947f8812b6055c2f5b9dcc41237f1f26\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n")
HYBRID_DIRS = ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd", "unified"]


def test_node_cgroups_go_where_this_process_sits_at_a_hierarchy_root_slurmd_reads():
    # memory is left alone here: this process is not at its root, so nodes started from it are not either
    assert node_cgroup_hierarchies(HYBRID, HYBRID_DIRS) == ["freezer", "cpuacct"]
    comounted = "12:freezer:/\n4:cpu,cpuacct:/\n3:memory:/\n0::/init.scope\n"
    dirs = ["cpu", "cpu,cpuacct", "cpuacct", "freezer", "memory", "unified"]  # cpu and cpuacct are links to it
    assert node_cgroup_hierarchies(comounted, dirs) == ["freezer", "cpu,cpuacct", "memory"]
    assert node_cgroup_hierarchies("0::/user.slice/user-0.slice/session-1.scope\n", ["cgroup.procs"]) == []
    assert node_cgroup_hierarchies("6:freezer:/\n", []) == []  # not mounted where slurmd looks: nothing to do
