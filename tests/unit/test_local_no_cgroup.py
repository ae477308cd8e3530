"""Image nodes with their own cgroup v2 (debian-sid, Slurm 26.05) on a machine that also mounts cgroup v1: Slurm
26.05.5's slurmd exits "fatal: Hybrid mode is not supported" there (seen on this machine), so `local up` gives that
cluster Slurm without cgroup plugins, and cgroup.conf says CgroupPlugin=disabled (26.05.5's slurmd fatals on
cgroup init otherwise). Rendered for real through the cluster file `local up` writes."""

from __future__ import annotations

from pathlib import Path

import yaml

from slurmkit.cluster import parse_cluster
from slurmkit.local.cluster import (
    NO_CGROUP_SLURM_CONF,
    SimulatedHardware,
    cluster_file_dict,
    machine_cgroup_hybrid,
    make_plan,
)
from slurmkit.render import render_cluster

HW = SimulatedHardware(sockets=1, cores_per_socket=2, threads_per_core=1, real_memory_mb=24105)
# /proc/self/cgroup of a process in a debian-sid node here (captured: sdsid1-node-1, sshd's session)
HYBRID = ("9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/\n3:cpuset:/\n2:cpuacct:/\n"
          "1:cpu:/\n0::/system.slice/ssh.service\n")


def sid_plan(**kw):
    return make_plan("sdx", 2, 1, HW, [], state_root=Path("/var/lib/slurmkit/local"), image="debian-sid",
                     image_root="/var/cache/slurmkit/images/debian-sid/root", boot=True, **kw)


def files(spec: dict, version: str) -> dict[str, str]:
    return render_cluster(parse_cluster(yaml.safe_dump(spec)), version=version).files


def line(text: str, key: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(key + "="))


def test_machine_cgroup_hybrid():
    assert machine_cgroup_hybrid(HYBRID) is True
    assert machine_cgroup_hybrid("0::/init.scope\n") is False  # a pure cgroup v2 machine


def test_sid_nodes_on_a_hybrid_machine_get_slurm_without_cgroup_plugins():
    spec = cluster_file_dict(sid_plan(unified_cgroup=True), hybrid=True)
    assert spec["slurm_conf"] == NO_CGROUP_SLURM_CONF
    out = files(spec, "26.05")
    assert line(out["slurm.conf"], "ProctrackType") == "ProctrackType=proctrack/linuxproc"
    assert line(out["slurm.conf"], "TaskPlugin") == "TaskPlugin=task/affinity"
    assert line(out["slurm.conf"], "JobAcctGatherType") == "JobAcctGatherType=jobacct_gather/linux"
    assert line(out["cgroup.conf"], "CgroupPlugin") == "CgroupPlugin=disabled"


def test_cgroups_stay_where_they_work():
    # a pure v2 machine, or an image without its own v2 hierarchy: no override, cgroup plugins as always
    assert "slurm_conf" not in cluster_file_dict(sid_plan(unified_cgroup=True), hybrid=False)
    assert "slurm_conf" not in cluster_file_dict(sid_plan(unified_cgroup=False), hybrid=True)
    out = files(cluster_file_dict(sid_plan(unified_cgroup=True), hybrid=False), "26.05")
    assert line(out["slurm.conf"], "ProctrackType") == "ProctrackType=proctrack/cgroup"
    assert line(out["cgroup.conf"], "CgroupPlugin") == "CgroupPlugin=autodetect"
    # CgroupPlugin=disabled is rendered only for 26.05+, where it was tried: 24.11 keeps autodetect
    out = files(cluster_file_dict(sid_plan(unified_cgroup=True), hybrid=True), "24.11")
    assert line(out["cgroup.conf"], "CgroupPlugin") == "CgroupPlugin=autodetect"
