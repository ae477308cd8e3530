"""Data sync: ``rsync -a`` of a directory to every host, in parallel. rsync needs its own ssh transport, so it
runs ``rsync -e "ssh ..."`` locally with a ProxyCommand through the jump host (``ssh -J`` would not pass
``-i``/``-o`` on to the jump); the argv and the ``--stats`` parsing are pure."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from slurmkit.cluster import Cluster, Host, resolve_relative
from slurmkit.errors import CommandError
from slurmkit.ops._common import OpsInputError, jump_host


@dataclass
class SyncResult:
    """One host's rsync: files transferred, bytes of file data, itemized change lines, seconds taken."""

    files: int
    bytes: int
    itemized: list[str]
    seconds: float = 0.0


def _ssh_options(cluster: Cluster, base_dir: Path) -> list[str]:
    ssh = cluster.ssh
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={int(ssh.connect_timeout)}"]
    if ssh.config_file:
        opts = ["-F", str(resolve_relative(ssh.config_file, base_dir))] + opts
    if ssh.identity_file:
        opts += ["-i", str(resolve_relative(ssh.identity_file, base_dir)), "-o", "IdentitiesOnly=yes"]
    if ssh.known_hosts:
        opts += ["-o", f"UserKnownHostsFile={resolve_relative(ssh.known_hosts, base_dir)}"]
    return opts


def ssh_argv(cluster: Cluster, base_dir: Path, host: Host) -> list[str]:
    """ssh argv (without the destination) reaching ``host`` as slurmkit does: compute nodes through the jump host
    by a ProxyCommand that carries the same identity and known_hosts."""
    opts = _ssh_options(cluster, base_dir)
    argv = ["ssh", *opts, "-p", str(cluster.ssh.port)]
    jump = jump_host(cluster)
    if jump and host.role == "compute" and not cluster.ssh.config_file:
        juser, jhost, jport = jump
        addr = next((h.address for h in cluster.hosts() if h.name == jhost), jhost)
        proxy = shlex.join(["ssh", *opts, "-p", str(jport or cluster.ssh.port), "-W", "%h:%p",
                            f"{juser or cluster.ssh.user}@{addr}"])
        argv += ["-o", f"ProxyCommand={proxy}"]
    return argv


def ssh_target(cluster: Cluster, host: Host) -> str:
    return host.name if cluster.ssh.config_file else f"{cluster.ssh.user}@{host.address}"


def rsync_argv(cluster: Cluster, base_dir: Path, host: Host, src: str, dest: str, delete: bool = False) -> list[str]:
    """``rsync -a`` of the directory ``src`` (its contents) into ``dest`` on ``host``, with itemized changes and
    --stats for the per-host result."""
    argv = ["rsync", "-a", "--itemize-changes", "--stats", "--mkpath", "-e", shlex.join(ssh_argv(cluster, base_dir, host))]
    if delete:
        argv.append("--delete")
    return argv + [src.rstrip("/") + "/", f"{ssh_target(cluster, host)}:{dest.rstrip('/') + '/'}"]


_STAT_FILES = re.compile(r"^Number of (?:regular )?files transferred:\s*([\d,.]+)", re.M)
_STAT_BYTES = re.compile(r"^Total transferred file size:\s*([\d,.]+)", re.M)
_ITEM = re.compile(r"^([<>ch.*][fdLDS][.+?a-zA-Z]{7,9}|\*deleting) ")


def _int(text: str) -> int:
    return int(re.sub(r"[,.]", "", text))


def parse_rsync_output(text: str) -> SyncResult:
    """``rsync --itemize-changes --stats`` stdout -> files transferred, bytes of file data, itemized lines."""
    files = _STAT_FILES.search(text)
    size = _STAT_BYTES.search(text)
    if not files or not size:
        raise CommandError("rsync", None, text, "rsync printed no --stats summary")
    items = [ln for ln in text.splitlines() if _ITEM.match(ln)]
    return SyncResult(_int(files.group(1)), _int(size.group(1)), items)


def sync(ssh, base_dir: Path, hosts: list[Host], src: str, dest: str, delete: bool = False, parallel: int = 8,
         on_done: Callable[[str, bool], None] | None = None):
    """rsync ``src`` to ``dest`` on every host, at most ``parallel`` at a time. Hosts without rsync (checked
    through ClusterSSH first) fail with that reason; the others go on. -> GroupResult[SyncResult]"""
    from slurmkit.remote import GroupResult, HostResult

    if not Path(src).is_dir():
        raise OpsInputError(f"{src}: not a directory")
    if parallel < 1:
        raise OpsInputError("--parallel must be >= 1")
    cluster = ssh.cluster
    pre = ssh.run_all(hosts, lambda c: c.run("command -v rsync", check=False).ok)
    group: GroupResult = GroupResult()
    ready = []
    for h in hosts:
        r = pre.results[h.name]
        if not r.ok:
            group.results[h.name] = HostResult(h.name, error=r.error)
        elif not r.value:
            group.results[h.name] = HostResult(h.name, error=CommandError("command -v rsync", 1, "",
                                               "rsync is not installed on this host", host=h.name))
        else:
            ready.append(h)
    for name, r in group.results.items():
        if on_done:
            on_done(name, False)

    def one(h: Host) -> HostResult:
        t0 = time.monotonic()
        argv = rsync_argv(cluster, base_dir, h, src, dest, delete)
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            err = CommandError("rsync " + dest, p.returncode, p.stdout, p.stderr, host=h.name)
            return HostResult(h.name, error=err, seconds=time.monotonic() - t0)
        res = parse_rsync_output(p.stdout)
        res.seconds = time.monotonic() - t0
        return HostResult(h.name, value=res, seconds=res.seconds)

    if ready:
        with ThreadPoolExecutor(max_workers=min(parallel, len(ready))) as pool:
            for fut in as_completed([pool.submit(one, h) for h in ready]):
                r = fut.result()
                group.results[r.host] = r
                if on_done:
                    on_done(r.host, r.ok)
    order = [h.name for h in cluster.hosts()]
    group.results = dict(sorted(group.results.items(), key=lambda kv: order.index(kv[0])))
    return group

