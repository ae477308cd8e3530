"""Operator workflows: SSH keys, an SSH config, a node-to-node SSH mesh, data sync, and the support bundle.

Each workflow is split in two: pure functions from text to objects (key parsing, authorized_keys and known_hosts
edits, the SSH config text, rsync argv and stats, secret scrubbing, severity classification), and functions that
act on hosts, always through :class:`slurmkit.remote.ClusterSSH` (parallel, one result per host, through the jump
host). ``sync`` is the one exception: rsync needs its own ssh transport, so it runs ``rsync -e "ssh ..."`` locally
with a ProxyCommand through the jump host (``ssh -J`` would not pass ``-i``/``-o`` on to the jump).

Support-bundle classification (by the support SLA's levels; the bundle's severity is the highest found)
-------------------------------------------------------------------------------------------------------
Severity 1 -- services down or unusable:
  * controller down: ``scontrol ping`` on the first head answers no controller UP (or cannot reach any),
    or the first head itself cannot be reached over SSH;
  * no node usable: not one compute node is reachable, runs slurmd, and is in a Slurm state that takes jobs.
Severity 2 -- severely limited:
  * a compute node down: Slurm reports it DOWN, FAIL, NOT_RESPONDING (``*``), INVAL or UNKNOWN; or its slurmd
    is not running (seen on the host itself, so a stopped slurmd counts at once, before Slurm's SlurmdTimeout,
    300 s by default, marks it not responding); or the host is unreachable over SSH;
  * nodes drained: more than one drained node, or any drained node whose reason does not name maintenance;
  * the primary controller down while a backup answers (failed over: high risk), munged not running on a host;
  * a rail down: a compute node of a group with ``rails: N`` shows fewer than N InfiniBand ports ACTIVE;
  * bench failing: the latest saved bench run's verdict did not pass.
Severity 3 -- minor:
  * exactly one node drained, with a reason that names maintenance (``maint``), and no other node drained;
  * config drift: a host's /etc/slurm/<file> differs from what ``render_cluster`` gives for the cluster file.
No finding: the bundle says so ("no incident").

Secrets are never collected (the munge key is not read from any host; private keys are not read) and every
collected text is scrubbed with :data:`SECRET_PATTERNS` before it enters the bundle; a text that still holds the
cluster's munge key bytes (raw or base64) is replaced whole.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from slurmkit.cluster import Cluster, Host, resolve_relative
from slurmkit.errors import CommandError, SlurmkitError


class OpsInputError(SlurmkitError):
    """Bad input to an operator command (a key file, a host list, a path): exit 2, nothing was changed."""

    exit_code = 2


# =============================================================================================================
# Public keys (pure)

KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)
_KEY_IN_LINE = re.compile(r"(?:^|\s)(?P<type>" + "|".join(re.escape(t) for t in KEY_TYPES) +
                          r")\s+(?P<blob>[A-Za-z0-9+/]+={0,2})(?:\s+(?P<comment>.*))?$")
_PRIVATE_MARKERS = ("PRIVATE KEY-----", "PuTTY-User-Key-File", "SSH PRIVATE KEY FILE FORMAT")


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes
    comment: str = ""

    @property
    def identity(self) -> tuple[str, bytes]:
        """What makes two keys the same key: type and blob (the comment does not count)."""
        return self.type, self.blob

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-keygen -lf`` prints it (base64 of the blob's SHA-256, no padding)."""
        return "SHA256:" + base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")

    @property
    def line(self) -> str:
        text = f"{self.type} {base64.b64encode(self.blob).decode()}"
        return f"{text} {self.comment}" if self.comment else text


def _embedded_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    n = int.from_bytes(blob[:4], "big")
    if n <= 0 or n > 64 or len(blob) < 4 + n:
        return None
    try:
        return blob[4:4 + n].decode("ascii")
    except UnicodeDecodeError:
        return None


