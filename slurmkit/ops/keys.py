"""Public keys: parse key lines and key files, edit authorized_keys (pure), and add, remove or list a key on
every host through :class:`slurmkit.remote.ClusterSSH` (parallel, one result per host)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Mapping

from slurmkit.cluster import Host
from slurmkit.ops._common import OpsInputError, ensure_ssh_dir, read_text, sudo_prefix, user_account


KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)
_KEY_IN_LINE = re.compile(r"(?:^|\s)(?P<type>" + "|".join(re.escape(t) for t in KEY_TYPES) +
                          r")\s+(?P<blob>[A-Za-z0-9+/]+={0,2})(?:\s+(?P<comment>.*))?$")
_PRIVATE_MARKERS = ("PRIVATE KEY-----", "PuTTY-User-Key-File", "SSH PRIVATE KEY FILE FORMAT")


@dataclass(frozen=True)
class PublicKey:
    """An OpenSSH public key: type (``ssh-ed25519``...), the decoded blob, the comment."""

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


@dataclass
class KeyChange:
    """What ``change_key`` did to one host's authorized_keys."""

    path: str
    status: str  # added | present | removed | absent
    detail: str = ""


def change_key(conn, key: PublicKey, user: str, remove: bool, sudo: str = "") -> KeyChange:
    """Add (or remove) ``key`` in ``user``'s authorized_keys on one host; the file stays 0600, owned by user."""
    home, group = user_account(conn, user)
    path = f"{home}/.ssh/authorized_keys"
    if remove:
        text, n = authorized_keys_remove(read_text(conn, path), key)
        if not n:
            return KeyChange(path, "absent")
        conn.write(path, text.encode(), mode=0o600, owner=user, group=group)
        return KeyChange(path, "removed", f"{n} line(s)")
    ensure_ssh_dir(conn, home, user, group, sudo)
    text, changed = authorized_keys_add(read_text(conn, path), key)
    if not changed:
        return KeyChange(path, "present")
    conn.write(path, text.encode(), mode=0o600, owner=user, group=group)
    return KeyChange(path, "added")


def keys_apply(ssh, hosts: list[Host], key: PublicKey, user: str, remove: bool = False, on_done=None):
    """``change_key`` on every host in parallel. -> GroupResult[KeyChange]"""
    sudo = sudo_prefix(ssh.cluster)
    return ssh.run_all(hosts, lambda c: change_key(c, key, user, remove, sudo), on_done=on_done)


@dataclass
class KeyHolders:
    """One key as ``keys list`` shows it: its type, the comments it carries somewhere, the hosts that hold it."""

    type: str
    comments: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


def keys_by_fingerprint(found: Mapping[str, list[PublicKey]]) -> dict[str, KeyHolders]:
    """Host -> its keys, turned into fingerprint -> who holds the key (in the order first seen; each comment and
    host once)."""
    out: dict[str, KeyHolders] = {}
    for host, keys in found.items():
        for k in keys:
            e = out.setdefault(k.fingerprint, KeyHolders(k.type))
            if k.comment and k.comment not in e.comments:
                e.comments.append(k.comment)
            if host not in e.hosts:
                e.hosts.append(host)
    return out


def keys_list(ssh, hosts: list[Host], user: str, on_done=None):
    """The keys in ``user``'s authorized_keys on every host. -> GroupResult[list[PublicKey]]"""

    def one(conn) -> list[PublicKey]:
        home, _ = user_account(conn, user)
        return authorized_keys_list(read_text(conn, f"{home}/.ssh/authorized_keys"))

    return ssh.run_all(hosts, one, on_done=on_done)

