"""The local cluster: a pure plan (names, addresses, interfaces, files) and its lifecycle (up, down, status).

Layout on the machine, for a cluster NAME with H heads and N computes:

- two bridges: ``sk-<tag>-m`` (management: the machine has ``.1`` on it, heads ``.11``...) and ``sk-<tag>-c``
  (private: heads ``.1``..., computes ``.11``...; the machine is not on it and has an ``unreachable`` route for
  it, so a direct connection from the machine fails at once). No default route anywhere, no forwarding.
- one "host" per node: a holder process (``sleep``) owning a network, UTS and mount namespace; its sshd and
  every daemon started from an SSH session run in those namespaces.
- a state directory ``/var/lib/slurmkit/local/NAME`` (a tmpfs of its own where the machine allows: the cluster
  ends with its namespaces, at the latest on a reboot) holding the key pair, known_hosts, ``state.json`` and
  one directory per node whose subdirectories are bind-mounted over the node's /etc/slurm, /run, ... so that
  Slurm's and munge's default paths are private to each node; ``shared/`` is the same directory on every node.

With an OS image (``local up --image NAME``, see ``slurmkit.local.images``) a node is a machine: its holder mounts
an overlay whose lower layer is the image's root and whose upper layer is the node's own (``nodes/N/upper``), and
``systemd-nspawn --boot`` starts systemd as PID 1 on it in the node's network namespace and cgroups (measured:
nspawn joins the existing per-cluster bridges and veths as is, no --private-network needed); its systemd starts
the image's sshd with the node's config. ``--no-boot``: the holder chroots into that root and the image's sshd
is started directly. Either way only ``shared/`` is common to all nodes.

Only ``slurmkit.local.netns`` touches namespaces, links, mounts and devices; this module decides what they are.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slurmkit.hostlist import fold, fold_numbers
from slurmkit.local import LocalClusterError

DEFAULT_STATE_ROOT = Path("/var/lib/slurmkit/local")
STATE_ROOT = Path(os.environ.get("SLURMKIT_LOCAL_STATE", str(DEFAULT_STATE_ROOT)))
GPU_ROOT = Path("/dev/slurmkit")
GPU_MAJOR = 241  # a local/experimental character major: Slurm only needs File= to be a char device
MAX_HEADS = 9
MAX_COMPUTES = 244  # private /24: heads .1-.9, computes .11-.254
NAME_RE = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")
# Second and third octets of 10.X.Y.0/24 pairs (Y even: management, Y+1: private): 128 * 128 slots.
_SLOT_SECOND_BASE = 100
_SLOTS = 128 * 128


@dataclass(frozen=True)
class SimulatedHardware:
    """What every simulated node of a local cluster declares; read from ``slurmd -C`` on the machine (not the
    ``slurmkit.render.Hardware``, what a real node declares)."""

    sockets: int
    cores_per_socket: int
    threads_per_core: int
    real_memory_mb: int

    @property
    def memory_mb(self) -> int:
        """Memory to declare: a little under RealMemory, as one would on a real node."""
        return max(1, int(self.real_memory_mb * 0.95))


def parse_slurmd_c(text: str) -> SimulatedHardware:
    """This machine's ``slurmd -C`` (read by the facts parser that discovery uses) as a simulated node's hardware."""
    from slurmkit.errors import SlurmkitError
    from slurmkit.facts.slurmd import parse_slurmd_c as parse

    try:
        hw = parse(text)
    except SlurmkitError as exc:
        raise LocalClusterError(f"cannot read `slurmd -C` output ({exc}): {text.strip()!r}") from exc
    if hw is None:
        raise LocalClusterError(f"cannot read `slurmd -C` output (no Key=value line): {text.strip()!r}")
    return SimulatedHardware(
        sockets=hw.sockets,
        cores_per_socket=hw.cores_per_socket,
        threads_per_core=hw.threads_per_core,
        real_memory_mb=hw.real_memory_mb,
    )


def fallback_hardware() -> SimulatedHardware:
    """Without slurmd on the machine: one socket of os.cpu_count() cores and MemTotal."""
    meminfo = Path("/proc/meminfo").read_text()
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    return SimulatedHardware(1, os.cpu_count() or 1, 1, int(match.group(1)) // 1024 if match else 1024)


@dataclass(frozen=True)
class Link:
    """One veth pair: ``host_ifname`` on the machine (a port of ``bridge``), ``inner_ifname`` in the node."""

    host_ifname: str
    inner_ifname: str
    bridge: str
    address: str  # with prefix length, e.g. 10.100.6.11/24


@dataclass(frozen=True)
class Mount:
    """A mount made inside a node's mount namespace: a bind of ``source`` or an overlay on ``target``."""

    target: str
    source: str
    kind: str = "bind"  # "bind" or "overlay" (source is then the overlay's option string)


@dataclass(frozen=True)
class NodePlan:
    """One host of the local cluster."""

    name: str
    role: str  # "head" or "compute"
    private_address: str
    mgmt_address: str | None
    links: tuple[Link, ...]

    @property
    def ssh_address(self) -> str:
        """How slurmkit reaches it: heads by management address, computes by private address via the jump host."""
        return self.mgmt_address or self.private_address

    @property
    def addresses(self) -> list[str]:
        return [a for a in (self.mgmt_address, self.private_address) if a]


