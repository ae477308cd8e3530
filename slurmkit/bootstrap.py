"""Make every host match the cluster file: munge, packages, configs, services; then check what Slurm says.

Phases: render (pure) -> apply playbooks on every host in parallel (check before change) -> handlers (munge
restart where the key changed; `scontrol reconfigure` or a restart of only the daemons that need it) -> verify
(every compute node registered and usable; a node Slurm marks INVAL or DOWN, or does not list, is that host's
failure, with Slurm's words; a controller that never answers is the primary's). ``dry_run`` runs the checks only
and reports diffs and the services it would touch.

A run with nothing to change costs one round trip per host: the primary's probe also reads Slurm's node list
(when its slurmctld runs), and when no host changed anything that read is the verification.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from slurmkit.cluster import Cluster, Host
from slurmkit.errors import CommandError
from slurmkit.paths import StateDir
from slurmkit.provision import (
    HostReport,
    _running_check,
    also_script,
    daemon_log,
    load_playbooks,
    apply_playbooks,
    restart_service,
    slurm_conf_action,
)
from slurmkit.render import HardwareSource, render_cluster
from slurmkit.slurm import DEFAULT_CONF, ConnRunner, commands, parsers, state


EARLY_READ_S = 5  # the primary probe's `scontrol show node` (see bootstrap)
MUNGE_KEY_BYTES = 1024
MUNGE_KEY_MIN = 32  # munged: "Keyfile must be at least 32 bytes"


def ensure_munge_key(cluster_file: Path) -> bytes:
    """The cluster's munge key, generated once (1024 random bytes) and kept beside the cluster file, mode 0600.

    Written whole or not at all, even when slurmkit is killed meanwhile: the bytes go to ``munge.key.tmp-PID``
    (0600 from its creation), are flushed, then linked to ``munge.key`` (a link never replaces a key another run
    made meanwhile); temp files that killed runs left are removed. A key munged would refuse (shorter than 32
    bytes) is an error naming the file."""
    from slurmkit.errors import SlurmkitError

    path = StateDir.of(cluster_file).munge_key
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob("munge.key.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()) or int(pid) == os.getpid():
            stale.unlink(missing_ok=True)
    if not path.exists():
        tmp = path.with_name(f"munge.key.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(MUNGE_KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another run made it first: theirs is the key
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    key = path.read_bytes()
    if len(key) < MUNGE_KEY_MIN:
        raise SlurmkitError(f"{path}: the munge key has {len(key)} bytes, munged needs at least {MUNGE_KEY_MIN}; "
                            f"remove it to have a new one generated (every host then gets the new key)")
    return key


@dataclass
class Outcome:
    dry_run: bool
    reports: dict[str, HostReport] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)  # host -> could not run at all
    actions: list[str] = field(default_factory=list)  # handlers run (or that would run)
    node_states: dict[str, str] = field(default_factory=dict)
    node_failures: dict[str, str] = field(default_factory=dict)  # compute host -> Slurm's reason
    resumed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(set(self.errors) | {h for h, r in self.reports.items() if r.failed} | set(self.node_failures))

    @property
    def changed(self) -> int:
        return sum(r.count("changed") for r in self.reports.values()) + len(self.resumed)


def bootstrap(cluster: Cluster, cluster_file: Path, hardware: HardwareSource, limit: str | None = None,
              dry_run: bool = False, on_host_done: Callable[[str, bool], None] | None = None,
              verify_timeout: float = 60.0, ssh=None) -> Outcome:
    """``ssh``: a :class:`~slurmkit.remote.ClusterSSH` of the caller's to run on (its jump host connection kept),
    else one of its own."""
    import contextlib

    from slurmkit.remote import ClusterSSH

    t0 = time.monotonic()
    rendered = render_cluster(cluster, hardware)  # pure: fails before any host is touched
    sources = {f"rendered/{name}": text.encode() for name, text in rendered.files.items()}
    sources["secret/munge.key"] = ensure_munge_key(cluster_file)
    playbooks = load_playbooks(variables={"state_dir": cluster.state_dir})
    hosts = cluster.select(limit)
    out = Outcome(dry_run)
    new_conf = rendered.files["slurm.conf"]

    with (contextlib.nullcontext(ssh) if ssh is not None
          else ClusterSSH(cluster, Path(cluster_file).expanduser().resolve().parent)) as ssh:
        roles = {h.name: h.role for h in hosts}
        primary = PrimaryWatch(cluster.head_names[0], cluster.head_names[0] in roles)

        # The primary's probe also reads Slurm's node list when its slurmctld runs: when this run changes nothing
        # anywhere, that read is the verification, and no second connection to the primary is needed. Bounded:
        # scontrol waits 9 s for a controller that does not answer (the polling verify then asks, as before).
        early = None if dry_run else also_script(
            _running_check("slurmctld"), f"{commands.conf_env()} timeout {EARLY_READ_S} {shlex.join(commands.SHOW_NODES)}")

        def apply(conn):
            wait = primary.answers if roles[conn.name] == "compute" else None
            report = apply_playbooks(conn, roles[conn.name], playbooks, sources, {"secret/munge.key"}, dry_run, wait,
                                     also=early if conn.name == primary.name else None)
            if conn.name == primary.name:
                primary.done(report)
            return report

        def done(r):
            if r.host == primary.name and not r.ok:
                primary.done(None)
            if on_host_done:
                on_host_done(r.host, r.ok and not r.value.failed)

        result = ssh.run_all(hosts, apply, on_done=done)
        for name, r in result.results.items():
            if r.ok:
                out.reports[name] = r.value
            else:
                out.errors[name] = r.error
        _handlers(cluster, ssh, hosts, out, new_conf, dry_run)
        # Slurm knows each compute by its Slurm name (its own hostname: hardware.slurm_names), not always the
        # cluster file's: verify asks for those, and reports by the cluster file's names.
        names = getattr(hardware, "slurm_names", None) or {}
        if not dry_run and not _verified_by_probe(cluster, hosts, out, names):
            _verify(cluster, ssh, hosts, out, verify_timeout, names)
    out.seconds = time.monotonic() - t0
    return out


class PrimaryWatch:
    """Whether the primary controller answers, as its head's run in this bootstrap found: a compute's slurmd
    start then skips its own wait for a controller (`scontrol ping` on every compute node). Not in this run, or
    not done within ``timeout`` seconds: unknown, and each slurmd start asks as before."""

    def __init__(self, name: str, in_run: bool, timeout: float = 3.0):
        self.name, self.in_run, self.timeout = name, in_run, timeout
        self._done = threading.Event()
        self._answers = False

    def done(self, report) -> None:
        """The primary's run ended (``report`` None: it failed before any report)."""
        if report is not None and not report.failed:
            started = "answers:slurmctld" in report.notified
            running = any(s.step.action == "service" and s.step.args.get("name") == "slurmctld" and s.status == "ok"
                          for s in report.steps)
            self._answers = started or running
        self._done.set()

    def answers(self) -> bool:
        return self.in_run and self._done.wait(self.timeout) and self._answers


