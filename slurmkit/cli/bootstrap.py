"""`slurmkit bootstrap`: make every host match the cluster file."""

from __future__ import annotations

import json

import click

from slurmkit.cli.config import cluster_path, load


@click.command()
@click.option("--dry-run", is_flag=True, help="Check only: show the diff of every file and the services it would touch; change nothing.")
@click.option("--limit", metavar="HOSTS", help="Only these hosts (a hostlist, e.g. node-[1-4],head-1).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-host report as JSON.")
@click.option("--verify-timeout", default=60.0, show_default=True, help="Seconds to wait for compute nodes to register (and for the controller to answer).")
@click.option("-v", "--verbose", is_flag=True, help="After the table, each failure's whole output and the script that ran.")
@click.pass_context
def bootstrap(ctx, dry_run, limit, as_json, verify_timeout, verbose):
    """Make every node match: munge, packages, configs, services.

    \b
    On every host (in parallel, through the jump host): Slurm and munge packages, the cluster's munge key
    (generated once, kept beside the cluster file in .slurmkit/munge.key, never printed), the rendered
    slurm.conf/gres.conf/cgroup.conf/topology.conf, munged. Heads: StateSaveLocation and slurmctld (the first
    head primary, the others backups). Compute nodes: slurmd. Each step checks before it changes, so a second
    run changes nothing. The configs are rendered for the Slurm release the nodes run (or apt would install):
    hosts whose cached facts (`slurmkit discover`) show none are asked for their Slurm version first; a line
    says when the release is a guess, and --json gives it as slurm_target.

    \b
    A changed slurm.conf is applied the cheapest correct way: `scontrol reconfigure` when that is enough
    (partitions, timeouts, ...), a restart of only the daemons that need it otherwise (nodes, plugins, ports).
    Then every compute node must register with Slurm: a node Slurm marks INVAL or DOWN, or does not list, is
    that host's failure, with Slurm's words; a controller that does not answer within --verify-timeout is the
    primary's. A run with nothing to change costs one command per host.

    A failed step's row names the step, its exit code and, for a daemon that did not come up, the daemon's
    own last error lines (its log, or its journal under systemd); --verbose and --json add the whole output
    and the script that ran.

    Exit 0 when every host converged, 1 when any host failed (the others still converge; re-run to retry).
    """
    from rich.console import Console

    from slurmkit.bootstrap import bootstrap as run_bootstrap
    from slurmkit.remote import ClusterSSH

    cluster = load(ctx, check_env=True)
    path = cluster_path(ctx)
    console = Console(stderr=True)
    # one ClusterSSH (one jump host connection) for the version probe and bootstrap's own fan-outs
    with ClusterSSH(cluster, path.expanduser().resolve().parent) as ssh:
        hardware, unread = hardware_for(cluster, path, ssh)
        target = hardware.slurm_target
        if not as_json:
            for host, err in unread.items():
                console.print(f"warning: {host}: Slurm version not read: {_summary(err)}", highlight=False, markup=False)
            if target.note:
                console.print(f"note: {target.note}", highlight=False, markup=False)
        n_hosts = len(cluster.hosts())
        done = []

        def progress(host: str, ok: bool) -> None:
            done.append(host)
            if not as_json:
                console.print(f"[{len(done)}/{n_hosts}] {host}: {'[green]done' if ok else '[red]failed'}", highlight=False)

        outcome = run_bootstrap(cluster, path, hardware, limit=limit, dry_run=dry_run,
                                on_host_done=progress, verify_timeout=verify_timeout, ssh=ssh)
    if as_json:
        click.echo(json.dumps({**outcome_json(outcome), "slurm_target": target_json(target, unread)}, indent=1))
    else:
        print_outcome(outcome, verbose=verbose)
    ctx.exit(1 if outcome.failed_hosts else 0)


def hardware_for(cluster, path, ssh=None):
    """The hardware source to render with, and the hosts whose Slurm version could not be read (host -> error).
    Hosts whose cached facts show no Slurm version (never discovered, or cached before discovery asked) are
    asked for just that first, in one fan-out, so the release rendered for is the nodes' (see
    :func:`slurmkit.bootstrap.hardware_with_versions`); a host that cannot be asked is left out of the target."""
    from slurmkit.bootstrap import collect_versions, hardware_with_versions, hosts_without_versions
    from slurmkit.hardware import cached_records, hardware_source

    records = cached_records(cluster, path)
    missing = hosts_without_versions(cluster, records)
    if not missing:
        return hardware_source(cluster, path, records), {}
    versions, unread = collect_versions(cluster, path, missing, ssh)
    return hardware_with_versions(cluster, path, records, versions), unread