@dataclass(frozen=True)
class Plan:
    """Everything ``local up`` will make, decided before anything is made."""

    name: str
    tag: str
    mgmt_subnet: str
    private_subnet: str
    heads: tuple[NodePlan, ...]
    computes: tuple[NodePlan, ...]
    hardware: SimulatedHardware
    state_dir: str
    gpus_per_node: int = 0
    gpu_type: str = "h100"
    image: str | None = None  # None: light mode (nodes share the machine's filesystem); else an OS image's name
    image_root: str | None = None  # the image's root filesystem: every node's overlay lower layer
    boot: bool = False  # image mode: systemd as PID 1 in each node (systemd-nspawn); False: sshd in a chroot
    unified_cgroup: bool = False  # booted nodes get a cgroup v2 hierarchy (see images.ImageSpec)

    @property
    def nodes(self) -> tuple[NodePlan, ...]:
        return self.heads + self.computes

    @property
    def mgmt_bridge(self) -> str:
        return f"sk-{self.tag}-m"

    @property
    def private_bridge(self) -> str:
        return f"sk-{self.tag}-c"

    @property
    def repo_url(self) -> str | None:
        """Image mode: the cluster's site mirror, the only apt source of every node: the image's package
        repository served by the first head on its private address (every node reaches it; no route out)."""
        return f"http://{self.heads[0].private_address}/" if self.image else None

    @property
    def repo_path(self) -> Path | None:
        """The directory that mirror serves (``slurmkit.local.images.repo_dir``, beside the image's root)."""
        return Path(self.image_root).parent / "repo" if self.image and self.image_root else None

    @property
    def host_address(self) -> str:
        """The machine's address on the management bridge."""
        return str(ipaddress.ip_network(self.mgmt_subnet).network_address + 1)

    @property
    def link_pattern(self) -> re.Pattern[str]:
        """Every link this cluster may have on the machine (also for a half-built cluster whose state is lost)."""
        return re.compile(rf"sk-{re.escape(self.tag)}-(m|c|h\d+[mc]|n\d+)")

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def shared_dir(self) -> Path:
        return self.state_path / "shared"

    @property
    def key_path(self) -> Path:
        return self.state_path / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.state_path / "known_hosts"

    @property
    def state_file(self) -> Path:
        return self.state_path / "state.json"

    @property
    def gpu_dir(self) -> Path:
        return GPU_ROOT / self.name

    @property
    def gpu_files(self) -> list[Path]:
        return [self.gpu_dir / f"nvidia{k}" for k in range(self.gpus_per_node)]

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def node_dir(self, name: str) -> Path:
        return self.state_path / "nodes" / name

    def node_root(self, name: str) -> Path:
        """Image mode: where the node's root filesystem (its overlay) is mounted, in its holder's namespace."""
        return self.node_dir(name) / "root"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        def node(d: dict) -> NodePlan:
            return NodePlan(**{**d, "links": tuple(Link(**link) for link in d["links"])})

        return cls(
            **{
                **data,
                "heads": tuple(node(d) for d in data["heads"]),
                "computes": tuple(node(d) for d in data["computes"]),
                "hardware": SimulatedHardware(**data["hardware"]),
            }
        )


def validate_name(name: str) -> None:
    """A cluster name is a Slurm ClusterName: lowercase letters, digits and dashes, at most 32 characters."""
    if not NAME_RE.match(name):
        raise LocalClusterError(
            f"invalid cluster name {name!r}: use lowercase letters, digits and dashes, "
            "start with a letter, end with a letter or digit, at most 32 characters"
        )


def interface_tag(name: str) -> str:
    """A short tag for interface names (Linux allows 15 characters): the name, or 2 letters + 5 hex of its hash."""
    if len(name) <= 7:
        return name
    return name[:2] + hashlib.sha256(name.encode()).hexdigest()[:5]


def choose_subnets(
    name: str, taken: list[ipaddress.IPv4Network]
) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """A (management, private) pair of /24s in 10.100-227.x, derived from the name, skipping ``taken`` ones."""
    start = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % _SLOTS
    for k in range(_SLOTS):
        slot = (start + k) % _SLOTS
        second, third = _SLOT_SECOND_BASE + slot // 128, (slot % 128) * 2
        mgmt = ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
        private = ipaddress.IPv4Network(f"10.{second}.{third + 1}.0/24")
        if not any(net.overlaps(t) for net in (mgmt, private) for t in taken if t.prefixlen > 0):
            return mgmt, private
    raise LocalClusterError("no free pair of /24 subnets in 10.100.0.0-10.227.255.255")


