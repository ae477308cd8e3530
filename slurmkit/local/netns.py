"""The one module that touches namespaces, links, mounts, devices and sshd on this machine.

A node is a holder process (unshare(2) of its network, UTS and mount namespaces, then ``sleep infinity``) that
sets its hostname and makes the node's mounts before it sleeps. Everything else enters it with
``nsenter -t <holder> -n -u -m`` (``ip netns exec`` would remount /sys and leave /sys/fs/cgroup empty: slurmd then
cannot start).

A node's processes are found without pid files and without a PID namespace: a process belongs to node X when
``/proc/<pid>/root/etc/hostname`` (read through the process's own mount namespace) says X, and so does every
other process in the same network namespace.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from slurmkit.errors import CommandError
from slurmkit.local import LocalClusterError, NodeCommandsFailed
from slurmkit.local.cluster import Link, Mount

# binary -> Debian package that provides it
BINARIES = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "mount": "mount",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
}
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def which(binary: str) -> str | None:
    """Find a binary on PATH or in the sbin directories (root's PATH is not always set over sudo/ssh)."""
    found = shutil.which(binary)
    if found:
        return found
    for d in _SBIN:
        candidate = Path(d) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def preflight(binaries: Iterable[str] = tuple(BINARIES)) -> None:
    """Linux, root and the binaries needed; otherwise a clear error (exit code 2)."""
    if not sys.platform.startswith("linux"):
        raise LocalClusterError(f"the local cluster needs Linux (network namespaces); this is {sys.platform}")
    if os.geteuid() != 0:
        raise LocalClusterError("the local cluster needs root (namespaces, bridges, mounts): run it with sudo")
    missing = [b for b in binaries if which(b) is None]
    if missing:
        packages = sorted({BINARIES.get(b, b) for b in missing})
        raise LocalClusterError(
            f"missing {', '.join(missing)}: install with `apt-get install {' '.join(packages)}`"
        )


def _bin(name: str) -> str:
    return which(name) or name


def _run(argv: list[str], input: str | None = None, host: str | None = None) -> str:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CommandError(shlex.join(argv), proc.returncode, proc.stdout, proc.stderr, host)
    return proc.stdout


def _run_many(jobs: Mapping[str, tuple[list[str], str | None]], what: str = "command") -> dict[str, str]:
    """Start every command at once, then wait for each; host -> stdout. Once every command has finished (so
    nothing is left running behind the error), raises NodeCommandsFailed holding every host's failure."""
    procs = {
        host: (
            argv,
            stdin,
            subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for host, (argv, stdin) in jobs.items()
    }
    out: dict[str, str] = {}
    failures: dict[str, CommandError] = {}
    for host, (argv, stdin, proc) in procs.items():
        stdout, stderr = proc.communicate(stdin)
        if proc.returncode != 0:
            failures[host] = CommandError(shlex.join(argv), proc.returncode, stdout, stderr, host)
        else:
            out[host] = stdout
    if failures:
        raise NodeCommandsFailed(what, failures, out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Probes


def slurmd_c() -> str:
    """``slurmd -C``: how Slurm sees this machine's CPUs and memory."""
    return _run([_bin("slurmd"), "-C"])


def routes() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination in every routing table of the machine (default routes left out)."""
    types = {"unicast", "local", "broadcast", "multicast", "unreachable", "blackhole", "prohibit", "throw", "nat", "anycast"}
    nets = []
    for line in _run([_bin("ip"), "-o", "-4", "route", "show", "table", "all"]).splitlines():
        words = line.split()
        if words and words[0] in types:
            words = words[1:]
        if not words or words[0] == "default":
            continue
        try:
            nets.append(ipaddress.ip_network(words[0], strict=False))
        except ValueError:
            continue
    return nets


def links() -> list[str]:
    """Names of the machine's network interfaces."""
    names = []
    for line in _run([_bin("ip"), "-o", "link", "show"]).splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


# ---------------------------------------------------------------------------------------------------------------
# Building


def generate_keys(keys: Mapping[Path, str]) -> None:
    """ed25519 key pairs (no passphrase) in OpenSSH format, as ``ssh-keygen -t ed25519`` writes them: private
    key path (0600) -> comment; the public key beside it (``.pub``). Made in-process with cryptography (what
    paramiko uses): one ssh-keygen process per host cost more than the rest of ``up`` on a busy machine."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for path, comment in keys.items():
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        Path(f"{path}.pub").write_bytes(public + b" " + comment.encode() + b"\n")


def mount_tmpfs(path: Path) -> bool:
    """Mount a tmpfs on ``path`` (an empty directory); False where this machine does not allow it.

    A local cluster lives as long as its namespaces, which a reboot ends: its thousands of small files (each
    node's /etc, /run, /var, logs, spool) belong in memory. On this project's machines a mkdir and a small file
    cost ~1 ms on the disk and ~20 us on a tmpfs, which made `local up` and every node's writes disk-bound."""
    proc = subprocess.run([_bin("mount"), "-t", "tmpfs", "-o", "mode=0755", "slurmkit-local", str(path)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def unmount(path: Path) -> None:
    """Unmount ``path`` if it is a mount point (lazily when something still holds it)."""
    if not os.path.ismount(path):
        return
    if subprocess.run([_bin("umount"), str(path)], capture_output=True).returncode != 0:
        _run([_bin("umount"), "--lazy", str(path)])


CGROUP_ROOT = "/sys/fs/cgroup"

# unshare(2) and mount(2) flags (linux/sched.h, linux/mount.h)
_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWNET = 0x00020000, 0x04000000, 0x40000000
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 0x40000

MountCall = tuple[str, str, "str | None", int, "str | None"]  # mount(2)'s source, target, fstype, flags, data


def mount_calls(mounts: list[Mount]) -> list[MountCall]:
    """The mount(2) calls (source, target, fstype, flags, data) that make a node's mounts, in order: first every
    mount made private (``unshare --propagation private``), then a bind (``mount --bind``), a recursive bind
    (``--rbind``), a proc or an overlay each. Pure."""
    calls: list[MountCall] = [("none", "/", None, _MS_REC | _MS_PRIVATE, None)]
    for m in mounts:
        if m.kind == "overlay":
            calls.append(("overlay", m.target, "overlay", 0, m.source))
        elif m.kind == "proc":
            calls.append(("proc", m.target, "proc", 0, None))
        elif m.kind == "rbind":
            calls.append((m.source, m.target, None, _MS_BIND | _MS_REC, None))
        else:
            calls.append((m.source, m.target, None, _MS_BIND, None))
    return calls


# The cgroup v1 hierarchies whose root `tasks` file slurmd reads at every start (proctrack/cgroup: freezer;
# jobacct_gather/cgroup: cpuacct; task/cgroup: memory), one byte per read(2) (Slurm's common_file_getsize).
# On a real machine that root holds few tasks (systemd puts services in slices of their own); with every node
# of a local cluster in it, each slurmd start read the whole machine's task list: quadratic in the node count
# (64 nodes: 543 tasks, 13 ms a slurmd start; 9.5 ms with the nodes in cgroups of their own).
NODE_CGROUP_CONTROLLERS = ("freezer", "cpuacct", "memory")
NODE_CGROUP_PREFIX = "slurmkit_"


def _v1_hierarchies(proc_cgroup: str, mounted: Iterable[str]) -> list[tuple[str, str]]:
    """(directory under /sys/fs/cgroup, cgroup path) of each v1 hierarchy of NODE_CGROUP_CONTROLLERS in a
    /proc/PID/cgroup text; ``mounted``: the names of /sys/fs/cgroup's directories (``cpu,cpuacct`` when
    co-mounted). Pure."""
    mounted = set(mounted)
    found: list[tuple[str, str]] = []
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        names = [c for c in controllers.split(",") if c]
        if hid == "0" or not set(names) & set(NODE_CGROUP_CONTROLLERS):
            continue
        directory = controllers if controllers in mounted else next((c for c in names if c in mounted), None)
        if directory and directory not in (d for d, _ in found):
            found.append((directory, path))
    return found


def node_cgroup_hierarchies(proc_self_cgroup: str, mounted: Iterable[str]) -> list[str]:
    """The cgroup v1 mount directories under /sys/fs/cgroup in which each node gets a cgroup of its own: those of
    NODE_CGROUP_CONTROLLERS where this process sits at the root (elsewhere its nodes are already off the root).
    None on a cgroup v2 host (its one line is ``0::/path``). Pure."""
    return [d for d, path in _v1_hierarchies(proc_self_cgroup, mounted) if path == "/"]


def _proc_cgroup(pid: int | str) -> tuple[str, list[str]]:
    """A process's /proc/PID/cgroup (``"self"``: this one) and the names under /sys/fs/cgroup; empty when either
    cannot be read (the process is gone, no cgroup file system)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return f.read(), os.listdir(CGROUP_ROOT)
    except OSError:
        return "", []


def holder_cgroups(holder: int) -> list[str]:
    """The node cgroups (``/sys/fs/cgroup/<dir>/slurmkit_<node>``) its holder sits in: what a process started
    into the node from outside (its sshd, by nsenter) joins too."""
    return [os.path.join(CGROUP_ROOT, d, path.lstrip("/")) for d, path in _v1_hierarchies(*_proc_cgroup(holder))
            if path.startswith("/" + NODE_CGROUP_PREFIX)]


def _join_cgroups(directories: list[str]) -> None:
    """Move this process into ``/sys/fs/cgroup/<dir>/<name>`` for each (made if missing); its children follow."""
    for d in directories:
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def _holder(libc, hostname: str, calls: list[MountCall], sleep: str, report: int,
            cgroups: list[str], chroot: str | None = None) -> None:
    """In a child forked for one node: leave this session, fork the holder (so that it is nobody's child once
    this one exits), give it new network, UTS and mount namespaces, its hostname and mounts, write
    "ready PID" (or "error ...") to ``report`` and become ``sleep infinity`` (chrooted in ``chroot`` first, when
    given). It first moves into the node's own cgroups (``cgroups``: their paths), so that all the node runs is
    there. Never returns."""
    import ctypes  # imported by start_holders already

    code = 1
    try:
        os.setsid()
        if os.fork():
            code = 0
            return

        def check(what: str, rc: int) -> None:
            if rc != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"{what}: {os.strerror(err)}")

        _join_cgroups(cgroups)
        check("unshare", libc.unshare(_CLONE_NEWNET | _CLONE_NEWUTS | _CLONE_NEWNS))
        with open("/proc/sys/kernel/hostname", "w") as f:
            f.write(hostname)
        for source, target, fstype, flags, data in calls:
            check(f"mount {source} on {target}", libc.mount(
                source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                data.encode() if data else None))
        if chroot:  # an image node: its own root filesystem (entered with nsenter --root)
            os.chroot(chroot)
            os.chdir("/")
        os.write(report, f"ready {os.getpid()}\n".encode())
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the report pipe too, and all this process had open
        os.execv(sleep, [sleep, "infinity"])
    except BaseException as exc:  # noqa: BLE001 - reported through the pipe; this process must not go on
        try:
            os.write(report, f"error {exc}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def start_holders(hostnames: Mapping[str, str], mounts: Mapping[str, list[Mount]],
                  chroots: Mapping[str, str] | None = None) -> dict[str, int]:
    """Start one holder per node; node -> holder PID.

    A holder is forked from this process and makes its namespaces and mounts with unshare(2) and mount(2)
    itself: no `unshare`, shell and `mount` processes per node (a dozen per node, most of `local up`'s time at
    64 nodes). It is forked twice, in a session of its own, so that it outlives this process, no terminal signal
    reaches it and it never waits as this process's zombie. Each reports through a pipe when it is ready (or
    why it failed).
    """
    import ctypes

    pids: dict[str, int] = {}
    failures: dict[str, CommandError] = {}
    libc = ctypes.CDLL(None, use_errno=True)  # loaded once, before the forks: each child only calls it
    sleep = _bin("sleep")
    hierarchies = node_cgroup_hierarchies(*_proc_cgroup("self"))
    reports: dict[str, int] = {}
    for node, hostname in hostnames.items():  # all forked first: they make their mounts in parallel
        calls = mount_calls(mounts[node])
        cgroups = [os.path.join(CGROUP_ROOT, h, NODE_CGROUP_PREFIX + hostname) for h in hierarchies]
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            _holder(libc, hostname, calls, sleep, write, cgroups, (chroots or {}).get(node))
        os.close(write)
        os.waitpid(child, 0)  # it exits once it has forked the holder
        reports[node] = read
    for node, read in reports.items():
        with os.fdopen(read) as pipe:
            out = pipe.read()
        match = re.search(r"^ready (\d+)$", out, re.M)
        if match:
            pids[node] = int(match.group(1))
        else:
            failures[node] = CommandError("unshare and mount (holder of the node's namespaces)", 1, out, "", node)
    if failures:
        raise NodeCommandsFailed("starting the node holders", failures, pids)
    return pids


def network_batch(
    bridges: list[str], host_address: str, mgmt_bridge: str, links: Mapping[int, Iterable[Link]], unreachable: str
) -> str:
    """The ``ip -batch`` that makes bridges and veths on the machine (peers go straight into the holders). Pure."""
    lines = []
    for br in bridges:
        lines += [f"link add {br} type bridge", f"link set {br} up"]
    lines.append(f"addr add {host_address} dev {mgmt_bridge}")
    for pid, node_links in links.items():
        for link in node_links:
            lines += [
                f"link add {link.host_ifname} type veth peer name {link.inner_ifname} netns {pid}",
                f"link set {link.host_ifname} master {link.bridge}",
                f"link set {link.host_ifname} up",
            ]
    lines.append(f"route add unreachable {unreachable}")
    return "\n".join(lines) + "\n"


def node_link_batch(node_links: Iterable[Link]) -> str:
    """The ``ip -batch`` run inside a node: loopback and its veth ends up, addresses on. No default route. Pure."""
    lines = ["link set lo up"]
    for link in node_links:
        lines += [f"addr add {link.address} dev {link.inner_ifname}", f"link set {link.inner_ifname} up"]
    return "\n".join(lines) + "\n"


def create_network(
    bridges: list[str], host_address: str, mgmt_bridge: str, links: Mapping[int, Iterable[Link]], unreachable: str
) -> None:
    _run([_bin("ip"), "-batch", "-"], input=network_batch(bridges, host_address, mgmt_bridge, links, unreachable))


def configure_node_links(links: Mapping[int, Iterable[Link]]) -> None:
    _run_many(
        {
            str(pid): ([_bin("nsenter"), "-t", str(pid), "-n", _bin("ip"), "-batch", "-"], node_link_batch(node_links))
            for pid, node_links in links.items()
        },
        what="configuring the nodes' links",
    )


def in_cgroups(cgroups: list[str], argv: list[str]) -> list[str]:
    """argv that moves itself into ``cgroups`` (nsenter does not: it enters namespaces only), then execs ``argv``.
    A shell, not a preexec_fn: with one, Python forks instead of vforking, a millisecond a node at 64 nodes."""
    if not cgroups:
        return argv
    script = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 1; shift; done; shift; exec "$@"'
    return [_bin("sh"), "-c", script, "sh", *cgroups, "--", *argv]


def in_node(pid: int, argv: list[str]) -> list[str]:
    """argv that runs inside the node held by ``pid`` (network, hostname and mounts)."""
    return [_bin("nsenter"), "-t", str(pid), "-n", "-u", "-m", *argv]


def start_sshds(nodes: Mapping[str, tuple[int, Path, Path, Path]]) -> None:
    """Start every node's sshd (node -> holder PID, sshd_config, host path of its pid file, log file), in
    parallel, and wait until each has written its pid file (it is listening by then)."""
    sshd = which("sshd") or "/usr/sbin/sshd"
    _run_many(
        {node: (in_node(pid, in_cgroups(holder_cgroups(pid), [sshd, "-f", str(cfg), "-E", str(log)])), None)
         for node, (pid, cfg, _, log) in nodes.items()},
        what="starting sshd",
    )
    deadline = time.monotonic() + 10
    waiting = {node: pidfile for node, (_, _, pidfile, _) in nodes.items()}
    while waiting and time.monotonic() < deadline:
        waiting = {node: p for node, p in waiting.items() if not p.exists()}
        if waiting:
            time.sleep(0.02)
    if waiting:
        node, pidfile = next(iter(waiting.items()))
        log = nodes[node][3]
        text = log.read_text() if log.exists() else ""
        raise CommandError("sshd", None, "", text or f"no pid file {pidfile} after 10 s", node)


def in_node_root(pid: int, argv: list[str]) -> list[str]:
    """argv that runs inside the chroot image node held by ``pid``: its namespaces and its own root filesystem."""
    return [_bin("nsenter"), "-t", str(pid), "-n", "-u", "-m", "-r", "-w", *argv]


def start_chroot_sshds(nodes: Mapping[str, tuple[int, Path]]) -> None:
    """Start the image's own sshd in every chroot image node (node -> holder PID, the node's /run as seen from
    the machine), with the node's /etc/ssh/sshd_config, and wait for each pid file."""
    _run_many(
        {node: (in_node_root(pid, in_cgroups(holder_cgroups(pid), ["/usr/sbin/sshd", "-f", "/etc/ssh/sshd_config",
                                                                     "-E", "/run/sshd.log"])), None)
         for node, (pid, _) in nodes.items()},
        what="starting sshd",
    )
    _wait_pidfiles({node: (run / "sshd.pid", run / "sshd.log") for node, (_, run) in nodes.items()})


def _wait_pidfiles(nodes: Mapping[str, tuple[Path, Path]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(nodes)
    while waiting and time.monotonic() < deadline:
        waiting = {node: p for node, p in waiting.items() if not p[0].exists()}
        if waiting:
            time.sleep(0.02)
    if waiting:
        failures = {}
        for node, (pidfile, log) in waiting.items():
            text = log.read_text() if log.exists() else ""
            failures[node] = CommandError("sshd", None, "", text or f"no pid file {pidfile} after {timeout:.0f} s", node)
        raise NodeCommandsFailed("starting sshd", failures)


def boot_cgroups(node: str) -> list[str]:
    """The cgroups a booted node's systemd-nspawn runs in (made here): the node's v1 ones (see holder_cgroups)
    plus ``slurmkit_<node>`` of the name=systemd and unified hierarchies, where nspawn --keep-unit puts the
    container's own tree (else it makes ``payload``/``supervisor`` at the machine's hierarchy root)."""
    found = []
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):  # a pure cgroup v2 machine
        found.append(os.path.join(CGROUP_ROOT, NODE_CGROUP_PREFIX + node))
    for h in ("systemd", "unified"):
        if os.path.exists(os.path.join(CGROUP_ROOT, h, "cgroup.procs")):
            found.append(os.path.join(CGROUP_ROOT, h, NODE_CGROUP_PREFIX + node))
    for d in found:
        os.makedirs(d, exist_ok=True)
    return found


# Run in a booted node: its cgroup v1 controller hierarchies read-write (nspawn mounts all but name=systemd
# read-only; a bind remount changes only that mount's flag).
WRITABLE_CGROUPS_SCRIPT = """\
for d in /sys/fs/cgroup/*; do
  case "$d" in */systemd|*/unified) continue;; esac
  [ -L "$d" ] || ! grep -q " $d cgroup ro," /proc/mounts || mount -o remount,bind,rw "$d" || exit 1
done
"""


def writable_cgroups(prefixes: Mapping[str, list[str]]) -> None:
    """Make the cgroup v1 controllers (freezer, memory, cpuset...) writable in every booted node (node -> argv
    prefix that runs in it), as they are on a real machine: slurmd's proctrack/cgroup and task/cgroup make
    ``slurm_<node>`` in them ("unable to create cgroup '/sys/fs/cgroup/freezer/slurm_NODE': Read-only file system"
    otherwise); `down` removes those (:func:`remove_cgroups`). Nothing to do on a cgroup v2 machine."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):
        return
    _run_many({node: (prefix + ["/bin/sh", "-c", WRITABLE_CGROUPS_SCRIPT], None) for node, prefix in prefixes.items()},
              what="making the cgroup v1 controllers writable")


NSPAWN_PROPAGATE = Path("/run/systemd/nspawn/propagate")


def nspawn_argv(root: Path, machine: str, binds: Iterable[str]) -> list[str]:
    """systemd-nspawn booting ``root`` with systemd as PID 1, in the network namespace it is started in (the
    node's: no --private-network), registered nowhere (no systemd/dbus on the machine), its console to its log.
    Pure."""
    argv = [_bin("systemd-nspawn"), "--quiet", "-D", str(root), "--boot", "--register=no", "--keep-unit",
            f"--machine={machine}", "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=passive"]
    argv += [f"--bind={b}" for b in binds]
    return argv


def boot_nodes(nodes: Mapping[str, tuple[int, Path, list[str], Path]], unified_cgroup: bool = False) -> dict[str, int]:
    """Boot every image node (node -> holder PID, root filesystem, directories bound in, log file): one
    systemd-nspawn each, in the node's network and mount namespaces and cgroups, detached; node -> nspawn PID.
    ``unified_cgroup``: give the containers a cgroup v2 hierarchy (nspawn's SYSTEMD_NSPAWN_UNIFIED_HIERARCHY)."""
    env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1" if unified_cgroup else "0"}
    pids = {}
    for node, (holder, root, binds, log) in nodes.items():
        cgroups = holder_cgroups(holder) + boot_cgroups(node)
        argv = in_cgroups(cgroups, [_bin("nsenter"), "-t", str(holder), "-n", "-m", *nspawn_argv(root, node, binds)])
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env)
        pids[node] = proc.pid
    return pids


def _strip_ansi(text: str) -> str:
    """A console log without its terminal escape sequences (systemd colours its messages)."""
    return re.sub(r"\x1b(\[[0-9;?!]*[A-Za-z]|\][^\x1b]*\x1b\\|[78])", "", text)


def in_container(nspawn: int, argv: list[str]) -> str:
    """Run ``argv`` in a booted node, in every namespace of its systemd (the child of its systemd-nspawn)."""
    children = (_read(f"/proc/{nspawn}/task/{nspawn}/children") or "").split()
    if not children:
        raise LocalClusterError(f"systemd-nspawn {nspawn} runs no container (the node is not booted)")
    return _run([_bin("nsenter"), "-t", children[0], "-a", *argv])


def start_repo_server(holder: int, address: str, directory: Path, log: Path, port: int = 80,
                      timeout: float = 10) -> int:
    """Serve ``directory`` over HTTP on ``address:port`` in the network namespace of the node held by ``holder``
    (a head: the cluster's site mirror), detached; waits until it listens. Its PID. It lives in that node's
    namespaces, so `down` ends it with the node's other processes."""
    argv = [_bin("nsenter"), "-t", str(holder), "-n", "-m", sys.executable, "-m", "http.server", "--bind", address,
            "--directory", str(directory), str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while not listening(holder, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            text = log.read_text(errors="replace") if log.exists() else ""
            raise CommandError(shlex.join(argv), proc.returncode, "", text or f"not listening after {timeout:.0f} s")
        time.sleep(0.02)
    return proc.pid


def container_argv(nspawn: int) -> list[str]:
    """argv prefix running in every namespace of a booted node's systemd (the child of its systemd-nspawn)."""
    children = (_read(f"/proc/{nspawn}/task/{nspawn}/children") or "").split()
    if not children:
        raise LocalClusterError(f"systemd-nspawn {nspawn} runs no container (the node is not booted)")
    return [_bin("nsenter"), "-t", children[0], "-a"]


def apt_update_nodes(prefixes: Mapping[str, list[str]]) -> None:
    """`apt-get update` in every node at once (node -> argv prefix that runs in it): their package lists from
    the cluster's site mirror, as a node's image has its archive's. A failure names the node with apt's output."""
    cmd = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "apt-get", "update", "-q"]
    what = "apt-get update from the site mirror"
    out = _run_many({node: (prefix + cmd, None) for node, prefix in prefixes.items()}, what=what)
    # apt-get update exits 0 when a source fails ("Err:" lines, "W: Failed to fetch")
    failed = {node: CommandError(shlex.join(cmd), 0, text, "source failed", node)
              for node, text in out.items() if re.search(r"^Err:", text, re.M)}
    if failed:
        raise NodeCommandsFailed(what, failed, out)


def listening(pid: int, port: int) -> bool:
    """Whether something listens on TCP ``port`` in the network namespace of ``pid`` (its /proc/PID/net/tcp)."""
    text = _read(f"/proc/{pid}/net/tcp") or ""
    return any(f":{port:04X}" == line.split()[1][-5:] and line.split()[3] == "0A"
               for line in text.splitlines()[1:] if len(line.split()) > 3)


def wait_listening(nodes: Mapping[str, tuple[int, int, Path]], port: int = 22, timeout: float = 120) -> None:
    """Wait until sshd listens in every booted node (node -> holder PID, nspawn PID, nspawn log): fail at once
    for a node whose nspawn exited, naming it with its log; after ``timeout``, every node still waiting."""
    deadline = time.monotonic() + timeout
    waiting = dict(nodes)
    failures: dict[str, CommandError] = {}

    def log_of(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    while waiting:
        for node, (holder, nspawn, log) in list(waiting.items()):
            if listening(holder, port):
                del waiting[node]
            elif not _alive(nspawn):
                failures[node] = CommandError("systemd-nspawn --boot", None, "",
                                              _strip_ansi(log_of(log)) or f"exited; empty log {log}", node)
                del waiting[node]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for node, (_, _, log) in waiting.items():
        failures[node] = CommandError("systemd-nspawn --boot", None, log_of(log),
                                      f"sshd not listening on port {port} after {timeout:.0f} s", node)
    if failures:
        raise NodeCommandsFailed("booting the image nodes", failures)


def stop_booted(pids: Iterable[int], timeout: float = 15) -> None:
    """Ask each booted node's systemd-nspawn to shut its container down (SIGTERM: a clean poweroff), and wait;
    what is left is killed with the nodes' other processes."""
    pids = [p for p in pids if _alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)


def remove_nspawn_leftovers(nodes: Iterable[str]) -> list[str]:
    """The empty directory nspawn leaves per machine under /run/systemd/nspawn/propagate (/run is no tmpfs here)."""
    removed = []
    for node in nodes:
        d = NSPAWN_PROPAGATE / node
        try:
            d.rmdir()
            removed.append(str(d))
        except OSError:
            pass
    return removed


def make_char_devices(directory: Path, major: int, count: int) -> None:
    """``directory/nvidia0..count-1``: character devices (major, k), mode 0666, like /dev/nvidiaK."""
    directory.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        path = directory / f"nvidia{k}"
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, k))
        os.chmod(path, 0o666)


# ---------------------------------------------------------------------------------------------------------------
# Finding and removing


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def node_processes(node_name: re.Pattern[str]) -> dict[str, dict[int, str]]:
    """Processes of the nodes whose hostname fully matches ``node_name``: node -> {pid: command name}.

    Zombies are left out (they hold no namespace any more)."""
    own_net = os.readlink("/proc/self/ns/net")
    by_net: dict[str, list[int]] = {}
    net_node: dict[str, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            net = os.readlink(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if net == own_net:
            continue
        pid = int(entry)
        by_net.setdefault(net, []).append(pid)
        if net not in net_node:
            hostname = (_read(f"/proc/{entry}/root/etc/hostname") or "").strip()
            if node_name.fullmatch(hostname):
                net_node[net] = hostname
    result: dict[str, dict[int, str]] = {}
    for net, node in net_node.items():
        for pid in by_net[net]:
            comm = _read(f"/proc/{pid}/comm")
            if comm is not None:
                result.setdefault(node, {})[pid] = comm.strip()
    return result


def _alive(pid: int) -> bool:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return False
    return text.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def kill_node_processes(node_name: re.Pattern[str], grace: float = 3.0) -> int:
    """SIGTERM every process of the matching nodes (slurmd cleans its cgroups then), SIGKILL what is left
    after ``grace`` seconds; returns how many there were."""
    found = node_processes(node_name)
    pids = {pid for procs in found.values() for pid in procs}
    if not pids:
        return 0
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = {pid for pid in pids if _alive(pid)}
            if not pids:
                break
            time.sleep(0.05)
        # processes forked meanwhile (a job step starting) are caught by a second look
        pids |= {pid for procs in node_processes(node_name).values() for pid in procs}
        if not pids:
            break
    if pids:
        raise LocalClusterError(f"processes still running after SIGKILL: {sorted(pids)}")
    return len({pid for procs in found.values() for pid in procs})


def delete_links(names: list[str]) -> list[str]:
    """Delete these links (a veth takes its peer along); returns the ones that existed."""
    if not names:
        return []
    subprocess.run(
        [_bin("ip"), "-force", "-batch", "-"],
        input="".join(f"link del {n}\n" for n in names),
        capture_output=True,
        text=True,
    )
    return names


def wait_links_gone(pattern: re.Pattern[str], timeout: float = 5.0) -> None:
    """Network namespaces are freed asynchronously: wait until no matching link is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = [link for link in links() if pattern.fullmatch(link)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise LocalClusterError(f"links still present: {', '.join(left)}")
        delete_links(left)
        time.sleep(0.05)


def delete_unreachable_route(subnet: str) -> bool:
    out = _run([_bin("ip"), "-o", "-4", "route", "show", "type", "unreachable"])
    if not any(line.split()[:2] == ["unreachable", subnet] for line in out.splitlines()):
        return False
    _run([_bin("ip"), "route", "del", "unreachable", subnet])
    return True


def remove_char_devices(directory: Path, root: Path) -> bool:
    """Remove a cluster's simulated GPU devices, and their root directory when no other cluster uses it."""
    if not directory.exists():
        return False
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()
    try:
        root.rmdir()
    except OSError:
        pass
    return True


def remove_cgroups(node_name: re.Pattern[str], timeout: float = 3.0) -> list[str]:
    """Remove ``/sys/fs/cgroup/*/slurm_<node>`` trees left by slurmd (Debian names cgroups after the node) and
    the nodes' own ``slurmkit_<node>`` cgroups, once their processes are gone."""
    removed = []
    tops = [(top, prefix) for prefix in ("slurm_", NODE_CGROUP_PREFIX) for pattern in (f"*/{prefix}*", f"{prefix}*")
            for top in Path(CGROUP_ROOT).glob(pattern) if top.is_dir()]
    for top, prefix in tops:
        if not node_name.fullmatch(top.name[len(prefix):]):
            continue
        deadline = time.monotonic() + timeout
        while True:
            try:
                for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                    os.rmdir(dirpath)
                break
            except OSError as exc:
                # EBUSY while the last tasks of the cgroup are being reaped
                if exc.errno not in (errno.EBUSY, errno.ENOENT) or time.monotonic() > deadline:
                    raise LocalClusterError(f"cannot remove {top}: {exc}") from exc
                if exc.errno == errno.ENOENT:
                    continue
                time.sleep(0.05)
        removed.append(str(top))
    return removed