def _service_is(report: HostReport, daemon: str, status: str) -> bool:
    """Whether the host's step for ``daemon`` ended ``status``: "ok" (it ran before), "changed" (this run starts
    it, or would: a dry run's answer too)."""
    return any(st.step.action == "service" and st.step.args.get("name") == daemon and st.status == status
               for st in report.steps)


def _handlers(cluster: Cluster, ssh, hosts: list[Host], out: Outcome, new_conf: str, dry_run: bool) -> None:
    ok = {n: r for n, r in out.reports.items() if not r.failed}
    by_name = {h.name: h for h in hosts}
    verb = "would " if dry_run else ""
    # munge key replaced where munged was already running: restart it there before Slurm talks again.
    munge = [n for n, r in ok.items() if "munge" in r.notified and not _service_is(r, "munge", "changed")]
    conf_action = "none"
    restart: dict[str, set[str]] = {}
    for n, r in ok.items():
        if "slurm.conf" not in r.notified:
            continue
        old = r.old_files.get(DEFAULT_CONF)
        if old is None:
            # The host had no slurm.conf: only its own daemon, if it ran (configless), needs the file; the
            # daemons elsewhere learn of a change from their own copy (a run killed after the heads got theirs
            # restarted the controllers when the computes got their first copy).
            daemon = "slurmctld" if r.role == "head" else "slurmd"
            if _service_is(r, daemon, "ok"):
                restart.setdefault(n, set()).add(daemon)
            continue
        conf_action = max(conf_action, slurm_conf_action(old, new_conf), key=["none", "reconfigure", "restart"].index)
    if conf_action == "restart":
        for n, r in ok.items():
            daemon = "slurmctld" if r.role == "head" else "slurmd"
            if not _service_is(r, daemon, "changed"):
                restart.setdefault(n, set()).add(daemon)
    for n, r in ok.items():  # gres.conf / cgroup.conf: only that node's slurmd
        if r.role == "compute" and "slurmd" in r.notified and not _service_is(r, "slurmd", "changed"):
            restart.setdefault(n, set()).add("slurmd")
    for n in munge:
        out.actions.append(f"{verb}restart munge on {n}")
    heads_first = sorted(restart, key=lambda n: (by_name[n].role != "head", cluster.hosts().index(by_name[n])))
    for n in heads_first:
        out.actions.append(f"{verb}restart {', '.join(sorted(restart[n]))} on {n}")
    reconfigure = conf_action == "reconfigure"
    if reconfigure:
        out.actions.append(f"{verb}run `{shlex.join(commands.RECONFIGURE)}` on {cluster.head_names[0]}")
    if dry_run or not (munge or restart or reconfigure):
        return

    def apply(conn):
        if conn.name in munge:
            restart_service(conn, "munge")
        for daemon in sorted(restart.get(conn.name, ())):
            restart_service(conn, daemon, log=daemon_log(daemon, new_conf, conn.name))

    targets = [by_name[n] for n in heads_first] + [by_name[n] for n in munge if n not in restart]
    heads = [h for h in targets if h.role == "head"]
    for group in (heads, [h for h in targets if h.role != "head"]):
        for name, r in ssh.run_all(group, apply).failed.items():
            out.errors[name] = r.error
    if reconfigure:
        primary = next(h for h in cluster.hosts() if h.name == cluster.head_names[0])
        res = ssh.run_all([primary], lambda c: commands.reconfigure(ConnRunner(c)))
        for name, r in res.failed.items():
            out.errors[name] = r.error