def parse_key_line(line: str) -> PublicKey | None:
    """One authorized_keys / .pub line (options allowed before the key) -> PublicKey; None for comments, blank
    lines and lines that hold no well-formed key."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    m = _KEY_IN_LINE.search(line)
    if not m:
        return None
    try:
        blob = base64.b64decode(m["blob"], validate=True)
    except (binascii.Error, ValueError):
        return None
    if _embedded_type(blob) != m["type"]:
        return None
    return PublicKey(m["type"], blob, (m["comment"] or "").strip())


def read_public_key(text: str, source: str) -> PublicKey:
    """The one public key in a key file's text; OpsInputError (exit 2) for a private key, no key, several keys,
    an unknown type, bad base64 or a blob whose embedded type is not the one named."""
    if any(marker in text for marker in _PRIVATE_MARKERS):
        raise OpsInputError(f"{source}: this is a PRIVATE key; give the public key (usually {source}.pub). "
                            "Nothing was sent anywhere.")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise OpsInputError(f"{source}: no public key in the file")
    if len(lines) > 1:
        raise OpsInputError(f"{source}: {len(lines)} lines; give a file with exactly one public key")
    parts = lines[0].split(None, 2)
    if len(parts) < 2:
        raise OpsInputError(f"{source}: not an OpenSSH public key (expected 'TYPE BASE64 [COMMENT]')")
    ktype, b64 = parts[0], parts[1]
    if ktype not in KEY_TYPES:
        raise OpsInputError(f"{source}: key type {ktype!r} is not accepted; use one of {', '.join(KEY_TYPES)}")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise OpsInputError(f"{source}: the key's base64 does not decode") from None
    inner = _embedded_type(blob)
    if inner != ktype:
        raise OpsInputError(f"{source}: the key says {ktype} but its data is {inner or 'not a key'}")
    return PublicKey(ktype, blob, parts[2].strip() if len(parts) > 2 else "")


def authorized_keys_add(text: str, key: PublicKey) -> tuple[str, bool]:
    """``text`` with ``key`` appended unless a line already carries it (same type and blob). -> (text, changed)"""
    if any(k is not None and k.identity == key.identity for k in map(parse_key_line, text.splitlines())):
        return text, False
    if text and not text.endswith("\n"):
        text += "\n"
    return text + key.line + "\n", True


def authorized_keys_remove(text: str, key: PublicKey) -> tuple[str, int]:
    """``text`` without the lines that carry ``key`` (any comment, any options). -> (text, lines removed)"""
    kept, removed = [], 0
    for line in text.splitlines(keepends=True):
        k = parse_key_line(line)
        if k is not None and k.identity == key.identity:
            removed += 1
        else:
            kept.append(line)
    return "".join(kept), removed


def authorized_keys_list(text: str) -> list[PublicKey]:
    return [k for k in map(parse_key_line, text.splitlines()) if k is not None]


# =============================================================================================================
# Keys on hosts


@dataclass
class KeyChange:
    path: str
    status: str  # added | present | removed | absent
    detail: str = ""


def _as_root(cluster: Cluster) -> str:
    return "" if cluster.ssh.user == "root" else "sudo -n "


def user_account(conn, user: str) -> tuple[str, str]:
    """(home, primary group) of ``user`` on the host, from ``getent passwd`` and ``id -gn``."""
    r = conn.run(f"getent passwd {shlex.quote(user)}", check=False)
    if not r.ok or not r.stdout.strip():
        raise CommandError(f"getent passwd {user}", r.exit_code, r.stdout, f"no such user {user!r} on this host",
                           host=conn.name)
    home = r.stdout.strip().split(":")[5]
    group = conn.run(f"id -gn {shlex.quote(user)}").stdout.strip()
    return home, group


def _ensure_ssh_dir(conn, home: str, user: str, group: str, sudo: str) -> str:
    d = f"{home}/.ssh"
    q = shlex.quote(d)
    conn.run(f"[ -d {q} ] || {sudo}install -d -m 700 -o {shlex.quote(user)} -g {shlex.quote(group)} {q}")
    return d


def _read_text(conn, path: str) -> str:
    data = conn.read(path)
    return "" if data is None else data.decode("utf-8", "replace")


def change_key(conn, key: PublicKey, user: str, remove: bool, sudo: str = "") -> KeyChange:
    """Add (or remove) ``key`` in ``user``'s authorized_keys on one host; the file stays 0600, owned by user."""
    home, group = user_account(conn, user)
    path = f"{home}/.ssh/authorized_keys"
    if remove:
        text, n = authorized_keys_remove(_read_text(conn, path), key)
        if not n:
            return KeyChange(path, "absent")
        conn.write(path, text.encode(), mode=0o600, owner=user, group=group)
        return KeyChange(path, "removed", f"{n} line(s)")
    _ensure_ssh_dir(conn, home, user, group, sudo)
    text, changed = authorized_keys_add(_read_text(conn, path), key)
    if not changed:
        return KeyChange(path, "present")
    conn.write(path, text.encode(), mode=0o600, owner=user, group=group)
    return KeyChange(path, "added")


