"""The OpenSSH config for a cluster (pure): one ``Host`` entry per host, compute nodes through the jump host."""

from __future__ import annotations

from pathlib import Path

from slurmkit.cluster import Cluster, resolve_relative
from slurmkit.ops._common import jump_host


def ssh_config_text(cluster: Cluster, base_dir: Path) -> str:
    """An OpenSSH config with one ``Host`` entry per host (HostName, User, Port, IdentityFile, UserKnownHostsFile,
    ProxyJump for compute nodes). ProxyJump names the jump host's own entry (a head's name, or an extra
    ``<cluster>-jump`` entry), so that ``ssh -F FILE`` applies the same identity and known_hosts to the jump."""
    ssh = cluster.ssh
    hosts = cluster.hosts()
    common = []
    if ssh.identity_file:
        common.append(f"IdentityFile {resolve_relative(ssh.identity_file, base_dir)}")
        common.append("IdentitiesOnly yes")
    if ssh.known_hosts:
        common.append(f"UserKnownHostsFile {resolve_relative(ssh.known_hosts, base_dir)}")
    jump = jump_host(cluster)
    jump_entry = None
    blocks: list[tuple[str, list[str]]] = []
    if jump:
        juser, jhost, jport = jump
        head = next((h for h in hosts if h.role == "head" and jhost in (h.name, h.address)), None)
        if head is not None and (juser or ssh.user) == ssh.user and (jport or ssh.port) == ssh.port:
            jump_entry = head.name
        else:
            jump_entry = f"{cluster.cluster}-jump"
            lines = [f"HostName {jhost}", f"User {juser or ssh.user}"]
            if (jport or ssh.port) != 22:
                lines.append(f"Port {jport or ssh.port}")
            blocks.append((jump_entry, lines + common))
    for h in hosts:
        lines = []
        if h.address != h.name:
            lines.append(f"HostName {h.address}")
        lines.append(f"User {ssh.user}")
        if ssh.port != 22:
            lines.append(f"Port {ssh.port}")
        lines += common
        if jump_entry and h.role == "compute":
            lines.append(f"ProxyJump {jump_entry}")
        blocks.append((h.name, lines))
    header = [f"# OpenSSH config for the Slurm cluster {cluster.cluster}, written by `slurmkit ssh-config`.",
              "# Use: ssh -F THIS_FILE <host>, or Include it from ~/.ssh/config."]
    if ssh.config_file:
        header.append(f"# The cluster file also names {ssh.config_file}; its entries are not repeated here.")
    out = header + [""]
    for name, lines in blocks:
        out.append(f"Host {name}")
        out += [f"    {ln}" for ln in lines]
        out.append("")
    return "\n".join(out)

