"""`slurmkit init --from-slurm-conf FILE` and `slurmkit init --from-head HOST`: adopt a running Slurm cluster.

The options are added to `init` by :func:`adopt_options`; `init` calls :func:`run_adopt` when one of
``--from-slurm-conf`` / ``--from-head`` is given. The configs are read by :mod:`slurmkit.slurm.conf` (from this
machine, or over SSH from the controller: $SLURM_CONF, else the file ``scontrol show config`` names as
SLURM_CONF, else /etc/slurm/slurm.conf), turned into a cluster file by :mod:`slurmkit.adopt`, checked as
`validate` would, and written with the findings and not-kept lines as comments; both are printed too. Exit 0 with
findings; exit 2 (a SlurmkitError) only when nothing usable could be read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import click

from slurmkit.errors import ConfigError, Problem, SlurmkitError
from slurmkit.slurm import commands

# Where slurm.conf usually is, and the one round trip that finds it: slurmkit.slurm.commands (the Slurm room).
FIND_CONF = commands.find_conf_shell()


def adopt_options(f: Callable) -> Callable:
    """The `init` options of adoption (``--ssh-config``, ``--user`` and ``--identity-file`` are init's own)."""
    for opt in reversed([
        click.option("--from-slurm-conf", type=click.Path(dir_okay=False), help="Adopt a running cluster from its slurm.conf (gres.conf and topology.conf beside it are read too, as Slurm reads them)."),
        click.option("--gres-conf", type=click.Path(dir_okay=False), help="With --from-slurm-conf: gres.conf, when it is not beside slurm.conf."),
        click.option("--topology-conf", type=click.Path(dir_okay=False), help="With --from-slurm-conf: topology.conf, when it is not beside slurm.conf."),
        click.option("--known-hosts", type=click.Path(dir_okay=False), help="The known_hosts file host keys are checked against (--from-head reads the head with it; default: ~/.ssh/known_hosts); kept as ssh.known_hosts."),
        click.option("--from-head", metavar="HOST", help="Adopt a running cluster from its controller over SSH: $SLURM_CONF there, else the slurm.conf `scontrol show config` names, else /etc/slurm/, with its includes, gres.conf and topology.conf."),
    ]):
        f = opt(f)
    return f


@dataclass
class Read:
    """The configs as read, and where from (for the file's header)."""

    conf: object
    gres: list | None
    switches: list | None
    sources: list[str]
    munge_key: bytes | None = None  # --from-head: the head's /etc/munge/munge.key, when it could be read
    munge_unread: str | None = None  # why it could not
    head_name: str | None = None  # --from-head: the head's `hostname -s`, the name Slurm knows it by


MUNGE_KEY = "/etc/munge/munge.key"


def read_local(slurm_conf: str, gres_conf: str | None = None, topology_conf: str | None = None) -> Read:
    """The configs from this machine; gres.conf and topology.conf default to the ones beside slurm.conf."""
    from slurmkit.slurm import conf as sc

    path = Path(slurm_conf)
    conf = sc.read_slurm_conf(path)
    sources = list(conf.files)
    gres = topo = None
    g = Path(gres_conf) if gres_conf else path.parent / "gres.conf"
    if gres_conf or g.is_file():
        gres = sc.read_gres_conf(g)
        sources.append(str(g))
    t = Path(topology_conf) if topology_conf else path.parent / "topology.conf"
    if topology_conf or t.is_file():
        topo = sc.read_topology_conf(t)
        sources.append(str(t))
    return Read(conf, gres, topo, sources)


def read_remote(run: Callable[[str], str], read: Callable[[str], bytes | None], host: str) -> Read:
    """The configs of a controller: ``run`` runs a shell command there and returns its stdout, ``read`` returns
    a file's bytes (None when missing). Includes are read from the same host."""
    from slurmkit.slurm import conf as sc

    path = run(FIND_CONF).strip()
    if not path:
        raise SlurmkitError(f"{host}: no slurm.conf found (SLURM_CONF is unset, scontrol show config names none, "
                            f"and none of {', '.join(commands.CONF_PATHS)} exists)")

    def reader(p: Path) -> str:
        data = read(str(PurePosixPath(p)))
        if data is None:
            raise FileNotFoundError(2, "No such file on " + host, str(p))
        return data.decode("utf-8", errors="replace")

    conf = sc.read_slurm_conf(PurePosixPath(path), reader)  # type: ignore[arg-type]
    conf_dir = PurePosixPath(path).parent
    sources = [f"{host}:{f}" for f in conf.files]
    gres = topo = None
    g = read(str(conf_dir / "gres.conf"))
    if g is not None:
        gres = sc.parse_gres_conf(g.decode("utf-8", errors="replace"), f"{host}:{conf_dir / 'gres.conf'}")
        sources.append(f"{host}:{conf_dir / 'gres.conf'}")
    t = read(str(conf_dir / "topology.conf"))
    if t is not None:
        topo = sc.parse_topology_conf(t.decode("utf-8", errors="replace"), f"{host}:{conf_dir / 'topology.conf'}")
        sources.append(f"{host}:{conf_dir / 'topology.conf'}")
    return Read(conf, gres, topo, sources)


def read_from_head(host: str, user: str, identity_file: str | None, ssh_config: str | None,
                   known_hosts: str | None = None) -> Read:
    """Connect to ``host`` as slurmkit connects to a head (remote.ClusterSSH) and read its configs."""
    from slurmkit.cluster import Host, parse_cluster
    from slurmkit.remote import ClusterSSH

    ssh = {"user": user}
    if identity_file:
        ssh["identity_file"] = identity_file
    if ssh_config:
        ssh["config_file"] = ssh_config
    if known_hosts:
        ssh["known_hosts"] = known_hosts
    # A cluster file of the head alone, to connect with (the compute group is a placeholder nothing connects to).
    stub = parse_cluster(
        "cluster: adopting\n" + "ssh: " + _flow(ssh) + f"\nheads: {json.dumps(host)}\nnodes: [{{names: adopt-placeholder}}]\n",
        "--from-head",
    )
    ssh_conn = ClusterSSH(stub, Path.cwd())
    try:
        conn = ssh_conn.connect(Host(host, host, "head"))
        try:
            got = read_remote(lambda cmd: conn.run(cmd, timeout=60).stdout, conn.read, host)
            got.head_name = conn.run("hostname -s", timeout=30).stdout.strip() or None
            # The cluster's own key, so that `bootstrap` keeps it rather than installing a new one everywhere
            try:
                got.munge_key = conn.read(MUNGE_KEY)
                got.munge_unread = None if got.munge_key else "no such file"
            except SlurmkitError as exc:  # not readable by this user
                got.munge_unread = str(exc).splitlines()[0][:200]
            return got
        finally:
            conn.close()
    finally:
        ssh_conn.close()


def _reach_head_as_reached(data: dict, head_name: str, reached: str) -> None:
    """The controller read over SSH is reached the way it was reached: where ``--from-head`` named it by another
    name or an address than the one slurm.conf knows it by, that is its SSH address (heads.addresses)."""
    heads = data.get("heads")
    names = (heads["names"] if isinstance(heads, dict) else heads or "").split(",")
    if reached in names or head_name not in names:
        return
    addrs = heads["addresses"].split(",") if isinstance(heads, dict) else list(names)
    addrs[names.index(head_name)] = reached
    data["heads"] = {"names": ",".join(names), "addresses": ",".join(addrs)}


def keep_munge_key(got: Read, out: Path, host: str) -> str:
    """Keep the head's munge key where `bootstrap` looks for the cluster file's (StateDir.munge_key, 0600), so
    that bootstrapping the adopted cluster does not replace the running cluster's key. Never overwrites a key
    already there. Returns the line to print."""
    from slurmkit.paths import StateDir

    path = StateDir.of(out).munge_key
    if got.munge_key is None or len(got.munge_key) < 32:
        why = got.munge_unread or f"{len(got.munge_key or b'')} bytes, shorter than munged accepts"
        return (f"munge key: not read from {host}:{MUNGE_KEY} ({why}); `bootstrap` would install a new one on every "
                f"node (munge restarted): copy the cluster's key to {path} (mode 0600) first")
    if path.exists():
        same = path.read_bytes() == got.munge_key
        return (f"munge key: {path} already holds {host}'s key" if same else
                f"munge key: {path} holds another key, left as is; `bootstrap` would install it on every node: "
                f"replace it with {host}:{MUNGE_KEY} first to keep the cluster's")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"munge.key.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(got.munge_key)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return f"munge key: {host}'s kept in {path} (0600), so that `bootstrap` keeps it"


def _flow(d: dict) -> str:
    return json.dumps(d)  # JSON is YAML flow style


def run_adopt(*, from_slurm_conf: str | None, gres_conf: str | None, topology_conf: str | None, from_head: str | None,
              ssh_config: str | None, user: str, identity_file: str | None, output: str, force: bool,
              known_hosts: str | None = None) -> None:
    """Read, adopt, check, write; print the findings and the not-kept lines."""
    from slurmkit.adopt import adopt
    from slurmkit.cluster import parse_cluster

    if bool(from_slurm_conf) == bool(from_head):
        raise click.UsageError("give one of --from-slurm-conf, --from-head")
    if (gres_conf or topology_conf) and not from_slurm_conf:
        raise click.UsageError("--gres-conf and --topology-conf go with --from-slurm-conf (--from-head reads the head's)")
    out = Path(output)
    if out.exists() and not force:
        raise ConfigError(str(out), [Problem("", "already exists; use --force to overwrite, or -o another path")])
    if from_slurm_conf:
        got = read_local(from_slurm_conf, gres_conf, topology_conf)
    else:
        got = read_from_head(from_head, user, identity_file, ssh_config, known_hosts)
    adopted = adopt(got.conf, got.gres, got.switches, ssh_user=user)
    if from_head and got.head_name:
        _reach_head_as_reached(adopted.data, got.head_name, from_head)
    if identity_file:
        adopted.data["ssh"]["identity_file"] = identity_file
    if ssh_config:
        adopted.data["ssh"]["config_file"] = ssh_config
    if known_hosts:
        adopted.data["ssh"]["known_hosts"] = known_hosts
    text = adopted.text(got.sources)
    parse_cluster(text, str(out))  # never write a file that validate would reject
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if from_head:
        click.echo(keep_munge_key(got, out, from_head))
    for f in adopted.findings:
        click.echo(f"finding: {f}")
    for n in adopted.notes:
        click.echo(f"note: {n}")
    for n in adopted.not_kept:
        click.echo(f"not kept: {n}")
    click.echo(
        f"wrote {out}: cluster {adopted.data['cluster']} adopted from {', '.join(got.sources)} "
        f"({len(adopted.findings)} finding(s), {len(adopted.not_kept)} line(s) not kept). Next: slurmkit -c {out} validate"
    )
