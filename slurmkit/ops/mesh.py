"""The SSH mesh: one cluster key pair for passwordless SSH between all hosts, and known_hosts filled from every
host's real sshd host keys (known_hosts edits are pure; the rest goes through
:class:`slurmkit.remote.ClusterSSH`)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from slurmkit.cluster import Cluster
from slurmkit.errors import CommandError
from slurmkit.ops._common import ensure_ssh_dir, read_text, sudo_prefix, user_account
from slurmkit.ops.keys import authorized_keys_add, parse_key_line, read_public_key
from slurmkit.paths import StateDir


def mesh_key(cluster_file: Path, cluster: Cluster) -> tuple[bytes, str]:
    """The cluster's mesh key pair, generated once beside the cluster file (``.slurmkit/mesh_ed25519``, 0600;
    :attr:`slurmkit.paths.StateDir.mesh_key`). -> (private key bytes, public key line)."""
    state = StateDir.of(cluster_file)
    path, pub = state.mesh_key, state.mesh_public_key
    if not path.exists():
        state.root.mkdir(parents=True, exist_ok=True)
        tmp = state.root / f".{path.name}.tmp"
        for p in (tmp, tmp.with_suffix(".tmp.pub")):
            p.unlink(missing_ok=True)
        r = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"slurmkit-mesh-{cluster.cluster}",
                            "-f", str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            raise CommandError("ssh-keygen", r.returncode, r.stdout, r.stderr)
        os.chmod(tmp, 0o600)
        os.replace(tmp.with_suffix(".tmp.pub"), pub)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path.read_bytes(), pub.read_text().strip()


@dataclass
class HostKeys:
    """A host's names (its name, the cluster file's address, the addresses it has) and its sshd's host keys."""

    names: list[str]
    keys: list[str]  # "TYPE BASE64"


# Which host keys does the running sshd use? Its own -f config when it was started with one (the local cluster's
# nodes do), else the default; `sshd -T` prints the effective HostKey lines. Fall back to /etc/ssh's files.
HOST_KEYS_SCRIPT = r"""
pid=$(cat /run/sshd.pid 2>/dev/null || cat /var/run/sshd.pid 2>/dev/null)
cfg=""
if [ -n "$pid" ] && [ -r /proc/$pid/cmdline ]; then
  cfg=$(tr '\0' ' ' < /proc/$pid/cmdline | sed -n 's/.* -f \([^ ]*\).*/\1/p')
fi
keys=$(SUDO sshd -T ${cfg:+-f "$cfg"} 2>/dev/null | awk '$1=="hostkey"{print $2}')
[ -n "$keys" ] || keys=$(ls /etc/ssh/ssh_host_*_key 2>/dev/null)
for k in $keys; do SUDO cat "$k.pub" 2>/dev/null; done
echo "--addresses--"
hostname -I 2>/dev/null || true
"""


def parse_host_keys(text: str) -> tuple[list[str], list[str]]:
    """Output of HOST_KEYS_SCRIPT -> (["TYPE BASE64", ...], [addresses])."""
    keys_part, _, addr_part = text.partition("--addresses--")
    keys = []
    for line in keys_part.splitlines():
        k = parse_key_line(line)
        if k is not None:
            keys.append(" ".join(k.line.split()[:2]))
    addrs = [a for a in addr_part.split() if not a.startswith(("127.", "::1"))]
    return keys, addrs


def known_hosts_lines(host_keys: dict[str, HostKeys]) -> list[str]:
    """One known_hosts line per host key, naming every name and address of the host."""
    lines = []
    for hk in host_keys.values():
        names = ",".join(dict.fromkeys(hk.names))
        lines += [f"{names} {k}" for k in hk.keys]
    return lines


