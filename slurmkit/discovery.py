"""Discovery: run the facts commands on every host over SSH and cache what they printed.

``collect`` is the one side effect (SSH, then the cache beside the cluster file, see :mod:`slurmkit.hardware`
for the record's form); ``build_script``/``split_outputs`` (the one shell script each host runs, and its output
split back per command) and ``facts_record`` (one host's cache record) are pure. What the cached facts mean (a
node's hardware, the declared-vs-found check, NCCL env) is :mod:`slurmkit.hardware`'s.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from slurmkit.cluster import Cluster
from slurmkit.errors import CommandError
from slurmkit.facts import COMMANDS, ROUTE_TO_HEAD, FactsParseError, facts_from_outputs, route_to_host_command
from slurmkit.hardware import is_ip, write_facts

# Re-exported for callers that still import them from here; their home is slurmkit.hardware.
from slurmkit.hardware import cached_records, group_nccl, job_nccl_env, mgmt_interface, nccl_exports  # noqa: F401

# Run on the first head only: the fabric seen from there (needs umad access, usually root; empty otherwise).
HEAD_COMMANDS: dict[str, str] = {
    "ibnetdiscover": "command -v ibnetdiscover >/dev/null 2>&1 && ibnetdiscover 2>/dev/null || true",
}
SCRIPT_TIMEOUT_S = 180.0
_MARK = "@@slurmkit-facts"


# ---------------------------------------------------------------- one script per host


def build_script(commands: Mapping[str, str], token: str) -> str:
    """One POSIX shell script running every command, each stdout framed by marker lines carrying ``token``,
    then its exit status and stderr. A newline always precedes a closing marker, so output without a final
    newline stays byte-exact (:func:`split_outputs` removes exactly that newline)."""
    lines = ['_d=$(mktemp -d 2>/dev/null || echo /tmp/slurmkit-facts.$$); mkdir -p "$_d"']
    for name, cmd in commands.items():
        lines += [
            f"printf '%s\\n' '{_MARK} {token} out {name}'",
            f'( {cmd} ) 2>"$_d/err" </dev/null; _rc=$?',
            f"printf '\\n%s %s\\n' '{_MARK} {token} err {name}' \"$_rc\"",
            'cat "$_d/err"',
            f"printf '\\n%s\\n' '{_MARK} {token} end {name}'",
        ]
    lines.append('rm -rf "$_d"')
    return "\n".join(lines) + "\n"


@dataclass
class CommandOutput:
    stdout: str
    stderr: str
    exit_code: int


def split_outputs(text: str, token: str, names: list[str]) -> dict[str, CommandOutput]:
    """Split the script's stdout back into one :class:`CommandOutput` per command name.

    A command whose frame is missing or cut (the session died mid-way) raises :class:`CommandError` naming it.
    """
    t = re.escape(token)
    out: dict[str, CommandOutput] = {}
    for name in names:
        n = re.escape(name)
        m = re.search(
            rf"^{_MARK} {t} out {n}\n(.*?)\n{_MARK} {t} err {n} (-?\d+)\n(.*?)\n{_MARK} {t} end {n}$",
            text,
            re.S | re.M,
        )
        if m is None:
            raise CommandError(f"facts script: {name}", None, text[-2000:], "output frame missing or cut short")
        out[name] = CommandOutput(m.group(1), m.group(3), int(m.group(2)))
    return out


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def facts_record(host: str, commands: Mapping[str, str], outputs: Mapping[str, CommandOutput],
                 time: str | None = None) -> dict[str, Any]:
    """The cache record of one host: time (UTC ISO), commands run, raw outputs, parsed facts. Pure."""
    stdout = {k: v.stdout for k, v in outputs.items()}
    facts = facts_from_outputs(host, stdout)
    return {
        "host": host,
        "time": time or _now(),
        "commands": dict(commands),
        "outputs": stdout,
        "stderr": {k: v.stderr for k, v in outputs.items() if v.stderr.strip()},
        "facts": facts.to_dict(),
    }


def collect(cluster: Cluster, cluster_file: Path, limit: str | None = None,
            on_done: Callable[[str, bool], None] | None = None) -> tuple[dict[str, dict], dict[str, BaseException]]:
    """Run :data:`~slurmkit.facts.COMMANDS` on every host (``limit``: a hostlist of some of them) in parallel,
    one SSH session and one script per host, the first head also running :data:`HEAD_COMMANDS`; every host
    also asks for its route to the first head (``ip_route_head``, see :func:`mgmt_interface`).

    Each reachable host's record is written to the facts cache at once; returns (records by host, errors by
    host). An unreachable host is an error of its own: the others are still collected and cached. So is a host
    whose output is truncated or garbled (:class:`~slurmkit.facts.FactsParseError` naming host, command and
    line); its cache is left as it was.
    """
    from slurmkit.remote import ClusterSSH  # here, not at import: fabric is slow to import

    hosts = cluster.select(limit)
    first_head = cluster.head_names[0]
    head_address = next(h.address for h in cluster.hosts() if h.name == first_head)
    token = secrets.token_hex(8)

    def run(conn) -> dict:
        commands = dict(COMMANDS)
        commands[ROUTE_TO_HEAD] = route_to_host_command(first_head, head_address if is_ip(head_address) else None)
        if conn.name == first_head:
            commands.update(HEAD_COMMANDS)
        # as an argument, not on stdin: invoke feeds stdin a byte at a time (seconds per KB)
        res = conn.run("sh -c " + shlex.quote(build_script(commands, token)), timeout=SCRIPT_TIMEOUT_S)
        try:
            outputs = split_outputs(res.stdout, token, list(commands))
        except CommandError as exc:
            raise CommandError(exc.command, res.exit_code, "", exc.stderr, host=conn.name) from None
        try:
            record = facts_record(conn.name, commands, outputs)
        except FactsParseError as exc:
            raise exc.on_host(conn.name) from None
        write_facts(cluster_file, conn.name, record)
        return record

    with ClusterSSH(cluster, Path(cluster_file).expanduser().resolve().parent) as ssh:
        result = ssh.run_all(hosts, run, on_done=(lambda r: on_done(r.host, r.ok)) if on_done else None)
    records = {h: r.value for h, r in result.succeeded.items()}
    errors = {h: r.error for h, r in result.failed.items()}
    return records, errors
