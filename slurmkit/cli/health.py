"""`slurmkit health`: run the node checks now over SSH on every compute, drain what fails, resume what slurmkit
drained once it is clean again; `slurmkit health history` shows the kept runs.

The check program (:mod:`slurmkit.health.check_node`) goes to each node as the stdin of ``python3 -`` with that
node's expected values (:mod:`slurmkit.health.expected`); the decisions are :mod:`slurmkit.health.policy`'s;
drain and resume go through :mod:`slurmkit.slurm.commands` on the first reachable head. State and history are
kept in ``.slurmkit/health/`` beside the cluster file.

Exit codes: 0 every checked node passed, 1 a node failed a check or could not be checked, 2 bad input.
"""

from __future__ import annotations

import json
import secrets
import shlex
import time
from pathlib import Path

import click

from slurmkit.cli.config import cluster_path, load

CHECK_TIMEOUT = 120  # seconds for the whole check program on one node (each tool in it has its own 20 s)


def health_dir(cluster_file: Path) -> Path:
    from slurmkit.paths import StateDir

    return StateDir.of(cluster_file).health_dir


def _head_token(runner, shared_dir: str) -> tuple[str | None, str]:
    """The shared dir's token as the head sees it, written there once if missing: (token, "") or (None, why)."""
    from slurmkit.health.expected import TOKEN_FILE

    f = shlex.quote(f"{shared_dir.rstrip('/')}/{TOKEN_FILE}")
    new = secrets.token_hex(16)
    script = (f"[ -s {f} ] || {{ printf '%s\\n' {new} > {f}.tmp && mv {f}.tmp {f}; }}; cat {f}")
    r = runner(["sh", "-c", script], None)
    token = (r.stdout or "").strip()
    if r.returncode != 0 or not token:
        return None, (r.stderr or r.stdout or f"exit {r.returncode}").strip()[-200:]
    return token, ""


def _check_one(program: str, expected: dict):
    def fn(conn) -> dict:
        from slurmkit.errors import CommandError

        res = conn.run(f"python3 - {shlex.quote(json.dumps(expected))}", check=False, input=program,
                       timeout=CHECK_TIMEOUT)
        try:
            out = json.loads(res.stdout)
        except ValueError:
            out = None
        if res.exit_code != 0 or not isinstance(out, dict) or "checks" not in out:
            raise CommandError("python3 - (slurmkit node checks)", res.exit_code, res.stdout, res.stderr,
                               host=conn.name)
        return out

    return fn


def _error_text(exc: BaseException) -> str:
    from slurmkit.remote import UnreachableError, error_summary

    if isinstance(exc, UnreachableError):
        return f"unreachable: {exc.reason}"
    return error_summary(exc, lines=2)


def run_health(cluster, cfile: Path, limit: str | None, fail_after: int, resume_after: int, no_drain: bool) -> dict:
    """Check the computes now, decide and act; returns the report (also appended to the history)."""
    from slurmkit.health import program_text
    from slurmkit.health.expected import expected_values
    from slurmkit.health.policy import Store, decide
    from slurmkit.remote import ClusterSSH, HeadRunner
    from slurmkit.slurm import commands

    hosts = [h for h in cluster.select(limit) if h.role == "compute"]
    if not hosts:
        raise click.UsageError("no compute node selected (--limit names heads only?)")
    base = cfile.resolve().parent
    head = HeadRunner(cluster, base)
    notes: list[str] = []
    try:
        token = None
        if cluster.shared_dir:
            try:
                token, why = _head_token(head, cluster.shared_dir)
            except Exception as exc:  # the head unreachable: the mount check then only asks for the directory
                token, why = None, _error_text(exc)
            if token is None:
                notes.append(f"no shared-dir token from the head ({why}): mount checked for the directory only")
        expected = expected_values(cluster, cfile, [h.name for h in hosts], token)
        program = program_text()
        with ClusterSSH(cluster, base) as ssh:
            group = ssh.run_all(hosts, lambda conn: _check_one(program, expected[conn.name])(conn))
        try:
            slurm_nodes = {n.name: n for n in commands.show_nodes(head)}
            slurm_error = None
        except Exception as exc:
            slurm_nodes, slurm_error = {}, _error_text(exc)
            notes.append(f"no node states from Slurm ({slurm_error}): nothing drained or resumed")
        store = Store(health_dir(cfile))
        states = store.load()
        rows: dict[str, dict] = {}
        for h in hosts:
            r = group.results.get(h.name)
            result = r.value if r is not None and r.ok else None
            node = slurm_nodes.get(h.name)
            drained = bool(node and node.is_drained)
            reason = node.reason if node else None
            decision, new_state = decide(h.name, result, states.get(h.name) or _fresh(), drained, reason,
                                         fail_after, resume_after)
            row = {
                "ok": decision.ok,
                "checks": result["checks"] if result else [],
                "failing": decision.failing,
                "error": _error_text(r.error) if r is not None and r.error is not None else None,
                "slurm_state": node.state_text if node else None,
                "slurm_reason": reason or None,
                "action": "none",
                "why": decision.why,
            }
            if slurm_error is None and node is None and decision.action != "none":
                row["why"] = "not a Slurm node"
            elif slurm_error is None and decision.action != "none":
                if no_drain:
                    row["why"] = f"would {decision.action} (--no-drain)"
                else:
                    try:
                        if decision.action == "drain":
                            commands.drain(head, [h.name], decision.reason)
                            row["action"], row["slurm_reason"] = "drained", decision.reason
                        elif commands.resume(head, [h.name]):
                            row["action"], row["slurm_reason"] = "resumed", None
                        else:
                            row["why"] = "Slurm refused the resume"
                    except Exception as exc:
                        row["why"] = f"{decision.action} failed: {_error_text(exc)}"
            if decision.action == "drain" and row["action"] != "drained":
                new_state.fails -= 1  # not drained after all: the next failing run tries again
            if decision.action == "resume" and row["action"] != "resumed":
                new_state.cleans -= 1
            if result is not None:
                states[h.name] = new_state
            rows[h.name] = row
        store.save(states)
    finally:
        head.close()
    report = {
        "time": time.time(),
        "fail_after": fail_after,
        "resume_after": resume_after,
        "nodes": rows,
        "failed": [n for n, row in rows.items() if row["ok"] is not True],
        "notes": notes,
    }
    store.append({**report, "nodes": {n: {k: v for k, v in row.items() if k != "checks"} for n, row in rows.items()}})
    return report


