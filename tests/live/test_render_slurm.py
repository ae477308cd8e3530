"""Rendered configs proven by Debian's own Slurm 22.05: slurmctld starts on the rendered slurm.conf and reports
exactly the declared nodes, CPUs, memory, GRES, partitions and switches; a real slurmd registers this machine
with the hardware `slurmd -C` reports, and reads the rendered gres.conf (placeholder character devices)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
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


# ---------------------------------------------------------------- Slurm 24.11 and 26.05: Debian 13 and sid roots
#
# The nodes decide the version: in a root filesystem of engineer D's images (slurmkit local images: debootstrap of
# Debian 13 / sid, no Slurm in them) with Debian's Slurm installed, discovery's version commands run, their facts
# make hardware_source target that release, and that release's own slurmctld, slurmd -G and scontrol read the
# rendered files. The root is a copy of the image with slurmctld/slurmd/slurm-client/munge from Debian's archive,
# made once per image build under /var/tmp/slurmkit-live-roots (the image itself is never written to).

IMAGES_DIR = Path("/var/cache/slurmkit/images")
ROOTS_DIR = Path("/var/tmp/slurmkit-live-roots")
IMAGE_RELEASES = {"debian-13": ("24.11", 16837), "debian-sid": ("26.05", 16847)}


def _slurm_root(image: str) -> Path:
    """A copy of D's ``image`` root with Debian's Slurm and munge installed (made once per image build)."""
    import json

    base = IMAGES_DIR / image / "root"
    meta = IMAGES_DIR / image / "image.json"
    if not (base / "etc" / "os-release").is_file() or not meta.is_file():
        pytest.skip(f"no {image} image root in {IMAGES_DIR} (build it: slurmkit local images build {image})")
    recipe = json.loads(meta.read_text()).get("recipe", "unknown")
    root = ROOTS_DIR / f"{image}-{recipe}"
    if (root / "usr" / "sbin" / "slurmctld").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    tmp = ROOTS_DIR / f".{image}-{recipe}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(base), str(tmp)], check=True, timeout=300)
    (tmp / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")  # no daemon starts while installing
    (tmp / "usr/sbin/policy-rc.d").chmod(0o755)
    shutil.copy("/etc/resolv.conf", tmp / "etc/resolv.conf")
    r = subprocess.run(["chroot", str(tmp), "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get -o "
                        "Acquire::Check-Valid-Until=false install -y --no-install-recommends slurmctld slurmd "
                        "slurm-client munge"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"could not install Slurm into a copy of {image} (Debian's archive unreachable?): "
                    f"{r.stdout[-500:]}{r.stderr[-500:]}")
    os.replace(tmp, root)
    return root


class RootRunner:
    """Commands in ``root``: a private mount namespace with /proc and the machine's /sys (slurmd's cgroup/v1
    plugin needs /sys/fs/cgroup), then chroot. Daemons started here are stopped by their pid files."""

    def __init__(self, root: Path):
        self.root = root
        self.pids: list[Path] = []

    def argv(self, *args: str) -> list[str]:
        script = f'mount -t proc proc {self.root}/proc && mount --rbind /sys {self.root}/sys && exec chroot {self.root} "$@"'
        return ["unshare", "--mount", "--fork", "sh", "-c", script, "sh", *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        for pid_file in self.pids:
            try:
                os.kill(int(pid_file.read_text().strip()), 15)
            except (FileNotFoundError, ValueError, ProcessLookupError):
                pass
        deadline = time.monotonic() + 20
        for pid_file in self.pids:
            try:
                pid = int(pid_file.read_text().strip())
            except (FileNotFoundError, ValueError):
                continue
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)


def _version_records(runner: RootRunner, hosts: list[str]) -> dict[str, dict]:
    """Discovery's version commands run in the root: each host's cache record (the same root for all)."""
    from slurmkit.discovery import CommandOutput, facts_record
    from slurmkit.facts import COMMANDS

    names = ("slurm_version", "slurm_packages", "slurm_candidate")
    outputs = {}
    for name in names:
        r = runner.run("sh", "-c", COMMANDS[name])
        assert r.returncode == 0, r.stderr
        outputs[name] = CommandOutput(r.stdout, r.stderr, r.returncode)
    return {h: facts_record(h, {n: COMMANDS[n] for n in names}, outputs) for h in hosts}


@pytest.mark.parametrize("image", sorted(IMAGE_RELEASES))
def test_slurm_of_the_image_root_accepts_what_is_rendered_for_it(image):
    import time as _time

    from slurmkit.hardware import hardware_source, write_facts

    require_live()
    release, port = IMAGE_RELEASES[image]
    root = _slurm_root(image)
    runner = RootRunner(root)
    sk = root / "sk"
    shutil.rmtree(sk, ignore_errors=True)
    for d in ("etc", "state", "spool/sk-gpu-1", "dev"):
        (sk / d).mkdir(parents=True)
    sk.chmod(0o755)
    assert runner.run("chown", "slurm:slurm", "/sk/state").returncode == 0
    for i in range(8):
        os.mknod(sk / "dev" / f"nvidia{i}", 0o666 | 0o020000, os.makedev(241, i))  # S_IFCHR placeholders
    (sk / "munge.key").write_bytes(os.urandom(1024))
    (sk / "munge.key").chmod(0o600)
    head = socket.gethostname()
    # slurmctld must resolve its own name to a non-loopback address (REAL-NODES.md): this machine's first one
    address = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout.split()[0]
    hosts_file = root / "etc" / "hosts"
    if f" {head}\n" not in hosts_file.read_text():
        hosts_file.write_text(hosts_file.read_text() + f"{address} {head}\n")
    data = {
        # local: the GPUs are placeholders that nvidia-smi facts would contradict on a real profile
        "cluster": "livever", "profile": "local", "ssh": {"user": "root"}, "heads": head,
        "nodes": [
            {"names": "sk-cpu-[1-2]", "addresses": "127.0.1.[1-2]", "sockets": 1, "cores_per_socket": 4,
             "threads_per_core": 2, "memory_mb": 16000},
            {"names": "sk-gpu-[1-2]", "addresses": "127.0.2.[1-2]", "sockets": 2, "cores_per_socket": 52,
             "threads_per_core": 2, "memory_mb": 1843200,
             "gpus": {"type": "h100", "count": 8, "files": "/sk/dev/nvidia[0-7]"}},
        ],
        "partitions": [{"name": "cpu", "nodes": "sk-cpu-[1-2]", "default": True},
                       {"name": "gpu", "nodes": "sk-gpu-[1-2]", "max_time": "2-00:00:00"}],
        "state_dir": "/sk/state",
        "topology": {"switches": [{"name": "leaf1", "nodes": "sk-cpu-[1-2]"},
                                  {"name": "leaf2", "nodes": "sk-gpu-[1-2]"},
                                  {"name": "spine", "switches": "leaf[1-2]"}]},
        "slurm_conf": {"SlurmctldPort": port, "SlurmdPort": port + 1, "AuthInfo": "socket=/sk/munge.sock",
                       "SlurmctldPidFile": "/sk/slurmctld.pid", "SlurmctldLogFile": "/sk/slurmctld.log",
                       "SlurmdPidFile": "/sk/slurmd-%n.pid", "SlurmdLogFile": "/sk/slurmd-%n.log",
                       "SlurmdSpoolDir": "/sk/spool/%n"},
    }
    cluster_file = sk / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump(data, sort_keys=False))
    cluster = load_cluster(cluster_file)
    for host, rec in _version_records(runner, [h.name for h in cluster.hosts()]).items():
        write_facts(cluster_file, host, rec)
    rendered = render_cluster(cluster, hardware_source(cluster, cluster_file))
    assert rendered.target.release == release and rendered.target.source == "nodes"
    rendered.write(sk / "etc")
    conf = "/sk/etc/slurm.conf"
    try:
        munged = subprocess.Popen(runner.argv("munged", "--socket=/sk/munge.sock", "--key-file=/sk/munge.key",
                                              "--pid-file=/sk/munged.pid", "--seed-file=/sk/munge.seed",
                                              "--log-file=/sk/munged.log", "--force"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert munged.wait(timeout=30) == 0  # munged daemonizes
        runner.pids.append(sk / "munged.pid")

        g = runner.run("slurmd", "-G", "-f", conf, "-N", "sk-gpu-1")
        gres = [ln for ln in (g.stdout + g.stderr).splitlines() if "Gres Name=gpu" in ln]
        assert len(gres) == 8, g.stdout + g.stderr
        for i, line in enumerate(gres):
            assert "Type=h100" in line and f"Index={i}" in line and f"File=/sk/dev/nvidia{i}" in line
        assert "defunct" not in g.stdout + g.stderr  # e.g. CgroupAutomount, which 24.11 and 26.05 no longer read

        r = runner.run("slurmctld", "-f", conf)
        assert r.returncode == 0, r.stderr
        runner.pids.append(sk / "slurmctld.pid")
        deadline = _time.monotonic() + 60
        while runner.run("env", f"SLURM_CONF={conf}", "scontrol", "ping").returncode != 0:
            assert _time.monotonic() < deadline, (sk / "slurmctld.log").read_text()[-3000:]
            _time.sleep(0.5)
        nodes = node_records(runner.run("env", f"SLURM_CONF={conf}", "scontrol", "-o", "show", "node").stdout)
        assert sorted(nodes) == ["sk-cpu-1", "sk-cpu-2", "sk-gpu-1", "sk-gpu-2"]
        n = nodes["sk-gpu-1"]
        assert (n["CPUTot"], n["Sockets"], n["CoresPerSocket"], n["RealMemory"], n["Gres"], n["NodeAddr"]) == (
            "208", "2", "52", "1843200", "gpu:h100:8", "127.0.2.1")
        topo = runner.run("env", f"SLURM_CONF={conf}", "scontrol", "show", "topology").stdout
        assert re.search(r"SwitchName=spine Level=1 .*Switches=leaf\[1-2\]", topo), topo
        log = (sk / "slurmctld.log").read_text()
        assert f"slurmctld version {rendered.target.hosts[0].version} started" in log
        assert "defunct" not in log and "fatal" not in log, log[-3000:]
    finally:
        runner.stop()