def make_plan(
    name: str,
    computes: int,
    heads: int,
    hardware: SimulatedHardware,
    taken: list[ipaddress.IPv4Network],
    state_root: Path = STATE_ROOT,
    gpus_per_node: int = 0,
    gpu_type: str = "h100",
    image: str | None = None,
    image_root: str | None = None,
    boot: bool = False,
    unified_cgroup: bool = False,
) -> Plan:
    """Decide names, addresses and interfaces of every host. Pure: ``taken`` is the machine's routes."""
    validate_name(name)
    if not 1 <= heads <= MAX_HEADS:
        raise LocalClusterError(f"--heads must be between 1 and {MAX_HEADS}, got {heads}")
    if not 1 <= computes <= MAX_COMPUTES:
        raise LocalClusterError(f"-n/--computes must be between 1 and {MAX_COMPUTES}, got {computes}")
    if gpus_per_node < 0:
        raise LocalClusterError(f"--gpus-per-node must not be negative, got {gpus_per_node}")
    if gpus_per_node and not re.match(r"^[a-z0-9_]+$", gpu_type):
        raise LocalClusterError(f"invalid --gpu-type {gpu_type!r}: use lowercase letters, digits, underscores")
    tag = interface_tag(name)
    mgmt, private = choose_subnets(name, taken)
    mgmt_bridge, private_bridge = f"sk-{tag}-m", f"sk-{tag}-c"
    head_plans = []
    for i in range(1, heads + 1):
        mgmt_addr, private_addr = str(mgmt.network_address + 10 + i), str(private.network_address + i)
        links = (
            Link(f"sk-{tag}-h{i}m", "eth0", mgmt_bridge, f"{mgmt_addr}/{mgmt.prefixlen}"),
            Link(f"sk-{tag}-h{i}c", "eth1", private_bridge, f"{private_addr}/{private.prefixlen}"),
        )
        head_plans.append(NodePlan(f"{name}-head-{i}", "head", private_addr, mgmt_addr, links))
    compute_plans = []
    for i in range(1, computes + 1):
        private_addr = str(private.network_address + 10 + i)
        links = (Link(f"sk-{tag}-n{i}", "eth0", private_bridge, f"{private_addr}/{private.prefixlen}"),)
        compute_plans.append(NodePlan(f"{name}-node-{i}", "compute", private_addr, None, links))
    return Plan(
        name=name,
        tag=tag,
        mgmt_subnet=str(mgmt),
        private_subnet=str(private),
        heads=tuple(head_plans),
        computes=tuple(compute_plans),
        hardware=hardware,
        state_dir=str(state_root / name),
        gpus_per_node=gpus_per_node,
        gpu_type=gpu_type,
        image=image,
        image_root=image_root if image else None,
        boot=boot if image else False,
        unified_cgroup=unified_cgroup if image and boot else False,
    )


def gpu_files_expression(plan: Plan) -> str:
    """gres.conf ``File=`` for the simulated GPUs, e.g. ``/dev/slurmkit/x/nvidia[0-7]``."""
    if plan.gpus_per_node == 1:
        return str(plan.gpu_dir / "nvidia0")
    return f"{plan.gpu_dir}/nvidia[{fold_numbers(range(plan.gpus_per_node))}]"


# Slurm without cgroup plugins: what a node gets when it cannot have Slurm's cgroup/v2 (see cluster_file_dict).
NO_CGROUP_SLURM_CONF = {"ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/affinity",
                        "JobAcctGatherType": "jobacct_gather/linux"}


def machine_cgroup_hybrid(proc_cgroup: str | None = None) -> bool:
    """Whether this machine mounts cgroup v1 hierarchies (``N:controller:/`` lines in /proc/self/cgroup besides
    v2's ``0::``). A process in a node lists them too, whatever the node mounts: Slurm 26.05's slurmd then exits
    with "fatal: Hybrid mode is not supported" (seen on debian-sid nodes here)."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return False
    return any(line and not line.startswith("0::") for line in proc_cgroup.splitlines())


def cluster_file_dict(plan: Plan, hybrid: bool = False) -> dict:
    """The cluster file ``local up`` writes (the keys slurmkit's cluster model accepts). Nodes with a cgroup v2
    hierarchy of their own (``unified_cgroup``: debian-sid, Slurm 26.05) on a machine that also mounts cgroup v1
    (``hybrid``) get Slurm without cgroup plugins (:data:`NO_CGROUP_SLURM_CONF`; cgroup.conf then renders
    ``CgroupPlugin=disabled``): 26.05 refuses hybrid mode, and v1 owns the controllers, so v2 could confine
    nothing there anyway."""
    hw = plan.hardware
    group: dict = {
        "names": fold([n.name for n in plan.computes]),
        "addresses": fold([n.private_address for n in plan.computes]),
        "sockets": hw.sockets,
        "cores_per_socket": hw.cores_per_socket,
        "threads_per_core": hw.threads_per_core,
        "memory_mb": hw.memory_mb,
    }
    if plan.gpus_per_node:
        group["gpus"] = {"type": plan.gpu_type, "count": plan.gpus_per_node, "files": gpu_files_expression(plan)}
    return {
        "cluster": plan.name,
        "profile": "local",
        "ssh": {
            "user": "root",
            "identity_file": str(plan.key_path),
            "proxy_jump": f"root@{plan.heads[0].mgmt_address}",
            "known_hosts": str(plan.known_hosts_path),
        },
        "heads": {
            "names": fold([n.name for n in plan.heads]),
            "addresses": fold([n.mgmt_address for n in plan.heads if n.mgmt_address]),
        },
        "nodes": [group],
        "partitions": [{"name": "debug", "nodes": "ALL", "default": True}],
        "state_dir": str(plan.shared_dir / "slurmctld"),
        "shared_dir": str(plan.shared_dir),
        **({"slurm_conf": dict(NO_CGROUP_SLURM_CONF)}
           if plan.unified_cgroup and hybrid else {}),
    }


def hosts_file(plan: Plan) -> str:
    """/etc/hosts of every node: each name resolves to its private address (the one Slurm uses)."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", ""]
    lines += [f"{n.private_address}\t{n.name}" for n in plan.nodes]
    return "\n".join(lines) + "\n"


