"""`slurmkit local up --image`: nodes that are machines, each booting its own Debian root (real debootstrap image,
real systemd-nspawn, real sshd), on this machine. The image is built by the test itself on a fresh machine."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.live

if os.geteuid() != 0:
    pytest.skip("needs root (namespaces, overlay mounts, systemd-nspawn, debootstrap)", allow_module_level=True)

from slurmkit.local import cluster as lc  # noqa: E402
from slurmkit.local import netns  # noqa: E402


def slurmkit(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "slurmkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"slurmkit {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


class ImageCluster:
    def __init__(self, name: str, cwd: Path):
        self.name, self.cwd = name, cwd
        self.file = cwd / ".slurmkit" / "local" / name / "cluster.yaml"
        self.spec = yaml.safe_load(self.file.read_text())
        self.state = lc.State.load(name)
        self.plan = self.state.plan
        ssh = self.spec["ssh"]
        # The cluster file's ssh settings, as slurmkit uses them: its key, its known_hosts, the head as jump host.
        self.opts = ["-i", ssh["identity_file"], "-o", f"UserKnownHostsFile={ssh['known_hosts']}",
                     "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        self.jump = ssh["proxy_jump"]

    def ssh(self, node: lc.NodePlan, command: str) -> subprocess.CompletedProcess:
        proxy = [] if node.role == "head" else ["-o", "ProxyCommand=ssh " + " ".join(self.opts) + f" -W %h:%p {self.jump}"]
        return subprocess.run(["ssh", *self.opts, *proxy, f"root@{node.ssh_address}", command],
                              capture_output=True, text=True, timeout=120)

    def run(self, node: lc.NodePlan, command: str) -> str:
        r = self.ssh(node, command)
        assert r.returncode == 0, f"{node.name}: {command} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout


def _leftovers(name: str, plan: lc.Plan) -> list[str]:
    """Whatever of the cluster is still on the machine: links, state, route, processes, mounts, cgroups, nspawn's
    directories, nspawn processes."""
    left = [link for link in netns.links() if plan.link_pattern.fullmatch(link)]
    left += [str(p) for p in (Path(plan.state_dir),) if p.exists()]
    left += [str(n) for n in netns.routes() if str(n) == plan.private_subnet]
    left += list(netns.node_processes(re.compile(rf"{name}-(head|node)-\d+")))
    with open("/proc/self/mounts") as f:
        left += [line.split()[1] for line in f if line.split()[1].startswith(str(plan.state_dir))]
    for n in plan.nodes:
        left += [str(d) for d in Path(netns.CGROUP_ROOT).glob(f"*/{netns.NODE_CGROUP_PREFIX}{n.name}")]
        left += [str(d) for d in Path(netns.CGROUP_ROOT).glob(f"{netns.NODE_CGROUP_PREFIX}{n.name}")]
        left += [str(d) for d in Path(netns.CGROUP_ROOT).glob(f"*/slurm_{n.name}")]  # what slurmd makes
        left += [str(d) for d in (netns.NSPAWN_PROPAGATE / n.name,) if d.exists()]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--register=no" in cmdline and any(a.startswith(f"--machine={name}-".encode()) for a in cmdline):
                left.append(f"systemd-nspawn pid {entry}")
            if plan.image and b"http.server" in cmdline and plan.heads[0].private_address.encode() in cmdline:
                left.append(f"site mirror pid {entry}")
    return left


def _up(image: str, computes: int, cwd: Path, *extra: str) -> str:
    name = "sd" + secrets.token_hex(3)
    # On a fresh machine this builds the image first (debootstrap: about a minute).
    slurmkit("local", "up", "--image", image, "-n", str(computes), "--heads", "1", "--name", name, *extra, cwd=cwd,
             timeout=1200)
    return name


@pytest.fixture(scope="module")
def booted(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("images")
    name = _up("debian-13", 2, cwd)
    try:
        cluster = ImageCluster(name, cwd)
        yield cluster
    finally:
        state = lc.State.load(name)
        slurmkit("local", "down", "--name", name, cwd=cwd)
    assert _leftovers(name, state.plan) == []


def _machine_os_release() -> dict[str, str]:
    from slurmkit.local.images import parse_os_release

    return parse_os_release(Path("/etc/os-release").read_text())


def test_every_node_answers_over_ssh_with_its_own_hostname_and_os(booted):
    assert booted.plan.image == "debian-13" and booted.plan.boot
    assert len(booted.plan.heads) == 1 and len(booted.plan.computes) == 2
    machine = _machine_os_release()
    for node in booted.plan.nodes:
        out = booted.run(node, "hostname; . /etc/os-release; echo $VERSION_ID $VERSION_CODENAME")
        hostname, release = out.splitlines()
        assert hostname == node.name
        assert release == "13 trixie", out
    # the machine runs another release: the nodes' /etc is not the machine's
    assert machine.get("VERSION_CODENAME") != "trixie"
    if machine.get("VERSION_CODENAME") == "bookworm":
        assert machine["VERSION_ID"] == "12"


def test_systemd_is_pid_1_and_the_system_runs(booted):
    for node in booted.plan.nodes:
        # --wait: until boot has finished (running, or degraded when a unit failed)
        r = booted.ssh(node, "cat /proc/1/comm; timeout 60 systemctl is-system-running --wait")
        comm, state = r.stdout.split()[:2]
        assert comm == "systemd", r.stdout + r.stderr
        assert state in ("running", "degraded"), r.stdout + r.stderr
        assert booted.run(node, "systemctl is-active ssh").strip() == "active"


def test_no_slurm_in_the_nodes_dpkg_database(booted):
    for node in booted.plan.nodes:
        r = booted.ssh(node, "dpkg -l slurmd munge")
        assert r.returncode != 0 and "no packages found matching slurmd" in r.stderr, r.stdout + r.stderr
    # the machine's own packages are not the node's: the light mode's nodes would have found the machine's slurmd
    machine = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "slurmd"], capture_output=True, text=True)
    if machine.returncode == 0 and "installed" in machine.stdout:
        assert "no packages found" in booted.ssh(booted.plan.computes[0], "dpkg -l slurmd").stderr


def test_etc_is_each_nodes_own_and_the_shared_dir_is_common(booted):
    a, b = booted.plan.computes
    head = booted.plan.heads[0]
    shared = booted.spec["shared_dir"]
    mark = f"/etc/slurmkit-test-{secrets.token_hex(3)}"
    booted.run(a, f"echo {a.name} > {mark} && echo from-a > {shared}/from-a")
    for other in (b, head):
        r = booted.ssh(other, f"cat {mark}")
        assert r.returncode != 0 and "No such file" in r.stderr, r.stdout
    assert not Path(mark).exists()  # nor on the machine
    assert (booted.plan.node_dir(a.name) / "upper" / mark.lstrip("/")).read_text() == f"{a.name}\n"
    assert booted.run(b, f"cat {shared}/from-a").strip() == "from-a"
    assert (Path(shared) / "from-a").read_text().strip() == "from-a"


def test_nodes_reach_each_other_by_name_but_have_no_route_out(booted):
    a, b = booted.plan.computes
    out = booted.run(a, f"ssh -o BatchMode=yes {b.name} hostname; ip -4 route")
    hostname, *routes = out.splitlines()
    assert hostname == b.name
    assert routes and not any(line.startswith("default") for line in routes)


def test_package_installs_stay_in_the_node(booted):
    """A node's dpkg database and /usr are its own: a package built and installed with dpkg in one node (no route
    out, so built there with dpkg-deb) is installed there only."""
    a, b = booted.plan.computes
    booted.run(a, "set -e; d=$(mktemp -d); mkdir -p $d/DEBIAN $d/usr/share/sdtest; echo hi > $d/usr/share/sdtest/hi; "
                  "printf 'Package: sdtest\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: slurmkit test <t@t>\\n"
                  "Description: a package installed in one node only\\n' > $d/DEBIAN/control; "
                  "dpkg-deb --build $d /tmp/sdtest.deb >/dev/null; dpkg -i /tmp/sdtest.deb >/dev/null")
    assert booted.run(a, "dpkg-query -W -f '${Status} ${Version}' sdtest") == "install ok installed 1.0"
    assert booted.run(a, "cat /usr/share/sdtest/hi").strip() == "hi"
    r = booted.ssh(b, "dpkg -l sdtest; ls /usr/share/sdtest")
    assert "no packages found matching sdtest" in r.stderr and "No such file" in r.stderr, r.stdout + r.stderr


def test_chroot_mode_without_systemd_and_its_down(tmp_path):
    name = _up("debian-13", 1, tmp_path, "--no-boot")
    try:
        c = ImageCluster(name, tmp_path)
        assert c.plan.image == "debian-13" and not c.plan.boot
        for node in c.plan.nodes:
            out = c.run(node, "hostname; . /etc/os-release; echo $VERSION_ID; cat /proc/1/comm")
            hostname, version, _pid1 = out.splitlines()
            assert (hostname, version) == (node.name, "13")
        # up ran apt-get update in the chroot nodes too: the site mirror's Slurm is their candidate
        assert re.search(r"Candidate: 24\.11\.", c.run(c.plan.computes[0], "apt-cache policy slurmd"))
    finally:
        slurmkit("local", "down", "--name", name, cwd=tmp_path)
    assert _leftovers(name, c.plan) == []


def test_local_images_lists_the_built_image(booted):
    import json

    data = {i["name"]: i for i in json.loads(slurmkit("local", "images", "--json", cwd=booted.cwd).stdout)}
    assert set(data) == {"debian-12", "debian-13", "debian-sid"}
    img = data["debian-13"]
    assert img["built"] and img["stale"] is None
    assert img["os_release"] == "Debian GNU/Linux 13 (trixie)"
    assert img["size_bytes"] > 100 * 2**20 and img["age_days"] >= 0
    assert img["slurm_candidate"].startswith("24.11")
    assert Path(img["path"], "root", "usr", "sbin", "sshd").exists()
    assert not list(Path(img["path"], "root", "usr", "sbin").glob("slurm*"))


def test_stop_and_start_sshd_of_a_booted_node(booted):
    """What the crash tests do to a node (its sshd stops: unreachable over SSH), through systemd here."""
    node = booted.plan.computes[1]
    lc.stop_sshd(booted.name, node.name)
    try:
        assert booted.ssh(node, "true").returncode == 255
    finally:
        lc.start_sshd(booted.name, node.name)
    assert booted.run(node, "hostname").strip() == node.name


def test_a_node_that_fails_to_boot_is_named_with_its_log_and_up_cleans_up(tmp_path, monkeypatch):
    """A real systemd-nspawn failure (an option it rejects, on one node only): every failed node is named with
    nspawn's own message, and what up made (holders, links, the nodes that did boot, cgroups) is removed."""
    name = "sd" + secrets.token_hex(3)
    plan = lc.build_plan(name, 2, 1, image="debian-13")
    bad = plan.computes[1].name
    real = netns.nspawn_argv

    def argv(root, machine, binds):
        return real(root, machine, binds) + (["--capability=CAP_SLURMKIT_BOGUS"] if machine == bad else [])

    monkeypatch.setattr(netns, "nspawn_argv", argv)
    try:
        with pytest.raises(lc.LocalClusterError) as info:
            lc.up(plan, tmp_path / "cluster.yaml")
        err = info.value
        assert list(err.failures) == [bad], str(err)
        assert "CAP_SLURMKIT_BOGUS" in str(err), str(err)
        assert _leftovers(name, plan) == []
        assert not (tmp_path / "cluster.yaml").exists()
    finally:
        lc.down(name)