def _verify_targets(cluster: Cluster, hosts: list[Host], out: Outcome) -> tuple[list[str], Host | None]:
    """The compute nodes to check (those whose own run did not fail) and the primary to ask; none to check when
    the primary's run failed."""
    computes = [h.name for h in hosts if h.role == "compute" and h.name not in out.errors
                and not (h.name in out.reports and out.reports[h.name].failed)]
    primary = next(h for h in cluster.hosts() if h.name == cluster.head_names[0])
    if not computes or primary.name in out.errors or (primary.name in out.reports and out.reports[primary.name].failed):
        return [], None
    return computes, primary


def _verified_by_probe(cluster: Cluster, hosts: list[Host], out: Outcome, names: dict[str, str] | None = None) -> bool:
    """Whether the node list the primary's probe read settles the verification: this run changed nothing and
    ran no handler, every host answered, and Slurm listed every compute node checked, none with a problem. Then
    a polling verify would have ended on its first read, with the same answer; otherwise it runs. ``names``:
    cluster-file name -> Slurm name (:func:`slurmkit.hardware.slurm_names`; a name not in it is its own)."""
    computes, primary = _verify_targets(cluster, hosts, out)
    slurm = {n: (names or {}).get(n, n) for n in computes}
    if not computes:
        return True
    report = out.reports.get(primary.name)
    if (out.errors or out.changed or out.actions or any(r.failed for r in out.reports.values()) or report is None
            or report.also is None or report.also[0] != 0):
        return False
    nodes = {n.name: n for n in parsers.parse_scontrol_nodes(report.also[1])}
    nodes = {n: nodes[s] for n, s in slurm.items() if s in nodes}  # by cluster-file name
    if any(n not in nodes or state.node_problem(nodes[n]) or state.needs_resume(nodes[n]) for n in computes):
        return False
    out.node_states = {n: nodes[n].state_text for n in computes}
    return True


@dataclass
class Verified:
    nodes: dict  # name -> NodeInfo, as the last read found them
    problems: dict[str, str]  # compute node -> why it is not usable, in Slurm's words
    resumed: list[str]
    controller_error: CommandError | None = None  # the controller gave no node list within the wait: its words