RESOLV_CONF = "# slurmkit local cluster: no nameserver, names come from /etc/hosts\noptions timeout:1 attempts:1\n"

BASHRC = """\
# slurmkit local cluster node: a neutral ~/.bashrc (the machine's own is not read here).
[ -z "$PS1" ] && return
PS1='\\u@\\h:\\w\\$ '
"""


def sshd_config(plan: Plan, node: NodePlan) -> str:
    """The node's own sshd_config: its addresses, host key and pid file; keys only, no PAM."""
    node_dir = plan.node_dir(node.name)
    lines = [f"# slurmkit local cluster {plan.name}: sshd of {node.name}", "Port 22"]
    lines += [f"ListenAddress {a}" for a in node.addresses]
    # An image node's own /etc holds its host key; a light node's /etc/ssh is the machine's.
    host_key = "/etc/ssh/ssh_host_ed25519_key" if plan.image else node_dir / "ssh" / "ssh_host_ed25519_key"
    lines += [
        f"HostKey {host_key}",
        "PidFile /run/sshd.pid",  # /run is the node's own (see node_mounts)
        "AuthorizedKeysFile .ssh/authorized_keys",  # ~ is the node's own /root overlay
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UseDNS no",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        # Parallel Fabric connections all pass through the jump host: the default 10:30:100 drops some.
        "MaxStartups 512",
        "MaxSessions 64",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ]
    return "\n".join(lines) + "\n"


def node_mounts(plan: Plan, node: NodePlan) -> list[Mount]:
    """What is private to a node, so that Slurm, munge and sshd default paths work without per-node names.

    /root is an overlay on the machine's /root (the venv's interpreter may live there) with the node's own
    .bashrc and .ssh on top. /run comes last: everything before it may still read the machine's /run.
    """
    d = plan.node_dir(node.name)
    if plan.image:
        return image_node_mounts(plan, node)
    binds = [
        ("etc/hostname", "/etc/hostname"),
        ("etc/hosts", "/etc/hosts"),
        ("etc/resolv.conf", "/etc/resolv.conf"),
        ("etc/slurm", "/etc/slurm"),
        ("etc/munge", "/etc/munge"),
        ("log/slurm", "/var/log/slurm"),
        ("log/munge", "/var/log/munge"),
        ("lib/munge", "/var/lib/munge"),
        ("lib/slurm", "/var/lib/slurm"),
        ("spool", "/var/spool"),
    ]
    mounts = [Mount(target, str(d / source)) for source, target in binds]
    overlay = f"lowerdir=/root,upperdir={d / 'home' / 'upper'},workdir={d / 'home' / 'work'}"
    mounts.append(Mount("/root", overlay, "overlay"))
    mounts.append(Mount("/run", str(d / "run")))
    return mounts


def image_node_mounts(plan: Plan, node: NodePlan) -> list[Mount]:
    """An image node's mounts, made in its holder's mount namespace: its root filesystem, an overlay whose lower
    layer is the image (shared, read-only) and whose upper layer is the node's own (``upper/``, in the cluster's
    state dir: gone with ``local down``). Booted nodes get the rest from systemd-nspawn; a chroot node also gets
    /proc, /sys and /dev of the machine, its own /run, and the shared directory at the same path."""
    d = plan.node_dir(node.name)
    root = plan.node_root(node.name)
    mounts = [Mount(str(root), f"lowerdir={plan.image_root},upperdir={d / 'upper'},workdir={d / 'work'}", "overlay")]
    if plan.boot:
        # The holder stays in the machine's root: its /etc/hostname names the node, which is how `down` finds
        # it (and what it holds) once the container is gone.
        mounts.append(Mount("/etc/hostname", str(d / "upper" / "etc" / "hostname")))
    else:
        mounts += [
            Mount(f"{root}/proc", "proc", "proc"),
            Mount(f"{root}/sys", "/sys", "rbind"),
            Mount(f"{root}/dev", "/dev", "rbind"),
            Mount(f"{root}/run", str(d / "run")),
            Mount(f"{root}{plan.shared_dir}", str(plan.shared_dir)),
        ]
    return mounts


# Directories of an image node (relative to its node dir).
IMAGE_NODE_DIRS: list[tuple[str, int]] = [
    ("upper", 0o755), ("work", 0o700), ("root", 0o755), ("run", 0o755), ("run/sshd", 0o755), ("ssh", 0o700),
]

