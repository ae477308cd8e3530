"""`slurmkit local`: real namespaces, bridges and sshd on this machine (root only)."""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.live

NEEDED = {"ip": "iproute2", "nsenter": "util-linux", "sshd": "openssh-server",
          "ssh": "openssh-client", "ssh-keygen": "openssh-client"}


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (namespaces, bridges, mounts)"
    from slurmkit.local.netns import which

    missing = [b for b in NEEDED if which(b) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install {' '.join(sorted({NEEDED[b] for b in missing}))})"
    return None


if _skip_reason():
    pytest.skip(_skip_reason(), allow_module_level=True)

from slurmkit.local import cluster as lc  # noqa: E402
from slurmkit.local import netns  # noqa: E402


def slurmkit(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "slurmkit", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"slurmkit {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


class Cluster:
    def __init__(self, name: str, cwd: Path):
        self.name, self.cwd = name, cwd
        self.file = cwd / ".slurmkit" / "local" / name / "cluster.yaml"
        self.spec = yaml.safe_load(self.file.read_text())
        self.state = lc.State.load(name)
        ssh = self.spec["ssh"]
        # `-J` would not pass -i/-o on to the jump connection: say it all in a ProxyCommand.
        self.opts = ["-i", ssh["identity_file"], "-o", f"UserKnownHostsFile={ssh['known_hosts']}",
                     "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        self.jump = ssh["proxy_jump"]

    def ssh(self, address: str, command: str, via_head: bool = True) -> subprocess.CompletedProcess:
        proxy = ["-o", "ProxyCommand=ssh " + " ".join(self.opts) + f" -W %h:%p {self.jump}"] if via_head else []
        return subprocess.run(["ssh", *self.opts, *proxy, f"root@{address}", command],
                              capture_output=True, text=True, timeout=60)


def unique_name() -> str:
    return "lt" + secrets.token_hex(3)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    name, cwd = unique_name(), tmp_path_factory.mktemp("local")
    try:
        slurmkit("local", "up", "-n", "2", "--heads", "1", "--name", name, "--gpus-per-node", "8", cwd=cwd)
        yield Cluster(name, cwd)
    finally:
        slurmkit("local", "down", "--name", name, cwd=cwd)


def test_computes_answer_through_the_head_with_their_name_and_no_default_route(cluster):
    nodes = cluster.state.plan.computes
    assert len(nodes) == 2
    for node in nodes:
        r = cluster.ssh(node.private_address, "hostname; ip -4 route")
        assert r.returncode == 0, r.stderr
        hostname, *routes = r.stdout.splitlines()
        assert hostname == node.name
        assert routes and not any(line.startswith("default") for line in routes)


def test_head_answers_on_its_management_address(cluster):
    head = cluster.state.plan.heads[0]
    r = cluster.ssh(head.mgmt_address, "hostname", via_head=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == head.name


def test_computes_are_not_reachable_from_the_machine(cluster):
    node = cluster.state.plan.computes[0]
    # Refused by the unreachable route at once (an errno), not dropped until the timeout.
    with pytest.raises(OSError) as exc:
        socket.create_connection((node.private_address, 22), timeout=30)
    assert not isinstance(exc.value, TimeoutError), exc.value
    assert exc.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED, errno.EACCES), exc.value


def test_every_node_lists_every_host_in_etc_hosts(cluster):
    plan = cluster.state.plan
    r = cluster.ssh(plan.computes[1].private_address, "cat /etc/hosts")
    assert r.returncode == 0, r.stderr
    entries = {tuple(line.split()) for line in r.stdout.splitlines() if line.strip()}
    for node in plan.nodes:
        assert (node.private_address, node.name) in entries


def test_nodes_reach_each_other_by_name(cluster):
    plan = cluster.state.plan
    r = cluster.ssh(plan.computes[0].private_address, f"ssh -o BatchMode=yes {plan.computes[1].name} hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == plan.computes[1].name


def test_nodes_have_private_etc_and_run_but_share_the_shared_dir(cluster):
    plan = cluster.state.plan
    a, b = plan.computes
    shared = cluster.spec["shared_dir"]
    r = cluster.ssh(a.private_address, f"echo {a.name} > /etc/slurm/mark && touch /run/slurm/mark && echo hi > {shared}/from-a")
    assert r.returncode == 0, r.stderr
    r = cluster.ssh(b.private_address, f"ls /etc/slurm/mark /run/slurm/mark 2>&1; cat {shared}/from-a")
    assert "No such file" in r.stdout and r.stdout.count("No such file") == 2
    assert r.stdout.splitlines()[-1] == "hi"
    assert (plan.node_dir(a.name) / "etc" / "slurm" / "mark").read_text() == f"{a.name}\n"


def test_simulated_gpus_are_char_devices_with_major_241(cluster):
    files = sorted(Path(f"/dev/slurmkit/{cluster.name}").iterdir())
    assert [f.name for f in files] == [f"nvidia{k}" for k in range(8)]
    for k, f in enumerate(files):
        st = os.stat(f)
        assert stat.S_ISCHR(st.st_mode)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (241, k)
    assert cluster.spec["nodes"][0]["gpus"] == {"type": "h100", "count": 8, "files": f"/dev/slurmkit/{cluster.name}/nvidia[0-7]"}


def test_key_and_known_hosts(cluster):
    key = Path(cluster.spec["ssh"]["identity_file"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    known = Path(cluster.spec["ssh"]["known_hosts"]).read_text()
    for node in cluster.state.plan.nodes:
        assert any(line.split()[0].split(",") == [node.name, *node.addresses] for line in known.splitlines())


def test_status_json_reports_sshd(cluster):
    data = json.loads(slurmkit("local", "status", "--name", cluster.name, "--json", cwd=cluster.cwd).stdout)
    assert [h["name"] for h in data["hosts"]] == [n.name for n in cluster.state.plan.nodes]
    for h in data["hosts"]:
        assert h["holder"] is True
        assert h["daemons"]["sshd"] is True
        assert h["daemons"]["slurmd"] is False


def test_each_node_runs_in_cgroups_of_its_own_off_the_hierarchy_root(cluster):
    """A node's processes (holder, sshd, what its SSH sessions start) live in its own cgroup of each hierarchy
    whose root slurmd reads at start, as a machine's services do, not in the root beside every other node."""
    with open("/proc/self/cgroup") as f:
        hierarchies = netns.node_cgroup_hierarchies(f.read(), os.listdir(netns.CGROUP_ROOT))
    if not hierarchies:
        pytest.skip("no cgroup v1 freezer/cpuacct/memory hierarchy with this process at its root (cgroup v2 host?)")
    plan = cluster.state.plan
    node = plan.computes[0]
    r = cluster.ssh(node.private_address, "cat /proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    seen = {rest.split(":", 1)[0]: rest.split(":", 1)[1] for _, _, rest in (l.partition(":") for l in r.stdout.splitlines())}
    for h in hierarchies:
        assert seen[h] == f"/{netns.NODE_CGROUP_PREFIX}{node.name}", r.stdout
        procs = (Path(netns.CGROUP_ROOT) / h / f"{netns.NODE_CGROUP_PREFIX}{node.name}" / "cgroup.procs").read_text().split()
        assert str(cluster.state.holders[node.name]) in procs
        root = (Path(netns.CGROUP_ROOT) / h / "cgroup.procs").read_text().split()
        assert str(cluster.state.holders[node.name]) not in root


def test_up_refuses_an_existing_name(cluster):
    r = slurmkit("local", "up", "-n", "1", "--name", cluster.name, cwd=cluster.cwd, check=False)
    assert r.returncode == 2
    assert "already exists" in r.stderr
    assert lc.State.load(cluster.name) is not None  # the running cluster is untouched


def _gone(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return text.rsplit(")", 1)[-1].split()[0] == "Z"  # a zombie waiting for init to reap it holds nothing


def _leftovers(name: str, plan: lc.Plan) -> list[str]:
    left = [link for link in netns.links() if plan.link_pattern.fullmatch(link)]
    left += [str(p) for p in (Path(plan.state_dir), Path(f"/dev/slurmkit/{name}")) if p.exists()]
    left += [str(n) for n in netns.routes() if str(n) == plan.private_subnet]
    left += list(netns.node_processes(__import__("re").compile(rf"{name}-(head|node)-\d+")))
    with open("/proc/self/mounts") as f:  # the tmpfs `up` mounts on the state directory
        left += [line.split()[1] for line in f if line.split()[1].startswith(str(plan.state_dir))]
    left += [str(d) for n in plan.nodes for d in Path(netns.CGROUP_ROOT).glob(f"*/{netns.NODE_CGROUP_PREFIX}{n.name}")]
    return left


def test_down_removes_everything_and_twice_is_fine(tmp_path):
    name = unique_name()
    try:
        slurmkit("local", "up", "-n", "2", "--name", name, "--gpus-per-node", "2", cwd=tmp_path)
        c = Cluster(name, tmp_path)
        plan = c.state.plan
        holders = list(c.state.holders.values())
        sshds = [int((plan.node_dir(n.name) / "run" / "sshd.pid").read_text()) for n in plan.nodes]
        assert os.path.ismount(plan.state_dir)  # the cluster's files live on a tmpfs of their own
        # a process started from an SSH session outlives the session...
        r = c.ssh(plan.computes[0].private_address, "sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
        assert r.returncode == 0, r.stderr
        stray = int(r.stdout.strip())
        time.sleep(0.2)
        assert not _gone(stray)
        assert all(not _gone(p) for p in holders + sshds)
    finally:
        first = slurmkit("local", "down", "--name", name, cwd=tmp_path)
    # ...and down stops it with the holders and sshds
    assert "removed" in first.stdout
    assert all(_gone(p) for p in holders + sshds + [stray])
    assert _leftovers(name, plan) == []
    assert not c.file.exists()
    second = slurmkit("local", "down", "--name", name, cwd=tmp_path)
    assert "nothing to remove" in second.stdout


def test_a_failed_up_cleans_up(tmp_path, monkeypatch):
    name = unique_name()
    plan = lc.build_plan(name, 2, 1)

    def broken(*_a, **_k):
        raise lc.LocalClusterError("sshd would not start (injected)")

    monkeypatch.setattr(netns, "start_sshds", broken)
    try:
        with pytest.raises(lc.LocalClusterError, match="injected"):
            lc.up(plan, tmp_path / "cluster.yaml")
        assert _leftovers(name, plan) == []
        assert not (tmp_path / "cluster.yaml").exists()
    finally:
        lc.down(name)


def test_a_node_whose_mount_fails_is_named_and_up_cleans_up(tmp_path, monkeypatch):
    # Holders make their mounts with mount(2) themselves: one that fails reports why, through its pipe, and the
    # holders already started are removed with the rest.
    name = unique_name()
    plan = lc.build_plan(name, 2, 1)
    real = lc.node_mounts
    bad = plan.computes[1].name

    def with_a_bad_mount(p, node):
        mounts = real(p, node)
        return mounts + [lc.Mount("/etc/slurm", "/nonexistent/slurmkit-test")] if node.name == bad else mounts

    monkeypatch.setattr(lc, "node_mounts", with_a_bad_mount)
    try:
        with pytest.raises(Exception) as info:
            lc.up(plan, tmp_path / "cluster.yaml")
        text = str(info.value) + repr(getattr(info.value, "stdout", ""))
        assert bad in text and "/nonexistent/slurmkit-test" in text and "No such file" in text
        assert _leftovers(name, plan) == []
    finally:
        lc.down(name)