def verify_nodes(runner, computes: list[str], timeout: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.2) -> Verified:
    """Ask the controller (``scontrol -o show node``, through ``runner``) until every one of ``computes`` is
    listed and usable, or ``timeout`` seconds passed, or every problem left is final for this configuration (a
    node Slurm refused, INVAL, or does not list).

    A node Slurm does not list is a problem (its slurm.conf does not name it), with Slurm's own words for it
    (``scontrol show node NAME``: "Node NAME not found"); a controller that never answers within the wait is
    ``controller_error``, the primary's failure, with scontrol's words. Nodes an earlier bad configuration left
    DOWN/drained are resumed (never one an admin drained for a reason of their own). A command cut or timed out
    (no exit code: not Slurm's answer) raises."""
    deadline = clock() + timeout
    resumed: list[str] = []
    while True:
        error = None
        try:
            nodes = {n.name: n for n in commands.show_nodes(runner)}
        except CommandError as exc:
            if exc.exit_code_ is None:
                raise
            nodes, error = {}, exc  # no controller answers (yet)
        for n in [n for n in computes if n in nodes and n not in resumed and state.needs_resume(nodes[n])]:
            if commands.resume(runner, n):
                resumed.append(n)
        problems = {n: state.node_problem(nodes[n]) for n in computes if n in nodes}
        problems = {n: p for n, p in problems.items() if p}
        missing = [n for n in computes if n not in nodes] if error is None else []
        done = error is None and not problems and not missing
        # INVAL is final for this configuration, and so is a node the controller does not list (it lists every
        # node its slurm.conf names, registered or not, from its start): waiting fixes neither.
        final = error is None and all(state.is_invalid(nodes[n]) for n in problems)
        if done or final or clock() > deadline:
            break
        sleep(interval)
    if error is not None:
        return Verified(nodes, problems, resumed, error)
    for n in missing:  # only when failing: Slurm's own words, one read per node
        node, words = commands.show_node(runner, n)
        if node is not None:  # listed by now
            nodes[n] = node
            if state.node_problem(node):
                problems[n] = state.node_problem(node)
        else:
            problems[n] = f"not in the controller's node list (`{shlex.join(commands.SHOW_NODES)}`): {words}"
    return Verified(nodes, problems, resumed)


def _verify(cluster: Cluster, ssh, hosts: list[Host], out: Outcome, timeout: float,
            names: dict[str, str] | None = None) -> None:
    """:func:`verify_nodes` on the primary, asking for each compute by its Slurm name (``names``: cluster-file
    name -> Slurm name; a name not in it is its own); ``out`` holds the answers by cluster-file name."""
    computes, primary = _verify_targets(cluster, hosts, out)
    if not computes:
        return
    slurm = {n: (names or {}).get(n, n) for n in computes}
    inventory = {s: n for n, s in slurm.items()}
    res = ssh.run_all([primary], lambda conn: verify_nodes(ConnRunner(conn), list(slurm.values()), timeout))
    if primary.name in res.failed:
        out.errors[primary.name] = res.failed[primary.name].error
        return
    v = res.results[primary.name].value
    if v.controller_error is not None:
        out.errors[primary.name] = v.controller_error
    out.node_states = {n: v.nodes[slurm[n]].state_text if slurm[n] in v.nodes else "missing" for n in computes}
    out.node_failures = {inventory.get(s, s): p for s, p in v.problems.items()}
    out.resumed = [inventory.get(s, s) for s in v.resumed]


# ---------------------------------------------------------------------------------------------------------
# The Slurm release to render for, on hosts `slurmkit discover` never asked (see slurmkit.slurm_versions)

VERSION_FACTS = ("slurm_version", "slurm_packages", "slurm_candidate")  # keys of slurmkit.facts.COMMANDS
VERSION_TIMEOUT_S = 60


def hosts_without_versions(cluster: Cluster, records: dict[str, dict]) -> list[str]:
    """The hosts (cluster file order) whose cached facts show no Slurm versions: no record, or one cached before
    discovery collected them. Pure."""
    from slurmkit.hardware import node_facts

    return [h.name for h in cluster.hosts() if h.name not in records or node_facts(records[h.name]).slurm is None]


