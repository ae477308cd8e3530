"""What the operator workflows share: their input error, the sudo prefix, a user's account and ~/.ssh on a host
(through a :class:`slurmkit.remote.Conn`), and the jump host named by ``ssh.proxy_jump``."""

from __future__ import annotations

import shlex

from slurmkit.cluster import Cluster
from slurmkit.errors import CommandError, SlurmkitError


class OpsInputError(SlurmkitError):
    """Bad input to an operator command (a key file, a host list, a path): exit 2, nothing was changed."""

    exit_code = 2


def sudo_prefix(cluster: Cluster) -> str:
    """What to put before a command that needs root on the cluster's hosts: nothing as root, else ``sudo -n``."""
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


def ensure_ssh_dir(conn, home: str, user: str, group: str, sudo: str) -> str:
    """``home``/.ssh, created 0700 and owned by ``user``:``group`` when it is missing. -> its path"""
    d = f"{home}/.ssh"
    q = shlex.quote(d)
    conn.run(f"[ -d {q} ] || {sudo}install -d -m 700 -o {shlex.quote(user)} -g {shlex.quote(group)} {q}")
    return d


def read_text(conn, path: str) -> str:
    """A remote text file's contents; "" when it does not exist."""
    data = conn.read(path)
    return "" if data is None else data.decode("utf-8", "replace")


def jump_host(cluster: Cluster) -> tuple[str | None, str, int | None] | None:
    """(user, host, port) of ssh.proxy_jump, or None."""
    pj = cluster.ssh.proxy_jump
    if not pj:
        return None
    user, _, hostport = pj.rpartition("@")
    host, _, port = hostport.partition(":")
    return user or None, host, int(port) if port else None

