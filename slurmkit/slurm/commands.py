"""Every Slurm command slurmkit runs: their argv, the functions that run them through a *runner* and return parsed
records, and the shell text of the few that scripts generated for a node run there (a controller-wait loop).

A runner (see :mod:`slurmkit.slurm`) runs one argv with optional stdin and returns ``returncode``, ``stdout``,
``stderr``: :func:`slurmkit.slurm.local_runner` here, :class:`ConnRunner` over a host's connection, the head runner
of :mod:`slurmkit.remote` for the CLI. Nothing else in slurmkit spells a Slurm command.

The ``SLURM_CONF`` rule: every Slurm command slurmkit runs names its configuration. On a host of the cluster
that is :data:`DEFAULT_CONF`, named explicitly (:func:`conf_env`): without one, a Slurm command looks for a
configuration server through DNS SRV records instead of failing. Here (:func:`local_conf`): the path given, else
``$SLURM_CONF``, else :data:`DEFAULT_CONF` when it exists.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from slurmkit.errors import CommandError, SlurmkitError
from slurmkit.slurm import parsers
from slurmkit.slurm.parsers import Controller, NodeInfo

if TYPE_CHECKING:
    from slurmkit.slurm import Runner

DEFAULT_CONF = "/etc/slurm/slurm.conf"


# ---------------------------------------------------------------------------------------------------------
# SLURM_CONF


def conf_env(slurm_conf: str = DEFAULT_CONF) -> str:
    """``SLURM_CONF=PATH``, the shell prefix that names the configuration of a Slurm command run on a host."""
    return f"SLURM_CONF={shlex.quote(str(slurm_conf))}"


def env_conf() -> str | None:
    """``$SLURM_CONF`` when set (the user named a configuration: Slurm commands run here)."""
    return os.environ.get("SLURM_CONF") or None


def local_conf(slurm_conf: str | os.PathLike | None = None) -> str | None:
    """The slurm.conf a Slurm command run on this machine uses: ``slurm_conf``, else ``$SLURM_CONF``, else
    :data:`DEFAULT_CONF` when that file exists; None when there is none."""
    if slurm_conf:
        return str(slurm_conf)
    return env_conf() or (DEFAULT_CONF if Path(DEFAULT_CONF).is_file() else None)


def shell_command(argv: Sequence[str], slurm_conf: str = DEFAULT_CONF) -> str:
    """The shell text that runs ``argv`` on a host with its configuration named; every item reaches the command
    literally (quoted one by one)."""
    return f"{conf_env(slurm_conf)} {shlex.join(argv)}"


# ---------------------------------------------------------------------------------------------------------
# Runners


class ConnRunner:
    """A runner over one host's connection (:class:`slurmkit.remote.Conn`, or anything with its ``run`` and
    ``name``): each argv runs there as :func:`shell_command` builds it."""

    def __init__(self, conn, slurm_conf: str = DEFAULT_CONF, timeout: float | None = 300):
        self.conn, self.slurm_conf, self.timeout = conn, slurm_conf, timeout

    @property
    def host(self) -> str:
        return self.conn.name

    def __call__(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        res = self.conn.run(shell_command(argv, self.slurm_conf), check=False, input=stdin, timeout=self.timeout)
        return subprocess.CompletedProcess(argv, res.exit_code, res.stdout, res.stderr)


def run(runner: Runner, argv: list[str], stdin: str | None = None, ok: tuple[int, ...] = (0,)):
    """Run ``argv`` through ``runner``; an exit code not in ``ok`` raises CommandError (the command, its exit
    code and output, the runner's host when it has one)."""
    r = runner(argv, stdin)
    if r.returncode not in ok:
        raise CommandError(shlex.join(argv), r.returncode, r.stdout or "", r.stderr or "", getattr(runner, "host", None))
    return r


# ---------------------------------------------------------------------------------------------------------
# Command lines

VERSION = ("sinfo", "--version")
PING = ("scontrol", "ping")
RECONFIGURE = ("scontrol", "reconfigure")
SHOW_NODES = ("scontrol", "-o", "show", "node")  # the same text from 22.05 to 25.x, with the reason
SHOW_PARTITIONS = ("scontrol", "-o", "show", "partition")
SHOW_CONFIG = ("scontrol", "show", "config")
JOBS = ("squeue", "--json")  # 22.05: --json ignores -j/-t/-u filters; callers filter the list
NODES_LONG = ("sinfo", "-N", "-l")  # for a person to read

# Node states ``scontrol update`` sets (scontrol(1)); DRAIN and DOWN need a reason.
UPDATE_STATES = ("resume", "drain", "down", "undrain", "idle", "fail", "future", "power_down", "power_up",
                 "reboot")
_NEEDS_REASON = ("drain", "down", "fail")


def submit_argv(sbatch_args: Sequence[str] = ()) -> list[str]:
    """sbatch that reads the script on stdin and prints ``JOBID[;CLUSTER]``."""
    return ["sbatch", "--parsable", *sbatch_args]


def sacct_job_argv(job_id: str) -> list[str]:
    return ["sacct", "-j", str(job_id), "-X", "-n", "--parsable2", "-o", ",".join(parsers.SACCT_FIELDS)]


def show_job_argv(job_id: str) -> list[str]:
    return ["scontrol", "-o", "show", "job", str(job_id)]


def cancel_argv(job_id: str) -> list[str]:
    return ["scancel", str(job_id)]


def read_file_argv(path: str, offset: int = 0) -> list[str]:
    """The bytes of a job's output file from ``offset`` on (read where Slurm runs, which may be a head)."""
    return ["tail", "-c", f"+{int(offset) + 1}", "--", path]


def update_node_argv(nodes: str | Iterable[str], state: str, reason: str | None = None) -> list[str]:
    """``scontrol update nodename=NODES state=STATE [reason=...]``; ``nodes`` a hostlist or names (folded)."""
    from slurmkit import hostlist

    names = nodes if isinstance(nodes, str) else hostlist.fold(list(nodes))
    state = state.lower()
    if not names:
        raise SlurmkitError("scontrol update: no node named")
    if state not in UPDATE_STATES:
        raise SlurmkitError(f"scontrol update: unknown node state {state!r}; valid: {', '.join(UPDATE_STATES)}")
    if state in _NEEDS_REASON and not reason:
        raise SlurmkitError(f"scontrol update state={state} needs a reason (Slurm refuses it without one)")
    return ["scontrol", "update", f"nodename={names}", f"state={state}", *([f"reason={reason}"] if reason else [])]


# ---------------------------------------------------------------------------------------------------------
# Commands: run through a runner, parsed


def version(runner: Runner) -> str:
    """``slurm-wlm 22.05.8`` (Debian's build); CommandError when Slurm's commands cannot run."""
    return run(runner, list(VERSION)).stdout.strip()


def ping(runner: Runner) -> list[Controller]:
    """Every slurmctld in slurm.conf order (primary first) and whether it answers. scontrol exits 1 when one is
    down (its text still says which): CommandError only when it names none."""
    r = run(runner, list(PING), ok=(0, 1))
    found = parsers.parse_scontrol_ping(r.stdout)
    if not found:
        raise CommandError(shlex.join(PING), r.returncode, r.stdout, r.stderr, getattr(runner, "host", None))
    return found


def reconfigure(runner: Runner) -> None:
    """Have every daemon reread slurm.conf (``scontrol reconfigure``, on a host whose controller answers)."""
    run(runner, list(RECONFIGURE))


def show_nodes(runner: Runner) -> list[NodeInfo]:
    return parsers.parse_scontrol_nodes(run(runner, list(SHOW_NODES)).stdout)


def show_node(runner: Runner, name: str) -> tuple[NodeInfo | None, str]:
    """One node as the controller knows it: (its record, "") or, when Slurm has none, (None, Slurm's own words:
    ``Node NAME not found``, or why it could not answer)."""
    r = runner([*SHOW_NODES, name], None)
    found = [n for n in parsers.parse_scontrol_nodes(r.stdout or "") if n.name == name] if r.returncode == 0 else []
    if found:
        return found[0], ""
    words = (r.stderr or r.stdout or "").strip() or f"scontrol exited {r.returncode} without a word"
    return None, words


def show_partitions(runner: Runner) -> list[parsers.PartitionInfo]:
    return parsers.parse_scontrol_partitions(run(runner, list(SHOW_PARTITIONS)).stdout)


def show_config(runner: Runner) -> dict[str, str]:
    """The running controller's configuration, ``Key -> value`` (``scontrol show config``)."""
    return parsers.parse_scontrol_config(run(runner, list(SHOW_CONFIG)).stdout)


def update_nodes(runner: Runner, nodes: str | Iterable[str], state: str, reason: str | None = None) -> None:
    """Set the nodes' state (see :func:`update_node_argv`); CommandError with Slurm's words when it refuses."""
    run(runner, update_node_argv(nodes, state, reason))


def resume(runner: Runner, nodes: str | Iterable[str]) -> bool:
    """Put DOWN or drained nodes back in service; whether Slurm took it (a node that is neither is refused)."""
    return runner(update_node_argv(nodes, "resume"), None).returncode == 0


def drain(runner: Runner, nodes: str | Iterable[str], reason: str) -> None:
    """Drain the nodes: running jobs finish, no new one starts there."""
    update_nodes(runner, nodes, "drain", reason)


def overview(runner: Runner) -> str:
    """For a person: ``scontrol ping`` (every controller UP or DOWN) and ``sinfo -N -l`` (every node); raises
    CommandError when sinfo cannot answer."""
    ping_text = runner(list(PING), None).stdout
    return ping_text + run(runner, list(NODES_LONG)).stdout


# ---------------------------------------------------------------------------------------------------------
# Shell text for scripts that run on a host


def controller_answers_shell(timeout: int = 2) -> str:
    """Shell that exits 0 when a controller answers ``scontrol ping`` (quietly). scontrol retries a controller
    name that does not resolve for 10 s: ``timeout`` keeps one ping short."""
    return f"{conf_env()} timeout {int(timeout)} scontrol ping >/dev/null 2>&1"


# Where slurm.conf usually is, after what the controller says: Debian/Ubuntu's, then the old Debian one, then
# a source build's default prefix.
CONF_PATHS = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/usr/local/etc/slurm.conf")


def find_conf_shell(paths: Sequence[str] = CONF_PATHS) -> str:
    """Shell that prints the slurm.conf a host's Slurm reads, in one round trip: the login environment's
    SLURM_CONF, else the SLURM_CONF that ``scontrol show config`` reports (it knows the compiled-in default;
    bounded, as it waits ~10 s for a controller that does not answer), else the first of ``paths`` that exists;
    an empty line when none."""
    return ('p="$SLURM_CONF"; '
            '[ -n "$p" ] || p=$(timeout 30 scontrol show config 2>/dev/null | sed -n \'s/^SLURM_CONF *= *//p\' | head -n1); '
            '[ -n "$p" ] || for f in ' + " ".join(shlex.quote(x) for x in paths) + '; do [ -f "$f" ] && p="$f" && break; done; '
            'echo "$p"')


# The support bundle's copy of Slurm's view, run on the first head: file name -> command. The ping comes first:
# when no controller answers, the commands after ``sinfo`` are not run (each would only wait out its timeout).
BUNDLE_COMMANDS: dict[str, tuple[str, ...]] = {
    "scontrol-ping.txt": PING,
    "sinfo.txt": ("sinfo",),
    "sinfo-nodes.txt": NODES_LONG,
    "squeue.txt": ("squeue",),
    "scontrol-show-node.txt": ("scontrol", "show", "node"),
    "scontrol-show-node-oneliner.txt": SHOW_NODES,
    "scontrol-show-partition.txt": ("scontrol", "show", "partition"),
}
BUNDLE_NEED_NO_CONTROLLER = ("scontrol-ping.txt", "sinfo.txt")


@dataclass
class BundleOutputs:
    """Slurm's view for the support bundle: each command's file (its command line, output and exit status), the
    ping's text and controllers, the nodes (None, with ``error``, when Slurm could not list them)."""

    files: dict[str, str]
    ping_text: str
    controllers: list[Controller]
    nodes: list[NodeInfo] | None
    error: str | None


def bundle_outputs(runner: Runner) -> BundleOutputs:
    """Run :data:`BUNDLE_COMMANDS` in order; when no controller answers the ping, the commands after those of
    :data:`BUNDLE_NEED_NO_CONTROLLER` are not run (each would only wait out its timeout) and their files say so."""
    files: dict[str, str] = {}
    results: dict[str, subprocess.CompletedProcess] = {}
    ping_name = next(iter(BUNDLE_COMMANDS))
    for name, argv in BUNDLE_COMMANDS.items():
        cmd = shlex.join(argv)
        if name not in BUNDLE_NEED_NO_CONTROLLER and not any(
                c.up for c in parsers.parse_scontrol_ping(results[ping_name].stdout)):
            files[name] = f"$ {cmd}\n(not run: no slurmctld answers `scontrol ping`)\n"
            continue
        r = runner(list(argv), None)
        results[name] = r
        files[name] = f"$ {cmd}\n{r.stdout}{r.stderr}" + (f"[exit {r.returncode}]\n" if r.returncode else "")
    ping = results[ping_name]
    nodes = results.get("scontrol-show-node-oneliner.txt")
    if nodes is not None and nodes.returncode == 0:
        node_list, error = parsers.parse_scontrol_nodes(nodes.stdout), None
    else:
        node_list = None
        error = (nodes.stderr or nodes.stdout).strip() if nodes is not None else "no slurmctld answers"
    return BundleOutputs(files, ping.stdout + ping.stderr, parsers.parse_scontrol_ping(ping.stdout), node_list, error)

