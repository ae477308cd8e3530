"""`slurmkit keys`, `ssh-config`, `ssh mesh`, `sync`, `support-bundle`: operator workflows. Thin: the work is in
the slurmkit.ops package, one module per workflow.

Every command that touches hosts reports per host (a table, or --json) and exits 1 when any host failed (the
others are still done), 2 for bad input (nothing is changed anywhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from slurmkit.cli.config import cluster_path, load


def _report(title: str, rows: dict[str, tuple[bool, str]], as_json: bool, extra: dict | None = None) -> int:
    """Print a per-host table (or JSON); return the exit code: 1 when any host failed."""
    failed = [h for h, (ok, _) in rows.items() if not ok]
    if as_json:
        data = {"hosts": {h: {"ok": ok, "detail": d} for h, (ok, d) in rows.items()}, "failed_hosts": failed}
        click.echo(json.dumps({**data, **(extra or {})}, indent=1))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col in ("host", "result", "detail"):
            table.add_column(col)
        for h, (ok, d) in rows.items():
            table.add_row(h, "[green]ok" if ok else "[red]failed", d if ok else f"[red]{d}")
        console = Console()
        console.print(table)
        console.print(f"{len(rows)} host(s), " + (f"FAILED on {', '.join(failed)}" if failed else "all done"),
                      highlight=False)
    return 1 if failed else 0


def _ssh(ctx):
    from slurmkit.remote import ClusterSSH

    cluster = load(ctx, check_env=True)
    return cluster, ClusterSSH(cluster, cluster_path(ctx).resolve().parent)


# ----------------------------------------------------------------------------------------------------------- keys


@click.group()
def keys():
    """Add, remove and list SSH public keys on every host (heads and computes, through the jump host)."""


def _key_options(f):
    f = click.option("--user", "-u", help="Whose ~/.ssh/authorized_keys (home from `getent passwd`); default: the "
                                          "cluster file's ssh.user.")(f)
    f = click.option("--nodes", metavar="HOSTS", help="Only these hosts (a hostlist); default: every host.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print the per-host report as JSON.")(f)
    return f


def _change(ctx, pubkey_file: str, user: str | None, nodes: str | None, as_json: bool, remove: bool) -> None:
    from slurmkit.ops import OpsInputError
    from slurmkit.ops.keys import keys_apply, read_public_key
    from slurmkit.remote import error_summary

    try:
        text = Path(pubkey_file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise OpsInputError(f"{pubkey_file}: cannot read: {exc}") from None
    key = read_public_key(text, pubkey_file)  # raises before anything is contacted
    cluster, ssh = _ssh(ctx)
    hosts = cluster.select(nodes, "--nodes")
    user = user or cluster.ssh.user
    with ssh:
        res = keys_apply(ssh, hosts, key, user, remove=remove)
    rows = {h: (True, f"{r.value.status} ({r.value.path})") if r.ok else (False, error_summary(r.error))
            for h, r in res.results.items()}
    verb = "remove" if remove else "add"
    ctx.exit(_report(f"keys {verb} {key.fingerprint} for {user}", rows, as_json,
                     {"fingerprint": key.fingerprint, "user": user}))


@keys.command("add")
@click.argument("pubkey_file", type=click.Path(exists=True, dir_okay=False))
@_key_options
@click.pass_context
def keys_add(ctx, pubkey_file, user, nodes, as_json):
    """Append PUBKEY_FILE's key to authorized_keys on every host, only where it is not there yet.

    \b
    PUBKEY_FILE must hold exactly one OpenSSH public key (ssh-ed25519, ssh-rsa, ecdsa-sha2-*, sk-*); a private
    key is refused (exit 2) and never sent. A key already present (same type and data, any comment) is left
    alone; the file stays mode 0600, owned by the user.
    """
    _change(ctx, pubkey_file, user, nodes, as_json, remove=False)


@keys.command("remove")
@click.argument("pubkey_file", type=click.Path(exists=True, dir_okay=False))
@_key_options
@click.pass_context
def keys_remove(ctx, pubkey_file, user, nodes, as_json):
    """Remove PUBKEY_FILE's key (every line carrying it, whatever its comment) from authorized_keys on every host."""
    _change(ctx, pubkey_file, user, nodes, as_json, remove=True)