def keys_apply(ssh, hosts: list[Host], key: PublicKey, user: str, remove: bool = False, on_done=None):
    """``change_key`` on every host in parallel. -> GroupResult[KeyChange]"""
    sudo = _as_root(ssh.cluster)
    return ssh.run_all(hosts, lambda c: change_key(c, key, user, remove, sudo), on_done=on_done)


def keys_list(ssh, hosts: list[Host], user: str, on_done=None):
    """The keys in ``user``'s authorized_keys on every host. -> GroupResult[list[PublicKey]]"""

    def one(conn) -> list[PublicKey]:
        home, _ = user_account(conn, user)
        return authorized_keys_list(_read_text(conn, f"{home}/.ssh/authorized_keys"))

    return ssh.run_all(hosts, one, on_done=on_done)


# =============================================================================================================
# SSH config (pure)


def _jump(cluster: Cluster) -> tuple[str | None, str, int | None] | None:
    """(user, host, port) of ssh.proxy_jump, or None."""
    pj = cluster.ssh.proxy_jump
    if not pj:
        return None
    user, _, hostport = pj.rpartition("@")
    host, _, port = hostport.partition(":")
    return user or None, host, int(port) if port else None


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
    jump = _jump(cluster)
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


# =============================================================================================================
# SSH mesh


MESH_KEY = "mesh_ed25519"


def mesh_key(cluster_file: Path, cluster: Cluster) -> tuple[bytes, str]:
    """The cluster's mesh key pair, generated once beside the cluster file (``.slurmkit/mesh_ed25519``, 0600).
    -> (private key bytes, public key line)."""
    d = Path(cluster_file).expanduser().resolve().parent / ".slurmkit"
    path = d / MESH_KEY
    if not path.exists():
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{MESH_KEY}.tmp"
        for p in (tmp, tmp.with_suffix(".tmp.pub")):
            p.unlink(missing_ok=True)
        r = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"slurmkit-mesh-{cluster.cluster}",
                            "-f", str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            raise CommandError("ssh-keygen", r.returncode, r.stdout, r.stderr)
        os.chmod(tmp, 0o600)
        os.replace(tmp.with_suffix(".tmp.pub"), path.with_suffix(".pub"))
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path.read_bytes(), path.with_suffix(".pub").read_text().strip()


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
    changes: list[str] = field(default_factory=list)


def _collect_host_keys(conn, sudo: str) -> HostKeys:
    keys, addrs = parse_host_keys(conn.run(HOST_KEYS_SCRIPT.replace("SUDO ", sudo)).stdout)
    if not keys:
        raise CommandError("read sshd host keys", None, "", "no host key found (sshd -T, /etc/ssh)", host=conn.name)
    return HostKeys([conn.host.name, conn.host.address, *addrs], keys)