def collect_versions(cluster: Cluster, cluster_file: Path, names: list[str], ssh=None
                     ) -> tuple[dict[str, dict[str, str]], dict[str, BaseException]]:
    """Run only the version commands of :data:`VERSION_FACTS` on ``names``, in one fan-out (one script per host,
    framed as discovery frames its own; the apt candidate only on a host with no Slurm installed, its output
    left empty elsewhere): (host -> command name -> stdout, host -> error). Nothing is written to the facts
    cache: a record holding only these outputs would pass for a full one."""
    import secrets

    from slurmkit.discovery import build_script, split_outputs
    from slurmkit.facts import COMMANDS, slurm_versions
    from slurmkit.facts.errors import FactsParseError
    from slurmkit.remote import ClusterSSH

    token = secrets.token_hex(8)

    def frame(conn, names: tuple[str, ...]) -> dict[str, str]:
        cmds = {k: COMMANDS[k] for k in names}
        res = conn.run("sh -c " + shlex.quote(build_script(cmds, token)), timeout=VERSION_TIMEOUT_S)
        try:
            return {k: v.stdout for k, v in split_outputs(res.stdout, token, list(cmds)).items()}
        except CommandError as exc:
            raise CommandError(exc.command, res.exit_code, "", exc.stderr, host=conn.name) from None

    def run(conn) -> dict[str, str]:
        # apt-cache policy reads every package list (seconds on a Debian host); an apt candidate counts only
        # where no Slurm is installed (slurm_versions.host_versions), so only there is it asked.
        outputs = frame(conn, VERSION_FACTS[:2])
        try:
            installed = slurm_versions(outputs["slurm_version"], outputs["slurm_packages"], "").installed
            outputs["slurm_candidate"] = "" if installed else frame(conn, VERSION_FACTS[2:])["slurm_candidate"]
            slurm_versions(*(outputs[k] for k in VERSION_FACTS))  # garbled output: this host's error, here
        except FactsParseError as exc:
            raise exc.on_host(conn.name) from None
        return outputs

    import contextlib

    wanted = set(names)
    with (contextlib.nullcontext(ssh) if ssh is not None
          else ClusterSSH(cluster, Path(cluster_file).expanduser().resolve().parent)) as ssh:
        result = ssh.run_all([h for h in cluster.hosts() if h.name in wanted], run)
    return {h: r.value for h, r in result.succeeded.items()}, {h: r.error for h, r in result.failed.items()}


def hardware_with_versions(cluster: Cluster, cluster_file: Path, records: dict[str, dict],
                           versions: dict[str, dict[str, str]]) -> HardwareSource:
    """:func:`slurmkit.hardware.hardware_source` with the Slurm versions of ``versions`` (host -> outputs of
    :data:`VERSION_FACTS`, from :func:`collect_versions`) taken into the target release. In memory only:

    - a host with a cached record gets the versions added to its record's facts (what discover caches today);
    - a host without one counts for the target only: an outputs-only record would have no CPU, memory or GPU
      facts, which the hardware checks would read as a node found with none. Where it moves the target, the
      facts-derived hardware is derived again for the new release (gres.conf's form depends on it).
    """
    from slurmkit.facts import slurm_versions
    from slurmkit.hardware import declared_hardware, hardware_from_facts, hardware_source, node_facts, slurm_target

    full: dict[str, dict] = {}
    for host, record in records.items():
        if host in versions:
            facts = node_facts(record)
            facts.slurm = slurm_versions(*(versions[host][k] for k in VERSION_FACTS))
            record = {**record, "facts": facts.to_dict()}
        full[host] = record
    source = hardware_source(cluster, cluster_file, full)
    only = {h: {"host": h, "outputs": dict(v)} for h, v in versions.items() if h not in records}
    if not only:
        return source
    target = slurm_target(cluster, cluster_file, {**full, **only})
    if target == source.slurm_target:  # type: ignore[attr-defined]
        return source
    inner = source

    def retargeted(name, group):
        if declared_hardware(name, group) is None and name in full:
            return hardware_from_facts(full[name], group, target.release)
        return inner(name, group)

    retargeted.slurm_target = target  # type: ignore[attr-defined]
    retargeted.slurm_names = inner.slurm_names  # type: ignore[attr-defined]
    retargeted.controller_addresses = inner.controller_addresses  # type: ignore[attr-defined]
    return retargeted