@keys.command("list")
@_key_options
@click.pass_context
def keys_list(ctx, user, nodes, as_json):
    """Which hosts carry which keys in authorized_keys, by SHA256 fingerprint (as `ssh-keygen -lf` prints)."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from slurmkit import hostlist
    from slurmkit.ops.keys import keys_by_fingerprint
    from slurmkit.ops.keys import keys_list as list_keys
    from slurmkit.remote import error_summary

    cluster, ssh = _ssh(ctx)
    hosts = cluster.select(nodes, "--nodes")
    user = user or cluster.ssh.user
    with ssh:
        res = list_keys(ssh, hosts, user)
    by_fp = {fp: asdict(e) for fp, e in keys_by_fingerprint({h: r.value for h, r in res.succeeded.items()}).items()}
    errors = {h: error_summary(r.error) for h, r in res.failed.items()}
    if as_json:
        click.echo(json.dumps({"user": user, "keys": by_fp, "errors": errors, "failed_hosts": list(errors)}, indent=1))
    else:
        table = Table(title=f"authorized keys of {user}", title_justify="left")
        for col in ("fingerprint", "type", "comment", "hosts"):
            table.add_column(col)
        for fp, e in by_fp.items():
            table.add_row(fp, e["type"], ", ".join(e["comments"]), hostlist.fold(e["hosts"]))
        console = Console()
        console.print(table)
        for h, err in errors.items():
            console.print(f"[red]{h}: {err}", highlight=False)
    ctx.exit(1 if errors else 0)


# ------------------------------------------------------------------------------------------------ ssh-config, mesh


@click.command("ssh-config")
@click.option("--write", "write_path", type=click.Path(dir_okay=False), help="Write the config to PATH (mode 0600) "
              "instead of printing it.")
@click.pass_context
def ssh_config(ctx, write_path):
    """Print an OpenSSH config for the cluster: every host by name with HostName, User, IdentityFile,
    UserKnownHostsFile (when the cluster file names one) and, for compute nodes, ProxyJump through the jump
    host's own entry, so that `ssh -F FILE <node>` works. Pure: no SSH."""
    from slurmkit.ops.sshconfig import ssh_config_text

    text = ssh_config_text(load(ctx), cluster_path(ctx).resolve().parent)
    if not write_path:
        click.echo(text, nl=False)
        return
    p = Path(write_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(p)
    click.echo(f"wrote {p}. Use: ssh -F {p} <host>")


@click.group("ssh")
def ssh_group():
    """SSH between the cluster's nodes."""


@ssh_group.command("mesh")
@click.option("--user", "-u", help="The user to set up; default: the cluster file's ssh.user.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-host report as JSON.")
@click.pass_context
def mesh(ctx, user, as_json):
    """Passwordless SSH between all nodes for the cluster user.

    \b
    One cluster key pair (generated once, kept beside the cluster file in .slurmkit/mesh_ed25519, 0600) goes
    to every node's ~/.ssh/id_ed25519 (a different key already there is kept as id_ed25519.slurmkit-*.bak)
    and into authorized_keys. known_hosts on every node gets every node's real host keys (read from the
    running sshd's HostKey files), under each node's name and addresses; host key checking stays on.
    """
    from slurmkit.ops.mesh import mesh as set_up_mesh
    from slurmkit.remote import error_summary

    cluster, ssh = _ssh(ctx)
    user = user or cluster.ssh.user
    with ssh:
        keys, done = set_up_mesh(ssh, cluster_path(ctx), user)
    rows = {}
    for h in [h.name for h in cluster.hosts()]:
        if h in keys.failed:
            rows[h] = (False, "host keys: " + error_summary(keys.failed[h].error))
        elif h in done.failed:
            rows[h] = (False, error_summary(done.failed[h].error))
        else:
            rows[h] = (True, "; ".join(done.results[h].value.changes) or "up to date")
    ctx.exit(_report(f"ssh mesh for {user}", rows, as_json))


# ----------------------------------------------------------------------------------------------------------- sync


@click.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("dest")
@click.option("--nodes", metavar="HOSTS", help="Only these hosts (a hostlist); default: every host.")
@click.option("--delete", is_flag=True, help="Delete files in DEST that are not in SRC.")
@click.option("--parallel", "-p", default=8, show_default=True, type=click.IntRange(min=1),
              help="At most this many rsyncs at a time.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-host report as JSON.")
@click.pass_context
def sync(ctx, src, dest, nodes, delete, parallel, as_json):
    """rsync the directory SRC (its contents) into DEST on every node, in parallel, through the jump host.

    Each host reports files transferred and bytes (from rsync --stats); a second run transfers nothing.
    rsync must be installed on the nodes (a host without it fails alone).
    """
    from rich.progress import Progress

    from slurmkit.ops.sync import sync as rsync_all
    from slurmkit.remote import error_summary

    cluster, ssh = _ssh(ctx)
    hosts = cluster.select(nodes, "--nodes")
    with ssh, Progress(disable=as_json, transient=True) as progress:
        task = progress.add_task(f"rsync to {len(hosts)} host(s)", total=len(hosts))
        res = rsync_all(ssh, cluster_path(ctx).resolve().parent, hosts, src, dest, delete, parallel,
                       on_done=lambda h, ok: progress.advance(task))
    rows = {h: (True, f"{r.value.files} file(s), {r.value.bytes} bytes in {r.value.seconds:.1f} s") if r.ok
            else (False, error_summary(r.error)) for h, r in res.results.items()}
    extra = {"transfers": {h: {"files": r.value.files, "bytes": r.value.bytes, "itemized": r.value.itemized}
                           for h, r in res.succeeded.items()}}
    ctx.exit(_report(f"sync {src} -> {dest}", rows, as_json, extra))


# -------------------------------------------------------------------------------------------------- support bundle


@click.command("support-bundle")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The bundle to write "
              "(default: ./slurmkit-support-<cluster>-<UTC time>.tar.gz).")