def test_cgroup_controllers_are_writable_in_a_booted_node(booted):
    """As on a real machine: slurmd's proctrack/cgroup makes /sys/fs/cgroup/freezer/slurm_NODE (nspawn mounts
    the v1 controllers read-only; up remounts them read-write). `down` removes what is made there (the fixture's
    leftovers check)."""
    if Path(netns.CGROUP_ROOT, "cgroup.procs").exists():
        pytest.skip("a cgroup v2 machine: no v1 controllers")
    node = booted.plan.computes[1]
    out = booted.run(node, f"grep ' /sys/fs/cgroup/freezer ' /proc/mounts; mkdir /sys/fs/cgroup/freezer/slurm_{node.name} "
                           f"&& mkdir /sys/fs/cgroup/memory/slurm_{node.name} && echo made")
    assert " rw," in out.splitlines()[0] and out.splitlines()[-1] == "made", out


def test_local_images_lists_the_site_mirror_it_serves(booted):
    import json

    img = {i["name"]: i for i in json.loads(slurmkit("local", "images", "--json", cwd=booted.cwd).stdout)}["debian-13"]
    assert img["repo_stale"] is None and img["repo_slurm"].startswith("24.11.")
    repo = Path(img["path"], "repo")
    assert booted.plan.repo_path == repo
    debs = {p.name.split("_")[0] for p in repo.glob("*.deb")}
    assert {"slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server"} <= debs
    # only what the image lacks: nothing the image already has installed (its own dpkg database)
    status = (Path(img["path"], "root", "var", "lib", "dpkg", "status")).read_text()
    assert "Package: systemd\n" in status and "systemd" not in debs