# Directories of a node (relative to its node dir): mode and owner ("root", "slurm" or "munge").
NODE_DIRS: list[tuple[str, int, str]] = [
    ("etc", 0o755, "root"),
    ("etc/slurm", 0o755, "root"),
    ("etc/munge", 0o700, "munge"),
    ("log/slurm", 0o755, "slurm"),
    ("log/munge", 0o700, "munge"),
    ("lib/munge", 0o711, "munge"),
    ("lib/slurm", 0o755, "slurm"),
    ("lib/slurm/slurmctld", 0o755, "slurm"),
    ("lib/slurm/slurmd", 0o755, "slurm"),
    ("spool", 0o755, "root"),
    ("spool/slurmd", 0o755, "root"),
    ("spool/slurmctld", 0o755, "slurm"),
    ("run", 0o755, "root"),
    ("run/sshd", 0o755, "root"),
    ("run/munge", 0o755, "munge"),
    ("run/slurm", 0o755, "slurm"),
    ("run/lock", 0o1777, "root"),
    ("home/upper", 0o700, "root"),
    ("home/upper/.ssh", 0o700, "root"),
    ("home/work", 0o700, "root"),
    ("ssh", 0o700, "root"),
]


def known_hosts(plan: Plan, host_keys: dict[str, str]) -> str:
    """known_hosts lines for every node, by name and by each of its addresses."""
    return "".join(f"{','.join([n.name, *n.addresses])} {host_keys[n.name]}\n" for n in plan.nodes)


# ---------------------------------------------------------------------------------------------------------------
# Lifecycle