@click.option("--bench-dir", type=click.Path(file_okay=False), help="Saved bench results to include the latest "
              "run of (default: .slurmkit/bench beside the cluster file, when it exists).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (summary.json) instead of the text.")
@click.pass_context
def support_bundle(ctx, output, bench_dir, as_json):
    """Collect what a support engineer asks for, scrubbed of secrets, and classify what it shows.

    \b
    In the bundle: the cluster file, rendered configs, sinfo/squeue/scontrol output from the first head, every
    host's Slurm and munge logs (tails), /etc/slurm files, dmesg tail, nvidia-smi -q and ibstat where present,
    cached node facts, the latest bench run's meta.json, SUMMARY.txt and summary.json. The munge key and
    private keys are never collected; passwords, tokens and keys are scrubbed from every text.

    \b
    Severity 1: controller down, or no compute node usable.
    Severity 2: nodes down (Slurm, slurmd stopped, unreachable) or drained, a rail down, bench failing.
    Severity 3: one node drained for maintenance; config drift (a host's /etc/slurm differs from render).

    Unreachable hosts are findings, not aborts. Exit 0 when the bundle was written and every host answered,
    1 when some host could not be collected.
    """
    from slurmkit.ops.bundle import support_bundle as write_bundle
    from slurmkit.ops.bundle_rules import summary_text

    cluster, ssh = _ssh(ctx)
    with ssh:
        b = write_bundle(ssh, cluster_path(ctx), Path(output) if output else None,
                               Path(bench_dir) if bench_dir else None)
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps({"bundle": str(b.path), "severity": b.severity,
                               "findings": [asdict(f) for f in b.findings], "unreachable": b.host_errors}, indent=1))
    else:
        click.echo(summary_text(cluster.cluster, b.findings, "now"), nl=False)
        click.echo(f"wrote {b.path} ({len(b.members)} files)")
    ctx.exit(1 if b.host_errors else 0)