def test_slurmd_installs_from_the_site_mirror_on_the_cluster_network(booted):
    """A compute (no route out: Debian's archive unreachable) installs slurmd 24.11.x with apt from the head's
    site mirror, its only source. Last in this file: it leaves slurmd on that node."""
    node = booted.plan.computes[0]
    mirror = booted.plan.repo_url
    assert mirror == f"http://{booted.plan.heads[0].private_address}/"
    sources = booted.run(node, "cat /etc/apt/sources.list /etc/apt/sources.list.d/*")
    uris = re.findall(r"^(?:deb\s+(?:\[[^]]*\]\s+)?(\S+)|URIs:\s*(\S+))", sources, re.M)
    assert [a or b for a, b in uris] == [mirror], sources
    assert "deb.debian.org" not in booted.run(node, "apt-cache policy")
    out = booted.run(node, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q slurmd")
    assert "Err:" not in out, out
    version = booted.run(node, "dpkg-query -W -f '${Status} ${Version}' slurmd")
    assert re.fullmatch(r"install ok installed 24\.11\.\d+\S*", version), version
    assert re.match(r"slurm(-wlm)? 24\.11\.", booted.run(node, "slurmd -V"))  # Debian's says "slurm-wlm 24.11.5"
    # the head's server saw that node fetch the .deb
    log = (booted.plan.node_dir(booted.plan.heads[0].name) / "site-mirror.log").read_text()
    assert re.search(rf"^{re.escape(node.private_address)} .*\"GET /\./slurmd_24\.11\.\S+\.deb HTTP/1\.1\" 200", log, re.M), log[-2000:]
    # and systemd runs it as a unit where systemd runs (enabled by the package; it fails to start with no
    # slurm.conf yet: bootstrap writes that)
    assert booted.run(node, "systemctl is-enabled slurmd").strip() == "enabled"
    # the other compute is untouched
    assert booted.ssh(booted.plan.computes[1], "dpkg -l slurmd").returncode != 0