def _fresh():
    from slurmkit.health.policy import NodeState

    return NodeState()


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="health", title_justify="left")
    for col in ("node", "result", "failing checks", "slurm", "action"):
        table.add_column(col)
    for name, row in report["nodes"].items():
        if row["ok"] is None:
            result, failing = "[red]not checked", escape(row["error"] or "")
        elif row["ok"]:
            result, failing = "[green]ok", ""
        else:
            result = "[red]FAIL"
            failing = "\n".join(escape(f"{c['id']}: {c['message']}") for c in row["failing"])
        slurm = escape(row["slurm_state"] or "?") + (f"\n{escape(row['slurm_reason'])}" if row["slurm_reason"] else "")
        action = row["action"] + (f" ({escape(row['why'])})" if row["why"] else "")
        table.add_row(name, result, failing, slurm, action)
    console = Console()
    console.print(table)
    for note in report["notes"]:
        console.print(f"note: {escape(note)}", highlight=False)
    failed = report["failed"]
    console.print(f"{len(report['nodes'])} node(s), " + (f"FAILED: {', '.join(failed)}" if failed else "all healthy"),
                  highlight=False)


@click.group(invoke_without_command=True)
@click.option("--limit", metavar="HOSTS", help="Only these computes (a hostlist); default: every compute.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-node report as JSON.")
@click.option("--fail-after", type=click.IntRange(min=1), default=None, metavar="N",
              help="Drain after N consecutive failing runs (default 1).")
@click.option("--resume-after", type=click.IntRange(min=1), default=None, metavar="M",
              help="Resume a node slurmkit drained after M consecutive clean runs (default 2).")
@click.option("--no-drain", is_flag=True, help="Check and report only: drain and resume nothing.")
@click.pass_context
def health(ctx: click.Context, limit: str | None, as_json: bool, fail_after: int | None, resume_after: int | None,
           no_drain: bool) -> None:
    """Run the node checks now on every compute (GPUs, rail HCAs, shared dir, munge, memory, spool), drain a node
    that fails with reason `slurmkit:<check> <detail>`, resume a node slurmkit drained once clean again (never an
    admin's drain). Exit 1 when any node fails or cannot be checked."""
    if ctx.invoked_subcommand is not None:
        return
    from slurmkit.health.policy import FAIL_AFTER, RESUME_AFTER

    cluster = load(ctx, check_env=True)
    report = run_health(cluster, cluster_path(ctx), limit, fail_after or FAIL_AFTER, resume_after or RESUME_AFTER,
                        no_drain)
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        _print_table(report)
    ctx.exit(1 if report["failed"] else 0)


@health.command("history")
@click.option("--json", "as_json", is_flag=True, help="Print the kept runs as JSON.")
@click.option("-n", "--last", type=click.IntRange(min=1), default=20, show_default=True, help="Show the last N runs.")
@click.pass_context
def history(ctx: click.Context, as_json: bool, last: int) -> None:
    """The kept health runs (from .slurmkit/health/history.jsonl beside the cluster file), newest last."""
    from slurmkit.health.policy import Store

    runs = Store(health_dir(cluster_path(ctx))).history()[-last:]
    if as_json:
        click.echo(json.dumps(runs, indent=1))
        return
    if not runs:
        click.echo("no health run kept yet: run `slurmkit health`")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="health history", title_justify="left")
    for col in ("time (UTC)", "nodes", "failing", "actions"):
        table.add_column(col)
    for run in runs:
        nodes = run.get("nodes", {})
        failing = [f"{n}: " + ", ".join(c["id"] for c in row.get("failing", [])) if row.get("ok") is False
                   else f"{n}: not checked" for n, row in nodes.items() if row.get("ok") is not True]
        actions = [f"{n} {row['action']}" for n, row in nodes.items() if row.get("action") not in (None, "none")]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.get("time", 0)))
        table.add_row(when, str(len(nodes)), escape("\n".join(failing)), escape("\n".join(actions)))
    Console().print(table)