@dataclass
class State:
    """What ``up`` recorded in ``state.json``: the plan, the holders and the cluster file it wrote."""

    plan: Plan
    holders: dict[str, int] = field(default_factory=dict)
    booted: dict[str, int] = field(default_factory=dict)  # image nodes booted by systemd-nspawn: node -> its PID
    cluster_file: str | None = None
    created_dirs: list[str] = field(default_factory=list)  # parents of the cluster file made by up

    def save(self) -> None:
        path = self.plan.state_file
        tmp = path.with_suffix(".tmp")
        data = {
            "plan": self.plan.to_dict(),
            "holders": self.holders,
            "booted": self.booted,
            "cluster_file": self.cluster_file,
            "created_dirs": self.created_dirs,
        }
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, name: str, state_root: Path = STATE_ROOT) -> State | None:
        path = state_root / name / "state.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LocalClusterError(f"cannot read {path}: {exc}") from exc
        return cls(
            plan=Plan.from_dict(data["plan"]),
            holders={k: int(v) for k, v in data.get("holders", {}).items()},
            booted={k: int(v) for k, v in data.get("booted", {}).items()},
            cluster_file=data.get("cluster_file"),
            created_dirs=list(data.get("created_dirs", [])),
        )


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each phase of ``up``; the CLI prints the total."""

    phases: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.phases.values())


def build_plan(
    name: str, computes: int, heads: int, gpus_per_node: int = 0, gpu_type: str = "h100",
    image: str | None = None, log_stream=None, boot: bool | None = None,
) -> Plan:
    """Probe the machine (routes, ``slurmd -C``) and make the plan. With ``image``, the image is built first
    when it is missing or stale (and systemd-nspawn installed where its nodes boot). ``boot``: systemd as PID 1
    (None: as the image says; False: sshd started directly in a chroot)."""
    from slurmkit.local import images, netns

    netns.preflight()
    image_root, unified = None, False
    if image:
        spec = images.spec(image)
        validate_name(name)
        images.ensure(image, log_stream=log_stream)
        images.ensure_repo(image, log_stream=log_stream)
        image_root, unified = str(images.root_dir(image)), spec.unified_cgroup
        boot = spec.boot if boot is None else boot
        if boot:
            images.ensure_tools({"systemd-nspawn": "systemd-container"})
    return make_plan(
        name,
        computes,
        heads,
        hardware=parse_slurmd_c(netns.slurmd_c()) if netns.which("slurmd") else fallback_hardware(),
        taken=netns.routes(),
        gpus_per_node=gpus_per_node,
        gpu_type=gpu_type,
        image=image,
        image_root=image_root,
        boot=bool(boot),
        unified_cgroup=unified,
    )


def up(plan: Plan, cluster_file: Path) -> Timings:
    """Make every host of ``plan`` and write the cluster file. On any failure, remove what was made."""
    from slurmkit.local import netns

    netns.preflight()
    if plan.state_path.exists() or State.load(plan.name) is not None:
        raise LocalClusterError(
            f"local cluster {plan.name!r} already exists ({plan.state_path}); run `slurmkit local down --name {plan.name}`"
        )
    clash = [link for link in netns.links() if plan.link_pattern.fullmatch(link)]
    if clash:
        raise LocalClusterError(f"interfaces of cluster {plan.name!r} already exist: {', '.join(clash)}")
    phases: dict[str, float] = {}
    t = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal t
        now = time.monotonic()
        phases[phase] = round(now - t, 3)
        t = now

    plan.state_path.mkdir(parents=True)
    netns.mount_tmpfs(plan.state_path)  # where it cannot be mounted, the cluster lives on the disk, slower
    os.chmod(plan.state_path, 0o755)  # slurmctld runs as SlurmUser and needs to reach shared/slurmctld
    state = State(plan)
    state.save()
    try:
        _write_node_files(plan)
        lap("files+keys")
        chroots = {n.name: str(plan.node_root(n.name)) for n in plan.nodes} if plan.image and not plan.boot else None
        state.holders = netns.start_holders(
            {n.name: n.name for n in plan.nodes}, {n.name: node_mounts(plan, n) for n in plan.nodes}, chroots
        )
        state.save()
        lap("holders")
        netns.create_network(
            bridges=[plan.mgmt_bridge, plan.private_bridge],
            host_address=f"{plan.host_address}/{ipaddress.ip_network(plan.mgmt_subnet).prefixlen}",
            mgmt_bridge=plan.mgmt_bridge,
            links={state.holders[n.name]: n.links for n in plan.nodes},
            unreachable=plan.private_subnet,
        )
        netns.configure_node_links({state.holders[n.name]: n.links for n in plan.nodes})
        lap("network")
        if plan.image:
            head = plan.heads[0]
            netns.start_repo_server(state.holders[head.name], head.private_address, plan.repo_path,
                                    plan.node_dir(head.name) / "site-mirror.log")
            lap("site mirror")
        if plan.gpus_per_node:
            netns.make_char_devices(plan.gpu_dir, GPU_MAJOR, plan.gpus_per_node)
        if plan.image and plan.boot:
            state.booted = netns.boot_nodes(
                {n.name: (state.holders[n.name], plan.node_root(n.name), [str(plan.shared_dir)],
                          plan.node_dir(n.name) / "nspawn.log") for n in plan.nodes},
                unified_cgroup=plan.unified_cgroup,
            )
            state.save()
            netns.wait_listening(
                {n.name: (state.holders[n.name], state.booted[n.name], plan.node_dir(n.name) / "nspawn.log")
                 for n in plan.nodes}
            )
            lap("boot")
            in_nodes = {n.name: netns.container_argv(state.booted[n.name]) for n in plan.nodes}
            if not plan.unified_cgroup:
                netns.writable_cgroups(in_nodes)
            netns.apt_update_nodes(in_nodes)
            lap("apt-get update")
        elif plan.image:
            netns.start_chroot_sshds({n.name: (state.holders[n.name], plan.node_dir(n.name) / "run") for n in plan.nodes})
            lap("sshd")
            netns.apt_update_nodes({n.name: netns.in_node_root(state.holders[n.name], []) for n in plan.nodes})
            lap("apt-get update")
        else:
            netns.start_sshds(
                {
                    n.name: (state.holders[n.name], plan.node_dir(n.name) / "ssh" / "sshd_config",
                             plan.node_dir(n.name) / "run" / "sshd.pid", plan.node_dir(n.name) / "ssh" / "sshd.log")
                    for n in plan.nodes
                }
            )
            lap("sshd")
        cluster_file = cluster_file.absolute()
        state.created_dirs = _missing_parents(cluster_file)
        state.cluster_file = str(cluster_file)
        state.save()
        _write_cluster_file(plan, cluster_file)
        lap("cluster file")
    except BaseException:
        down(plan.name, state=state)
        raise
    return Timings(phases)


def _missing_parents(path: Path) -> list[str]:
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(str(parent))
    return missing


def _write_cluster_file(plan: Plan, path: Path) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by `slurmkit local up` for the local cluster {plan.name!r}; removed by `slurmkit local down`.\n"
        f"# Heads are reached on their management addresses, computes through {plan.heads[0].name} on their\n"
        "# private addresses; every node name resolves (inside the cluster) to its private address.\n"
    )
    spec = cluster_file_dict(plan, hybrid=machine_cgroup_hybrid())  # the machine probed here, once
    path.write_text(header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=False))


def _chown(path: Path, owner: str) -> None:
    import pwd

    if owner == "root":
        return
    try:
        pw = pwd.getpwnam(owner)
    except KeyError:
        return
    os.chown(path, pw.pw_uid, pw.pw_gid)


def _write_node_files(plan: Plan) -> None:
    """Key pairs, per-node directories and files; known_hosts once every host key exists."""
    from slurmkit.local import netns

    plan.shared_dir.mkdir()
    os.chmod(plan.shared_dir, 0o1777)  # like /tmp: job outputs of any user
    keys = {plan.key_path: f"slurmkit-local-{plan.name}"}
    for node in plan.nodes:
        node_dir = plan.node_dir(node.name)
        dirs = [(rel, mode, "root") for rel, mode in IMAGE_NODE_DIRS] if plan.image else NODE_DIRS
        for rel, mode, owner in dirs:
            p = node_dir / rel
            p.mkdir(parents=True, exist_ok=True)
            os.chmod(p, mode)
            _chown(p, owner)
        keys[node_dir / "ssh" / "ssh_host_ed25519_key"] = f"root@{node.name}"
    netns.generate_keys(keys)
    os.chmod(plan.key_path, 0o600)
    pub = plan.key_path.with_suffix(".pub").read_text()
    host_keys = {
        n.name: " ".join(
            (plan.node_dir(n.name) / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        )
        for n in plan.nodes
    }
    kh = known_hosts(plan, host_keys)
    plan.known_hosts_path.write_text(kh)
    hosts = hosts_file(plan)
    slurm_etc = Path("/etc/slurm")
    private_key = plan.key_path.read_bytes()
    if plan.image:
        for node in plan.nodes:
            _write_image_node_files(plan, node, hosts, kh, pub, private_key)
        return
    for node in plan.nodes:
        d = plan.node_dir(node.name)
        (d / "etc" / "hostname").write_text(node.name + "\n")
        (d / "etc" / "hosts").write_text(hosts)
        (d / "etc" / "resolv.conf").write_text(RESOLV_CONF)
        # Keep what the Debian package put in /etc/slurm (plugstack.conf and its directory).
        if slurm_etc.is_dir():
            for entry in slurm_etc.iterdir():
                if entry.is_dir():
                    shutil.copytree(entry, d / "etc" / "slurm" / entry.name, dirs_exist_ok=True)
                elif entry.is_file():
                    shutil.copy2(entry, d / "etc" / "slurm" / entry.name)
        os.symlink("/dev/shm", d / "run" / "shm")
        (d / "ssh" / "sshd_config").write_text(sshd_config(plan, node))
        home = d / "home" / "upper"
        _write_root_home(home, kh, pub, private_key)


def _write_root_home(home: Path, kh: str, pub: str, private_key: bytes) -> None:
    """root's .bashrc and ~/.ssh (the cluster key pair, authorized_keys, known_hosts) in ``home``, whose .ssh
    exists: the same on light and image nodes."""
    (home / ".bashrc").write_text(BASHRC)
    ssh = home / ".ssh"
    (ssh / "authorized_keys").write_text(pub)
    (ssh / "known_hosts").write_text(kh)
    (ssh / "id_ed25519.pub").write_text(pub)
    (ssh / "id_ed25519").write_bytes(private_key)
    for f in ("authorized_keys", "id_ed25519"):
        os.chmod(ssh / f, 0o600)


def _write_image_node_files(plan: Plan, node: NodePlan, hosts: str, kh: str, pub: str, private_key: bytes) -> None:
    """An image node's own files, written into its overlay's upper layer before it is mounted: what it has on
    top of the image (hostname, hosts, resolver, sshd config and host key, root's keys and .bashrc) and the
    mount point of the shared directory."""
    d = plan.node_dir(node.name)
    upper = d / "upper"
    etc = upper / "etc"
    (etc / "ssh").mkdir(parents=True)
    (etc / "hostname").write_text(node.name + "\n")
    (etc / "hosts").write_text(hosts)
    (etc / "resolv.conf").write_text(RESOLV_CONF)
    (etc / "ssh" / "sshd_config").write_text(sshd_config(plan, node))
    for suffix, mode in (("", 0o600), (".pub", 0o644)):
        key = etc / "ssh" / f"ssh_host_ed25519_key{suffix}"
        shutil.copyfile(d / "ssh" / f"ssh_host_ed25519_key{suffix}", key)
        os.chmod(key, mode)
    home = upper / "root"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o700)
    (home / ".ssh").mkdir(mode=0o700)
    _write_root_home(home, kh, pub, private_key)
    (upper / plan.shared_dir.relative_to("/")).mkdir(parents=True)
    write_apt_sources(upper, plan.repo_url)


def write_apt_sources(upper: Path, url: str) -> None:
    """Make the cluster's site mirror a node's only apt source, in its overlay's upper layer: the image's
    sources.list (Debian's archive, unreachable from a node) emptied, and its package lists from that archive
    hidden (an opaque directory), so that `apt-cache policy` says what the mirror offers once `up` has run
    `apt-get update`. A real cluster keeps the distribution's own sources: this is only the local stand-in."""
    from slurmkit.local import images

    apt = upper / "etc" / "apt"
    (apt / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text("# slurmkit local: the only source is sources.list.d/slurmkit-site-mirror.sources\n")
    (apt / "sources.list.d" / "slurmkit-site-mirror.sources").write_text(images.node_apt_sources(url))
    lists = upper / "var" / "lib" / "apt" / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    os.setxattr(lists, "trusted.overlay.opaque", b"y")


def down(name: str, state: State | None = None, state_root: Path = STATE_ROOT) -> list[str]:
    """Remove everything of local cluster ``name``; idempotent. Returns what was removed, for the CLI to print."""
    from slurmkit.local import netns

    netns.preflight(binaries=("ip",))
    validate_name(name)
    state = state or State.load(name, state_root)
    plan = state.plan if state else None
    tag = plan.tag if plan else interface_tag(name)
    removed: list[str] = []

    node_re = re.compile(rf"{re.escape(name)}-(head|node)-\d+")
    if state and state.booted:
        netns.stop_booted(state.booted.values())  # a clean poweroff of each container first
    killed = netns.kill_node_processes(node_re)
    if killed:
        removed.append(f"{killed} process(es)")
    link_re = plan.link_pattern if plan else re.compile(rf"sk-{re.escape(tag)}-(m|c|h\d+[mc]|n\d+)")
    gone_links = netns.delete_links([link for link in netns.links() if link_re.fullmatch(link)])
    if gone_links:
        removed.append(f"{len(gone_links)} link(s)")
    if plan and netns.delete_unreachable_route(plan.private_subnet):
        removed.append(f"route unreachable {plan.private_subnet}")
    if netns.remove_char_devices(GPU_ROOT / name, GPU_ROOT):
        removed.append(str(GPU_ROOT / name))
    cgroups = netns.remove_cgroups(node_re)
    if cgroups:
        removed.append(f"{len(cgroups)} cgroup dir(s)")
    if plan and plan.boot:
        removed += netns.remove_nspawn_leftovers(n.name for n in plan.nodes)
    if state and state.cluster_file:
        cf = Path(state.cluster_file)
        if cf.is_file():
            cf.unlink()
            removed.append(str(cf))
        removed += _remove_cluster_state(cf.parent / ".slurmkit")
        for d in state.created_dirs:
            try:
                os.rmdir(d)
            except OSError:
                break
    state_dir = state_root / name
    if state_dir.exists():
        netns.unmount(state_dir)  # the tmpfs `up` mounted there, with everything in it
        shutil.rmtree(state_dir)
        removed.append(str(state_dir))
    if state_root == DEFAULT_STATE_ROOT:
        for d in (state_root, state_root.parent):
            try:
                os.rmdir(d)
            except OSError:
                break
    netns.wait_links_gone(link_re)
    return removed


@dataclass(frozen=True)
class HostStatus:
    """One host as ``local status`` shows it."""

    name: str
    role: str
    mgmt_address: str | None
    private_address: str
    holder: bool
    daemons: dict[str, bool]

    def to_dict(self) -> dict:
        return asdict(self)


DAEMONS = ("sshd", "munged", "slurmctld", "slurmd")


def status(name: str, state_root: Path = STATE_ROOT) -> tuple[Plan, list[HostStatus]]:
    """Hosts, addresses and which daemons run in each (found by the node's own namespaces, not by pid files)."""
    from slurmkit.local import netns

    netns.preflight(binaries=())
    validate_name(name)
    state = State.load(name, state_root)
    if state is None:
        raise LocalClusterError(f"no local cluster named {name!r} (no {state_root / name / 'state.json'})")
    plan = state.plan
    procs = netns.node_processes(re.compile(rf"{re.escape(name)}-(head|node)-\d+"))
    hosts = []
    for node in plan.nodes:
        mine = procs.get(node.name, {})
        holder = state.holders.get(node.name)
        hosts.append(
            HostStatus(
                name=node.name,
                role=node.role,
                mgmt_address=node.mgmt_address,
                private_address=node.private_address,
                holder=holder is not None and holder in mine,
                daemons={d: d in mine.values() for d in DAEMONS},
            )
        )
    return plan, hosts


def _remove_cluster_state(state: Path) -> list[str]:
    """What bootstrap, discover and ssh mesh kept beside the cluster file (the munge key, cached facts, the mesh
    key) belongs to this cluster alone: remove it. Bench results are the user's: keep them, and say where."""
    removed = []
    for name in ("munge.key", "mesh_ed25519", "mesh_ed25519.pub", "facts"):
        p = state / name
        if p.is_dir():
            shutil.rmtree(p)
            removed.append(str(p))
        elif p.exists():
            p.unlink()
            removed.append(str(p))
    if (state / "bench").is_dir():
        removed.append(f"(bench results kept in {state / 'bench'})")
    else:
        try:
            state.rmdir()
        except OSError:
            pass
    return removed


def _node_sshd(name: str, node: str, state_root: Path = STATE_ROOT) -> tuple[State, Path]:
    state = State.load(name, state_root)
    if state is None:
        raise LocalClusterError(f"no local cluster named {name!r}")
    state.plan.node(node)  # raises for an unknown node
    return state, state.plan.node_dir(node)


def stop_sshd(name: str, node: str, state_root: Path = STATE_ROOT) -> None:
    """Stop one node's sshd (the host becomes unreachable over SSH, as a crashed server would)."""
    from slurmkit.local import netns

    state, d = _node_sshd(name, node, state_root)
    if node in state.booted:  # systemd's ssh.service in the node
        netns.in_container(state.booted[node], ["systemctl", "stop", "ssh.service"])
        return
    pidfile = d / "run" / "sshd.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and netns._alive(pid):
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def start_sshd(name: str, node: str, state_root: Path = STATE_ROOT) -> None:
    """Start one node's sshd again after :func:`stop_sshd`."""
    from slurmkit.local import netns

    state, d = _node_sshd(name, node, state_root)
    if node in state.booted:
        netns.in_container(state.booted[node], ["systemctl", "start", "ssh.service"])
        netns.wait_listening({node: (state.holders[node], state.booted[node], d / "nspawn.log")}, timeout=30)
    elif state.plan.image:
        netns.start_chroot_sshds({node: (state.holders[node], d / "run")})
    else:
        netns.start_sshds({node: (state.holders[node], d / "ssh" / "sshd_config", d / "run" / "sshd.pid",
                                  d / "ssh" / "sshd.log")})
