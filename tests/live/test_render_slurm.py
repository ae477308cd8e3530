"""Rendered configs proven by Debian's own Slurm 22.05: slurmctld starts on the rendered slurm.conf and reports
exactly the declared nodes, CPUs, memory, GRES, partitions and switches; a real slurmd registers this machine
with the hardware `slurmd -C` reports, and reads the rendered gres.conf (placeholder character devices)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from slurmkit.cluster import load_cluster
from slurmkit.render import render_cluster
from tests.live.harness import Harness, require_live, slurmd_C

pytestmark = pytest.mark.live


@pytest.fixture
def cluster_dir():
    require_live()
    # munged wants every directory above its socket searchable by all: pytest's tmp_path (0700) is not.
    root = Path(tempfile.mkdtemp(prefix="sk-live-", dir="/tmp"))
    root.chmod(0o755)
    h = Harness(root)
    try:
        h.start_munged()
        yield root, h
    finally:
        h.stop()
        shutil.rmtree(root, ignore_errors=True)


def write_cluster(tmp_path: Path, h: Harness, port_base: int) -> Path:
    hw = slurmd_C()
    sockets = int(hw["Boards"]) * int(hw["SocketsPerBoard"])
    devices = tmp_path / "dev"
    devices.mkdir()
    for i in range(8):
        os.mknod(devices / f"nvidia{i}", 0o666 | 0o020000, os.makedev(241, i))  # S_IFCHR
    data = {
        "cluster": "livetest",
        "ssh": {"user": "root"},
        "heads": socket.gethostname(),
        "nodes": [
            {   # this machine, as `slurmd -C` describes it, with 2 placeholder GPUs
                "names": "sk-self",
                "addresses": "127.0.0.1",
                "sockets": sockets,
                "cores_per_socket": int(hw["CoresPerSocket"]),
                "threads_per_core": int(hw["ThreadsPerCore"]),
                "memory_mb": int(hw["RealMemory"]),
                "gpus": {"type": "h100", "count": 2, "files": f"{devices}/nvidia[0-1]"},
            },
            {
                "names": "sk-cpu-[1-2]",
                "addresses": "127.0.1.[1-2]",
                "sockets": 1, "cores_per_socket": 4, "threads_per_core": 2, "memory_mb": 16000,
            },
            {
                "names": "sk-gpu-[1-2]",
                "addresses": "127.0.2.[1-2]",
                "sockets": 2, "cores_per_socket": 52, "threads_per_core": 2, "memory_mb": 1843200,
                "gpus": {"type": "h100", "count": 8, "files": f"{devices}/nvidia[0-7]"},
            },
        ],
        "partitions": [
            {"name": "cpu", "nodes": "sk-self,sk-cpu-[1-2]", "default": True},
            {"name": "gpu", "nodes": "sk-gpu-[1-2]", "max_time": "2-00:00:00"},
        ],
        "state_dir": str(tmp_path / "state"),
        "topology": {"switches": [
            {"name": "leaf1", "nodes": "sk-self,sk-cpu-[1-2]"},
            {"name": "leaf2", "nodes": "sk-gpu-[1-2]"},
            {"name": "spine", "switches": "leaf[1-2]"},
        ]},
        "slurm_conf": h.slurm_overrides(port_base),
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def show(h: Harness, conf: Path, *args: str) -> str:
    r = h.run(conf, "scontrol", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def node_records(text: str) -> dict[str, dict[str, str]]:
    out = {}
    for line in text.splitlines():
        rec = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
        if "NodeName" in rec:
            out[rec["NodeName"]] = rec
    return out


def test_slurmctld_and_slurmd_accept_the_rendered_configs(cluster_dir):
    tmp_path, h = cluster_dir
    cluster = load_cluster(write_cluster(tmp_path, h, port_base=16817))
    etc = tmp_path / "etc"
    render_cluster(cluster).write(etc)
    conf = etc / "slurm.conf"
    h.start_slurmctld(conf)

    nodes = node_records(show(h, conf, "-o", "show", "node"))
    assert sorted(nodes) == ["sk-cpu-1", "sk-cpu-2", "sk-gpu-1", "sk-gpu-2", "sk-self"]
    for name in ("sk-cpu-1", "sk-cpu-2"):
        n = nodes[name]
        assert (n["CPUTot"], n["Sockets"], n["CoresPerSocket"], n["ThreadsPerCore"], n["RealMemory"]) == ("8", "1", "4", "2", "16000")
        assert n["Gres"] == "(null)"
    for name, addr in (("sk-gpu-1", "127.0.2.1"), ("sk-gpu-2", "127.0.2.2")):
        n = nodes[name]
        assert (n["CPUTot"], n["Sockets"], n["CoresPerSocket"], n["RealMemory"], n["Gres"], n["NodeAddr"]) == (
            "208", "2", "52", "1843200", "gpu:h100:8", addr)

    parts = {p.split()[0].split("=")[1]: p for p in show(h, conf, "-o", "show", "partition").splitlines()}
    assert sorted(parts) == ["cpu", "gpu"]
    assert "Nodes=sk-cpu-[1-2],sk-self" in parts["cpu"] and "Default=YES" in parts["cpu"]
    assert "Nodes=sk-gpu-[1-2]" in parts["gpu"] and "MaxTime=2-00:00:00" in parts["gpu"] and "Default=NO" in parts["gpu"]

    topo = show(h, conf, "show", "topology")
    assert "SwitchName=leaf1 Level=0" in topo and "Nodes=sk-cpu-[1-2],sk-self" in topo
    assert "SwitchName=leaf2 Level=0" in topo and "Nodes=sk-gpu-[1-2]" in topo
    assert re.search(r"SwitchName=spine Level=1 .*Switches=leaf\[1-2\]", topo)

    sinfo = h.run(conf, "sinfo", "-h", "-o", "%P %D").stdout.split()
    assert sinfo == ["cpu*", "3", "gpu", "2"]

    # A real slurmd on this machine registers with what `slurmd -C` reports and the rendered gres.conf:
    # the node goes IDLE (not INVAL) with its 2 GPUs.
    h.start_slurmd(conf, "sk-self")
    h.wait(lambda: "IDLE" in h.run(conf, "sinfo", "-h", "-n", "sk-self", "-o", "%T").stdout.upper(), "sk-self idle", conf)
    n = node_records(show(h, conf, "-o", "show", "node", "sk-self"))["sk-self"]
    assert n["State"] == "IDLE" and n["Gres"] == "gpu:h100:2"


def test_slurmd_G_reads_rendered_gres_conf_per_device(cluster_dir):
    tmp_path, h = cluster_dir
    cluster = load_cluster(write_cluster(tmp_path, h, port_base=16827))
    etc = tmp_path / "etc"
    render_cluster(cluster).write(etc)
    r = subprocess.run(["slurmd", "-G", "-f", str(etc / "slurm.conf"), "-N", "sk-gpu-1"], capture_output=True,
                       text=True, timeout=30, env=h.env(etc / "slurm.conf"))
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "Gres Name=gpu" in ln]
    assert len(lines) == 8, r.stdout + r.stderr
    for i, line in enumerate(lines):
        assert "Type=h100" in line and f"Index={i}" in line and f"File={tmp_path}/dev/nvidia{i}" in line