def _summary(err: BaseException) -> str:
    from slurmkit.remote import error_summary

    return error_summary(err).replace("\n", " ")


def target_json(target, unread: dict) -> dict:
    """The release rendered for, for --json: release, source (nodes, pin, default), each host's version, the note,
    and the hosts whose version could not be read."""
    return {"release": target.release, "source": target.source, "note": target.note,
            "hosts": [{"host": hv.host, "version": hv.version, "source": hv.source} for hv in target.hosts],
            "unread": {h: _summary(e) for h, e in unread.items()}}


def failure_info(err: BaseException | None) -> dict:
    """What a failure's short detail leaves out: the command's whole output and the script that ran."""
    from slurmkit.errors import CommandError

    if not isinstance(err, CommandError):
        return {}
    info = {"command": err.command, "exit_code": err.exit_code_, "output": (err.stderr or err.stdout).rstrip()}
    if err.extra.get("script"):
        info["script"] = err.extra["script"]
    return info


def outcome_json(o) -> dict:
    from slurmkit.remote import error_summary

    hosts = {}
    for name, r in o.reports.items():
        hosts[name] = {
            "role": r.role, "ok": r.count("ok"), "changed": r.count("changed"), "failed": r.count("failed"),
            "steps": [{"playbook": s.step.playbook, "step": s.step.name, "status": s.status, "detail": s.detail,
                       **({"diff": s.diff} if s.diff else {}), **failure_info(s.error)} for s in r.steps],
        }
    for name, err in o.errors.items():
        hosts.setdefault(name, {})["error"] = error_summary(err)
        hosts[name].update({f"error_{k}": v for k, v in failure_info(err).items()})
    for name, why in o.node_failures.items():
        hosts.setdefault(name, {})["slurm"] = why
    return {"dry_run": o.dry_run, "hosts": hosts, "actions": o.actions, "node_states": o.node_states,
            "resumed": o.resumed, "failed_hosts": o.failed_hosts, "changed": o.changed, "seconds": round(o.seconds, 2)}


def print_outcome(o, verbose: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    from slurmkit.remote import error_summary

    from slurmkit import hostlist

    console = Console()
    if o.dry_run:
        # The same change on many hosts is shown once, with the hosts it applies to.
        diffs: dict[tuple[str, str], list[str]] = {}
        for name, r in o.reports.items():
            for s in r.steps:
                if s.diff:
                    diffs.setdefault((s.step.name, s.diff), []).append(name)
        for (step, diff), hosts in diffs.items():
            click.echo(click.style(f"=== {step} on {hostlist.fold(hosts)}", bold=True))
            click.echo(diff, nl=False)
    table = Table(title="bootstrap (dry run: nothing changed)" if o.dry_run else "bootstrap", title_justify="left")
    for col in ("host", "role", "ok", "changed", "failed", "detail"):
        table.add_column(col)
    names = sorted(set(o.reports) | set(o.errors), key=lambda n: (n not in o.reports, n))
    for name in names:
        r = o.reports.get(name)
        if name in o.errors:
            detail = f"[red]{error_summary(o.errors[name])}"
        elif r and r.failed:
            detail = "[red]" + next(f"{s.step.name}: {s.detail}" for s in r.steps if s.status == "failed")
        elif name in o.node_failures:
            detail = f"[red]{o.node_failures[name]}"
        else:
            changes = [s.step.name for s in r.steps if s.status == "changed"] if r else []
            detail = ("changed: " + ", ".join(changes)) if changes else "up to date"
        failed = (r.count("failed") if r else 0) + (1 if name in o.errors or name in o.node_failures else 0)
        table.add_row(name, r.role if r else "?", str(r.count("ok") if r else 0), str(r.count("changed") if r else 0),
                      str(failed), detail)
    console.print(table)
    for a in o.actions:
        console.print(f"- {a}", highlight=False)
    for n in o.resumed:
        console.print(f"- resumed {n} (left down by an earlier configuration)", highlight=False)
    if verbose:
        failures = [(n, f"{s.step.name}", s.error) for n, r in o.reports.items() for s in r.steps if s.status == "failed"]
        failures += [(n, "connect and run", e) for n, e in o.errors.items()]
        for name, what, err in failures:
            info = failure_info(err)
            click.echo(click.style(f"=== {name}: {what}: `{info.get('command', '')}` exit {info.get('exit_code')}", bold=True))
            click.echo(info.get("output") or str(err))
            if info.get("script"):
                click.echo(click.style("--- the script that ran", bold=True))
                click.echo(info["script"])
    state = "FAILED on " + ", ".join(o.failed_hosts) if o.failed_hosts else "converged"
    console.print(f"{len(names)} host(s), {o.changed} change(s), {state} in {o.seconds:.1f} s", highlight=False)