def merge_known_hosts(text: str, lines: list[str]) -> tuple[str, bool]:
    """``text`` with ``lines`` present; stale plain lines for the same names with another key are dropped.
    Hashed lines and other hosts' lines are kept. -> (text, changed)"""
    wanted: dict[str, set[str]] = {}
    for ln in lines:
        names, key = ln.split(" ", 1)
        for n in names.split(","):
            wanted.setdefault(n, set()).add(key)
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith(("#", "|", "@")):
            names = parts[0].split(",")
            key = " ".join(parts[1:3])
            if any(n in wanted for n in names) and not all(key in wanted.get(n, {key}) for n in names):
                continue  # a stale key for one of our hosts
            if line.strip() in lines:
                continue  # re-added below, once
        out.append(line)
    new = "\n".join(out + lines) + "\n"
    return new, new != (text if text.endswith("\n") or not text else text + "\n")


@dataclass
class MeshChange:
    """What ``mesh`` changed on one host (empty: it was up to date)."""

    changes: list[str] = field(default_factory=list)


def _collect_host_keys(conn, sudo: str) -> HostKeys:
    keys, addrs = parse_host_keys(conn.run(HOST_KEYS_SCRIPT.replace("SUDO ", sudo)).stdout)
    if not keys:
        raise CommandError("read sshd host keys", None, "", "no host key found (sshd -T, /etc/ssh)", host=conn.name)
    return HostKeys([conn.host.name, conn.host.address, *addrs], keys)


def _install_mesh(conn, user: str, private: bytes, public: str, kh_lines: list[str], sudo: str) -> MeshChange:
    home, group = user_account(conn, user)
    d = ensure_ssh_dir(conn, home, user, group, sudo)
    out = MeshChange()
    current = conn.read(f"{d}/id_ed25519")
    if current != private:
        if current is not None:
            stamp = time.strftime("%Y%m%d%H%M%S")
            conn.run(f"cp -p {d}/id_ed25519 {d}/id_ed25519.slurmkit-{stamp}.bak && "
                     f"{{ [ ! -f {d}/id_ed25519.pub ] || cp -p {d}/id_ed25519.pub {d}/id_ed25519.slurmkit-{stamp}.bak.pub; }}")
            out.changes.append(f"kept the previous id_ed25519 as id_ed25519.slurmkit-{stamp}.bak")
        conn.write(f"{d}/id_ed25519", private, mode=0o600, owner=user, group=group)
        out.changes.append("installed id_ed25519")
    if read_text(conn, f"{d}/id_ed25519.pub").strip() != public:
        conn.write(f"{d}/id_ed25519.pub", (public + "\n").encode(), mode=0o644, owner=user, group=group)
        out.changes.append("installed id_ed25519.pub")
    text, changed = authorized_keys_add(read_text(conn, f"{d}/authorized_keys"), read_public_key(public, "mesh key"))
    if changed:
        conn.write(f"{d}/authorized_keys", text.encode(), mode=0o600, owner=user, group=group)
        out.changes.append("authorized the mesh key")
    text, changed = merge_known_hosts(read_text(conn, f"{d}/known_hosts"), kh_lines)
    if changed:
        conn.write(f"{d}/known_hosts", text.encode(), mode=0o644, owner=user, group=group)
        out.changes.append(f"known_hosts: {len(kh_lines)} host key line(s)")
    return out


def mesh(ssh, cluster_file: Path, user: str, on_done=None):
    """Passwordless SSH between all hosts for ``user``: the cluster's mesh key as ~/.ssh/id_ed25519 (a different
    existing key is kept as a backup), its public key in authorized_keys, and known_hosts filled from every host's
    real sshd host keys under all its names and addresses. -> (GroupResult[HostKeys], GroupResult[MeshChange])"""
    cluster = ssh.cluster
    sudo = sudo_prefix(cluster)
    private, public = mesh_key(cluster_file, cluster)
    hosts = cluster.hosts()
    keys = ssh.run_all(hosts, lambda c: _collect_host_keys(c, sudo))
    lines = known_hosts_lines({h: r.value for h, r in keys.succeeded.items()})
    reachable = [h for h in hosts if h.name in keys.succeeded]
    done = ssh.run_all(reachable, lambda c: _install_mesh(c, user, private, public, lines, sudo), on_done=on_done)
    return keys, done