def _install_mesh(conn, user: str, private: bytes, public: str, kh_lines: list[str], sudo: str) -> MeshChange:
    home, group = user_account(conn, user)
    d = _ensure_ssh_dir(conn, home, user, group, sudo)
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
    if _read_text(conn, f"{d}/id_ed25519.pub").strip() != public:
        conn.write(f"{d}/id_ed25519.pub", (public + "\n").encode(), mode=0o644, owner=user, group=group)
        out.changes.append("installed id_ed25519.pub")
    text, changed = authorized_keys_add(_read_text(conn, f"{d}/authorized_keys"), read_public_key(public, "mesh key"))
    if changed:
        conn.write(f"{d}/authorized_keys", text.encode(), mode=0o600, owner=user, group=group)
        out.changes.append("authorized the mesh key")
    text, changed = merge_known_hosts(_read_text(conn, f"{d}/known_hosts"), kh_lines)
    if changed:
        conn.write(f"{d}/known_hosts", text.encode(), mode=0o644, owner=user, group=group)
        out.changes.append(f"known_hosts: {len(kh_lines)} host key line(s)")
    return out


def mesh(ssh, cluster_file: Path, user: str, on_done=None):
    """Passwordless SSH between all hosts for ``user``: the cluster's mesh key as ~/.ssh/id_ed25519 (a different
    existing key is kept as a backup), its public key in authorized_keys, and known_hosts filled from every host's
    real sshd host keys under all its names and addresses. -> (GroupResult[HostKeys], GroupResult[MeshChange])"""
    cluster = ssh.cluster
    sudo = _as_root(cluster)
    private, public = mesh_key(cluster_file, cluster)
    hosts = cluster.hosts()
    keys = ssh.run_all(hosts, lambda c: _collect_host_keys(c, sudo))
    lines = known_hosts_lines({h: r.value for h, r in keys.succeeded.items()})
    reachable = [h for h in hosts if h.name in keys.succeeded]
    done = ssh.run_all(reachable, lambda c: _install_mesh(c, user, private, public, lines, sudo), on_done=on_done)
    return keys, done


# =============================================================================================================
# Sync (rsync through the jump host)


@dataclass
class SyncResult:
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
    jump = _jump(cluster)
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


# =============================================================================================================
# Scrubbing (pure)

REDACTED = "[REDACTED]"
#: (name, pattern, replacement). Applied in order to every text that goes into a support bundle.
SECRET_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    ("private key block", re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
                                     re.S), "[REDACTED KEY MATERIAL]"),
    ("putty private key", re.compile(r"PuTTY-User-Key-File-\d:.*?(?:Private-MAC:[^\n]*|\Z)", re.S),
     "[REDACTED KEY MATERIAL]"),
    ("credentials in a URL", re.compile(r"(?P<keep>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)", re.I),
     r"\g<keep>" + REDACTED),
    ("bearer token", re.compile(r"(?P<keep>\b(?:Bearer|token)\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<keep>" + REDACTED),
    ("key=value secret", re.compile(
        r"(?P<keep>\b[\w.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|credentials?|"
        r"StoragePass)\b\"?\s*[:=]\s*)(?P<q>[\"']?)(?!\[REDACTED)[^\s\"',;]+", re.I), r"\g<keep>\g<q>" + REDACTED),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), REDACTED),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), REDACTED),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), REDACTED),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"), REDACTED),
]


def scrub(text: str, munge_key: bytes | None = None) -> str:
    """``text`` with every SECRET_PATTERNS match replaced; a text holding the munge key is replaced whole."""
    if munge_key and (munge_key.decode("latin-1") in text or base64.b64encode(munge_key).decode() in text):
        return "[REDACTED: this text contained the cluster's munge key]\n"
    for _, pattern, repl in SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


# =============================================================================================================
# Support bundle: evidence (data), classification (pure), collection (remote), writing


@dataclass
class Finding:
    severity: int
    title: str
    evidence: list[str]
    hosts: list[str] = field(default_factory=list)


@dataclass
class HostEvidence:
    """What the bundle saw on one host. ``daemons``: name -> running; ``etc_slurm``: file -> text (None absent)."""

    host: str
    role: str
    error: str | None = None
    daemons: dict[str, bool] = field(default_factory=dict)
    etc_slurm: dict[str, str | None] = field(default_factory=dict)
    ib_active: int | None = None  # InfiniBand ports ACTIVE (None: no ibstat)
    ib_ports: list[str] = field(default_factory=list)  # "mlx5_0/1 DOWN" for evidence


@dataclass
class SlurmEvidence:
    """Slurm's view from the first head: ``scontrol ping`` text and controllers, nodes (None when unknown)."""

    ping_text: str = ""
    controllers: list = field(default_factory=list)
    nodes: list | None = None
    error: str | None = None


_BAD_NODE = {"DOWN", "FAIL", "FAILING", "NOT_RESPONDING", "INVAL", "UNKNOWN", "FUTURE", "POWERED_DOWN",
             "POWERING_DOWN", "REBOOT_REQUESTED", "REBOOT_ISSUED"}
_MAINT = re.compile(r"maint", re.I)


def _words(node) -> set[str]:
    return {node.state, *node.flags}


def classify(cluster: Cluster, slurm: SlurmEvidence, hosts: dict[str, HostEvidence], rendered: dict[str, str],
             bench: dict | None = None) -> list[Finding]:
    """The findings of a support bundle, by the rules in this module's docstring; most severe first."""
    out: list[Finding] = []
    primary = cluster.head_names[0]
    ph = hosts.get(primary)
    computes = cluster.compute_names
    # --- controllers
    if ph is not None and ph.error:
        out.append(Finding(1, "controller down: the first head cannot be reached", [f"{primary}: {ph.error}"], [primary]))
    else:
        up = [c for c in slurm.controllers if c.up]
        ev = [ln for ln in slurm.ping_text.splitlines() if ln.strip()] or ([slurm.error] if slurm.error else [])
        for h in cluster.head_names:
            e = hosts.get(h)
            if e and not e.error and e.daemons.get("slurmctld") is False:
                ev.append(f"{h}: slurmctld is not running")
        if not up:
            out.append(Finding(1, "controller down: no slurmctld answers", ev or ["scontrol ping printed nothing"],
                               cluster.head_names))
        elif not any(c.primary for c in up):
            out.append(Finding(2, "primary controller down; a backup has taken over", ev, [primary]))
        else:
            down_backups = [c.host for c in slurm.controllers if not c.up]
            if down_backups:
                out.append(Finding(2, "backup controller down", ev, down_backups))
    # --- compute nodes
    nodes = {n.name: n for n in (slurm.nodes or [])}
    usable, down, drained = [], {}, {}
    for name in computes:
        e = hosts.get(name)
        why = []
        if e is None or e.error:
            why.append(f"unreachable over SSH: {e.error if e else 'not collected'}")
        elif e.daemons.get("slurmd") is False:
            why.append("slurmd is not running on the host")
        n = nodes.get(name)
        if n is not None:
            bad = sorted(_words(n) & _BAD_NODE)
            if bad:
                why.append(f"Slurm reports {n.state_text}" + (f" (reason: {n.reason})" if n.reason else ""))
            if "DRAIN" in n.flags or n.state in ("DRAIN", "DRAINED", "DRAINING"):
                drained[name] = n
        if why:
            down[name] = why
        elif name not in drained and (slurm.nodes is None or n is not None):
            usable.append(name)
    if computes and not usable:
        ev = [f"{n}: {'; '.join(w)}" for n, w in down.items()] + \
             [f"{n}: drained (reason: {d.reason or 'none'})" for n, d in drained.items() if n not in down]
        out.append(Finding(1, "no compute node usable", ev or ["Slurm reports no usable node"], computes))
    if down:
        out.append(Finding(2, f"{len(down)} compute node(s) down",
                           [f"{n}: {'; '.join(w)}" for n, w in down.items()], list(down)))
    only_drained = {n: d for n, d in drained.items() if n not in down}
    if only_drained:
        ev = [f"{n}: {d.state_text} (reason: {d.reason or 'none'})" for n, d in only_drained.items()]
        if len(drained) == 1 and _MAINT.search(next(iter(drained.values())).reason or ""):
            out.append(Finding(3, "one node drained for maintenance", ev, list(only_drained)))
        else:
            out.append(Finding(2, f"{len(only_drained)} node(s) drained", ev, list(only_drained)))
    # --- munge, rails
    no_munge = [h for h, e in hosts.items() if not e.error and e.daemons.get("munged") is False]
    if no_munge:
        out.append(Finding(2, "munged not running (Slurm authentication fails there)",
                           [f"{h}: munged is not running" for h in no_munge], no_munge))
    rail_ev, rail_hosts = [], []
    for name in computes:
        e = hosts.get(name)
        rails = cluster.group_of(name).rails
        if e and not e.error and rails and e.ib_active is not None and e.ib_active < rails:
            rail_ev.append(f"{name}: {e.ib_active} of {rails} rails ACTIVE ({', '.join(e.ib_ports)})")
            rail_hosts.append(name)
    if rail_hosts:
        out.append(Finding(2, "InfiniBand rail down", rail_ev, rail_hosts))
    # --- bench
    if bench is not None:
        verdict = bench.get("verdict") or {}
        if verdict and verdict.get("passed") is False:
            out.append(Finding(2, f"bench failing (run {bench.get('id', '?')})",
                               [str(r) for r in verdict.get("reasons", [])] or [str(verdict.get("summary", ""))],
                               list(bench.get("nodes", []))))
    # --- config drift
    drift_ev, drift_hosts = [], []
    for h, e in hosts.items():
        if e.error:
            continue
        for fname, want in rendered.items():
            have = e.etc_slurm.get(fname)
            if fname in e.etc_slurm and have != want:
                if have is None:
                    drift_ev.append(f"{h}: /etc/slurm/{fname} is missing")
                else:
                    diff = [ln for ln in difflib.unified_diff(want.splitlines(), have.splitlines(), "rendered",
                                                              f"{h}:/etc/slurm/{fname}", lineterm="", n=0)
                            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
                    drift_ev.append(f"{h}: /etc/slurm/{fname} differs from the rendered one: " + " | ".join(diff[:4]))
                drift_hosts.append(h)
    if drift_ev:
        out.append(Finding(3, "config drift", drift_ev, sorted(set(drift_hosts))))
    out.sort(key=lambda f: f.severity)
    return out


def summary_text(cluster: str, findings: list[Finding], when: str) -> str:
    """SUMMARY.txt: the overall severity, then each finding with its evidence."""
    top = min((f.severity for f in findings), default=None)
    lines = [f"slurmkit support bundle: cluster {cluster}, {when}",
             f"Overall: Severity {top}" if top else "Overall: no incident found", ""]
    for f in findings:
        lines.append(f"[Severity {f.severity}] {f.title}" + (f" ({', '.join(f.hosts)})" if f.hosts else ""))
        lines += [f"    - {e}" for e in f.evidence]
    return "\n".join(lines) + "\n"


DAEMONS = {"head": ("slurmctld", "munge"), "compute": ("slurmd", "munge")}
SLURM_CONF_FILES = ("slurm.conf", "gres.conf", "cgroup.conf", "topology.conf")
LOG_LINES = 200


def _collect_host(conn, role: str) -> tuple[HostEvidence, dict[str, str]]:
    """One host's evidence and its files for the bundle (name -> text). Never reads a key."""
    from slurmkit.provision import service_running

    ev = HostEvidence(conn.name, role)
    files: dict[str, str] = {}
    for d in DAEMONS[role]:
        ev.daemons["munged" if d == "munge" else d] = service_running(conn, d)
    files["daemons.txt"] = "".join(f"{d}: {'running' if up else 'NOT running'}\n" for d, up in ev.daemons.items())
    logs = conn.run("ls -1 /var/log/slurm/*.log /var/log/munge/munged.log 2>/dev/null", check=False).stdout.split()
    for path in logs:
        files[f"logs/{path.strip('/').replace('/', '_')}"] = conn.run(f"tail -n {LOG_LINES} {shlex.quote(path)}",
                                                                      check=False).stdout
    for name in SLURM_CONF_FILES:
        data = conn.read(f"/etc/slurm/{name}")
        ev.etc_slurm[name] = None if data is None else data.decode("utf-8", "replace")
        if data is not None:
            files[f"etc-slurm/{name}"] = ev.etc_slurm[name]
    files["dmesg-tail.txt"] = conn.run("dmesg -T 2>&1 | tail -n 200", check=False).stdout
    for tool, cmd in (("nvidia-smi", "nvidia-smi -q"), ("ibstat", "ibstat")):
        if conn.run(f"command -v {tool}", check=False).ok:
            r = conn.run(cmd, check=False, timeout=120)
            files[f"{tool}.txt"] = r.stdout + (f"\n[exit {r.exit_code}] {r.stderr}" if not r.ok else "")
            if tool == "ibstat" and r.ok:
                from slurmkit.facts.ib import parse_ibstat

                ports = [(d.name, p) for d in parse_ibstat(r.stdout).devices for p in d.ports
                         if (p.link_layer or "InfiniBand").lower() == "infiniband"]
                ev.ib_active = sum(1 for _, p in ports if p.state == "ACTIVE")
                ev.ib_ports = [f"{d}/{p.number} {p.state}" for d, p in ports]
    return ev, files


SLURM_COMMANDS = {
    "scontrol-ping.txt": "scontrol ping",
    "sinfo.txt": "sinfo",
    "sinfo-nodes.txt": "sinfo -N -l",
    "squeue.txt": "squeue",
    "scontrol-show-node.txt": "scontrol show node",
    "scontrol-show-node-oneliner.txt": "scontrol -o show node",
    "scontrol-show-partition.txt": "scontrol show partition",
}


def _collect_slurm(conn) -> tuple[SlurmEvidence, dict[str, str]]:
    from slurmkit.provision import SLURM
    from slurmkit.slurm.parsers import parse_scontrol_nodes, parse_scontrol_ping

    files, results = {}, {}
    for name, cmd in SLURM_COMMANDS.items():
        if name not in ("scontrol-ping.txt", "sinfo.txt") and not any(c.up for c in parse_scontrol_ping(
                results["scontrol-ping.txt"].stdout)):
            # No controller answers: each further command would only wait out its own timeout.
            files[name] = f"$ {cmd}\n(not run: no slurmctld answers `scontrol ping`)\n"
            continue
        r = conn.run(f"{SLURM} {cmd}", check=False, timeout=90)
        results[name] = r
        files[name] = f"$ {cmd}\n{r.stdout}{r.stderr}" + (f"[exit {r.exit_code}]\n" if not r.ok else "")
    ping = results["scontrol-ping.txt"]
    ev = SlurmEvidence(ping_text=ping.stdout + ping.stderr, controllers=parse_scontrol_ping(ping.stdout))
    nodes = results.get("scontrol-show-node-oneliner.txt")
    if nodes is not None and nodes.ok:
        ev.nodes = parse_scontrol_nodes(nodes.stdout)
    else:
        ev.error = (nodes.stderr or nodes.stdout).strip() if nodes is not None else "no slurmctld answers"
    return ev, files


@dataclass
class Bundle:
    path: Path
    findings: list[Finding]
    host_errors: dict[str, str]
    members: list[str]

    @property
    def severity(self) -> int | None:
        return min((f.severity for f in self.findings), default=None)


def latest_bench(directory: Path) -> tuple[Path, dict] | None:
    """The newest saved bench run (meta.json) under ``directory``, or None."""
    if not directory.is_dir():
        return None
    metas = sorted(directory.glob("**/meta.json"), key=lambda p: p.parent.name)
    if not metas:
        return None
    try:
        return metas[-1], json.loads(metas[-1].read_text())
    except (OSError, ValueError):
        return None


def support_bundle(ssh, cluster_file: Path, output: Path | None = None, bench_dir: Path | None = None,
                   on_done=None) -> Bundle:
    """Collect, scrub, classify and write the support bundle (a .tar.gz). Unreachable hosts become findings."""
    from slurmkit.facts_cache import facts_dir, hardware_source
    from slurmkit.remote import error_summary
    from slurmkit.render import render_cluster

    cluster: Cluster = ssh.cluster
    cluster_file = Path(cluster_file).expanduser().resolve()
    base = cluster_file.parent
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    top = f"slurmkit-support-{cluster.cluster}-{stamp}"
    output = Path(output) if output else Path(f"{top}.tar.gz")
    munge_path = base / ".slurmkit" / "munge.key"
    munge_key = munge_path.read_bytes() if munge_path.is_file() else None
    members: dict[str, str] = {}

    members["cluster.yaml"] = cluster_file.read_text()
    try:
        rendered = render_cluster(cluster, hardware_source(cluster, cluster_file)).files
    except SlurmkitError as exc:
        rendered = {}
        members["rendered/ERROR.txt"] = str(exc)
    for name, text in rendered.items():
        members[f"rendered/{name}"] = text

    hosts = cluster.hosts()
    roles = {h.name: h.role for h in hosts}
    collected = ssh.run_all(hosts, lambda c: _collect_host(c, roles[c.name]), on_done=on_done)
    evidence: dict[str, HostEvidence] = {}
    host_errors: dict[str, str] = {}
    for name, r in collected.results.items():
        if r.ok:
            evidence[name], files = r.value
            for fname, text in files.items():
                members[f"hosts/{name}/{fname}"] = text
        else:
            host_errors[name] = error_summary(r.error)
            evidence[name] = HostEvidence(name, roles[name], error=host_errors[name])
            members[f"hosts/{name}/ERROR.txt"] = host_errors[name] + "\n"
    primary = next(h for h in hosts if h.name == cluster.head_names[0])
    slurm = SlurmEvidence(error="the first head could not be reached")
    if primary.name not in host_errors:
        sr = ssh.run_all([primary], _collect_slurm)
        r = sr.results[primary.name]
        if r.ok:
            slurm, files = r.value
            for fname, text in files.items():
                members[f"slurm/{fname}"] = text
        else:
            slurm = SlurmEvidence(error=error_summary(r.error))
            members["slurm/ERROR.txt"] = slurm.error + "\n"
    fd = facts_dir(cluster_file)
    if fd.is_dir():
        for p in sorted(fd.glob("*.json")):
            members[f"facts/{p.name}"] = p.read_text()
    bench = latest_bench(Path(bench_dir) if bench_dir else base / ".slurmkit" / "bench")
    bench_meta = None
    if bench:
        meta_path, bench_meta = bench
        bench_meta.setdefault("id", meta_path.parent.name)
        members[f"bench/{meta_path.parent.name}/meta.json"] = meta_path.read_text()
    findings = classify(cluster, slurm, evidence, rendered, bench_meta)
    when = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    summary = {
        "cluster": cluster.cluster, "time": now.isoformat(timespec="seconds"),
        "severity": min((f.severity for f in findings), default=None),
        "findings": [asdict(f) for f in findings], "unreachable": host_errors,
    }
    members["summary.json"] = json.dumps(summary, indent=1) + "\n"
    members["SUMMARY.txt"] = summary_text(cluster.cluster, findings, when)
    scrubbed = {name: scrub(text, munge_key) for name, text in members.items()}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, text in scrubbed.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o644
            tar.addfile(info, io.BytesIO(data))
    os.chmod(tmp, 0o600)
    os.replace(tmp, output)
    return Bundle(output, findings, host_errors, sorted(scrubbed))
