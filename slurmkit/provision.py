"""Apply playbooks/ to hosts: idempotent steps that check before they change, reporting ok / changed / failed.

A playbook (``playbooks/*.yaml``) is ``name``, ``hosts`` (all | heads | computes) and ``steps``; a step is
``name`` plus exactly one action, and optionally ``notify`` (a handler to run when the step changed something):

- ``packages: [names]``              installed with the distribution's package manager when missing
- ``file: {dest, source, owner, group, mode}``   ``source`` is ``rendered/<file>`` or ``secret/<file>``; written
                                      atomically when content, owner or mode differ; removed when the source
                                      does not exist (a config this cluster does not need)
- ``directory: {path, owner, group, mode}``
- ``service: {name}``                running (systemd where the host has it, else started directly)
- ``command: {run, unless}``         ``run`` when ``unless`` exits non-zero

String values may use ``{{ state_dir }}``-style variables. Building the plan is pure (:func:`load_playbooks`);
executing it goes through :class:`slurmkit.remote.Conn`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import jinja2
import yaml

from slurmkit.errors import CommandError, ConfigError, Problem
from slurmkit.resources import data_dir, jinja_env
from slurmkit.remote import UNPACK, Upload, pack
from slurmkit.slurm.commands import controller_answers_shell

PLAYBOOK_DIR = data_dir("playbooks")
# libyaml's safe loader where PyYAML has it: the same documents, a fifth of the time (every bootstrap reads them)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ACTIONS = ("packages", "file", "directory", "service", "command")
Status = Literal["ok", "changed", "failed", "skipped"]


@dataclass(frozen=True)
class Step:
    playbook: str
    name: str
    action: str
    args: Any
    notify: str | None = None


@dataclass(frozen=True)
class Playbook:
    name: str
    hosts: Literal["all", "heads", "computes"]
    steps: tuple[Step, ...]


def load_playbooks(names: tuple[str, ...] = ("common", "controller", "compute"), variables: dict | None = None,
                   directory: Path = PLAYBOOK_DIR) -> list[Playbook]:
    """Read and check playbooks; variables fill ``{{ ... }}`` in string values. Raises ConfigError."""
    env = jinja_env()
    out = []
    for name in names:
        path = directory / f"{name}.yaml"
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
        problems = []
        if not isinstance(data, dict) or set(data) - {"name", "hosts", "steps"}:
            raise ConfigError(str(path), [Problem("", "a playbook is a mapping of name, hosts, steps")])
        if data.get("hosts") not in ("all", "heads", "computes"):
            problems.append(Problem("hosts", "must be all, heads or computes"))
        steps = []
        for i, raw in enumerate(data.get("steps") or []):
            actions = [a for a in ACTIONS if a in raw]
            unknown = set(raw) - set(ACTIONS) - {"name", "notify"}
            if len(actions) != 1 or unknown:
                problems.append(Problem(f"steps[{i}]", f"needs exactly one of {', '.join(ACTIONS)}"
                                        + (f"; unknown keys: {', '.join(sorted(unknown))}" if unknown else "")))
                continue
            args = _fill(raw[actions[0]], env, variables or {})
            steps.append(Step(name, raw.get("name", actions[0]), actions[0], args, raw.get("notify")))
        if problems:
            raise ConfigError(str(path), problems)
        out.append(Playbook(data.get("name", name), data["hosts"], tuple(steps)))
    return out


def _fill(value: Any, env: jinja2.Environment, variables: dict) -> Any:
    if isinstance(value, str) and "{{" in value:
        return env.from_string(value).render(**variables)
    if isinstance(value, dict):
        return {k: _fill(v, env, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, env, variables) for v in value]
    return value


@dataclass
class StepResult:
    step: Step
    status: Status
    detail: str = ""
    diff: str = ""
    error: BaseException | None = None


@dataclass
class HostReport:
    host: str
    role: str
    steps: list[StepResult] = field(default_factory=list)
    notified: set[str] = field(default_factory=set)
    old_files: dict[str, str | None] = field(default_factory=dict)
    # What the caller's extra read (apply_playbooks' ``also``) printed with the probe: (exit code, stdout); None
    # when it did not run (its guard was false) or none was asked.
    also: tuple[int, str] | None = None

    def count(self, status: Status) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def failed(self) -> bool:
        return any(s.status == "failed" for s in self.steps)


# ---------------------------------------------------------------------------------------------------------
# Services: systemd where the host runs it; otherwise (containers, the local cluster) started directly and
# tracked by pid file. Debian's packages install all three daemons under /usr/sbin.



def _loop(times: int, body: str) -> str:
    """Shell that runs ``body`` up to ``times`` times, with builtins only (no `seq`: on a busy machine every
    process counts, and a new host's start runs several such loops)."""
    return f"i=0; while [ $i -lt {times} ]; do i=$((i+1)); {body}; done"


def _wait(seconds: int, body: str) -> str:
    """Shell that runs ``body`` (which may ``break``) every 0.1 s until ``seconds`` have passed, by the clock
    (/proc/uptime, read by a builtin), not by a count: a step inside that is slow (a ping whose controller name
    does not resolve takes 10 s) cannot stretch the wait to minutes."""
    now = "read -r up _ </proc/uptime"
    return (f"{now}; end=$((${{up%.*}}+{seconds})); while :; do {body}; {now}; [ ${{up%.*}} -lt $end ] || break; "
            f"sleep 0.1; done")


# Whether a controller answers (slurmkit.slurm.commands.controller_answers_shell): the slurmd start's wait for one
# (CONTROLLER_WAIT), and slurmctld's own start, which prints ANSWERS once it does (bootstrap notes that as
# "answers:slurmctld").
_PING = controller_answers_shell()
ANSWERS = "@@slurmctld-answers"
CONTROLLER_WAIT = _wait(3, f"{_PING} && break")
# A start that fails prints this line, then the daemon's own words (its log's tail or its journal), on stderr.
DAEMON_FAILED = "@@daemon"

# Started without systemd, a daemon costs its own start only: munged is started by setpriv (util-linux, no PAM
# session: runuser opened one, a third of munged's start), slurmd without the hwloc plugins that read X11/OpenGL
# and OpenCL devices or parse XML with libxml2 (slurmd reads CPUs, caches and PCI locality: the PCI plugin stays;
# loading the others' libraries was a third of slurmd's start).
SERVICES: dict[str, dict[str, str]] = {
    "munge": {"unit": "munge", "pidfile": "/run/munge/munged.pid",
              "start": "setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged",
              "comm": "munged", "log": "/var/log/munge/munged.log"},
    # slurmd registers once at start and retries only a second later: started while no controller answers yet
    # (a new cluster, its heads starting alongside), it would sit UNKNOWN for that second. So its start waits,
    # up to 3 s, for `scontrol ping` to find a controller up (CONTROLLER_WAIT), then starts slurmd either way,
    # unless bootstrap already knows the primary answers (see ANSWERS): one `scontrol ping` per cluster, not
    # one per compute node (each is a process, a munge credential and an RPC the controller must decode).
    "slurmd": {"unit": "slurmd", "pidfile": "/run/slurmd.pid",
               "start": "HWLOC_PLUGINS_BLACKLIST=hwloc_gl,hwloc_opencl,hwloc_xml_libxml /usr/sbin/slurmd",
               "comm": "slurmd", "log": "/var/log/slurm/slurmd.log", "log_key": "slurmdlogfile",
               "wait_controller": "yes"},
    # Once up, slurmctld's start waits (up to 10 s) until it answers `scontrol ping` and then prints ANSWERS;
    # slurmctld forks away before it checks that this host is one of the SlurmctldHost lines, so that wait also
    # watches that it still runs.
    "slurmctld": {"unit": "slurmctld", "pidfile": "/run/slurmctld.pid", "start": "/usr/sbin/slurmctld",
                  "comm": "slurmctld", "log": "/var/log/slurm/slurmctld.log", "log_key": "slurmctldlogfile",
                  "answers": "yes"},
}
SYSTEMD_TEST = "[ -d /run/systemd/system ]"
UP_SECONDS = 10  # how long a started daemon may take to write its pid file, and slurmctld to answer


def _pid_check(name: str) -> str:
    """Shell that exits 0 when the daemon's pid file names a live process of that daemon, leaving its PID in
    $pid. Shell builtins only (read, [): no process is started, which matters when many hosts are probed at once."""
    svc = SERVICES[name]
    return f"read -r pid < {svc['pidfile']} && read -r comm < /proc/$pid/comm && [ \"$comm\" = {svc['comm']} ]"


def _running_check(name: str) -> str:
    """Shell that exits 0 when the daemon runs: systemd's view, else its pid file checked against /proc."""
    unit = SERVICES[name]["unit"]
    return f"if {SYSTEMD_TEST}; then systemctl is-active --quiet {unit}; else {_pid_check(name)}; fi 2>/dev/null"


def service_running(conn, name: str) -> bool:
    return conn.run(_running_check(name), check=False).ok


def daemon_log(name: str, slurm_conf: str | bytes | None, node: str) -> str:
    """Where the daemon logs on ``node``: slurmctld's and slurmd's file as the rendered slurm.conf names it
    (SlurmctldLogFile, SlurmdLogFile with %n/%h for the node), munged's own; "" when Slurm logs to syslog."""
    svc = SERVICES[name]
    if "log_key" not in svc or slurm_conf is None:
        return svc["log"]
    text = slurm_conf.decode(errors="replace") if isinstance(slurm_conf, bytes) else slurm_conf
    found = [v for k, v in parse_conf(text) if k == svc["log_key"]]
    if not found:
        return ""
    return found[-1].replace("%n", node).replace("%h", node)


def _diagnose(name: str, log: str | None) -> str:
    """Shell that prints the daemon's own last words: its journal and status under systemd, else its log's tail."""
    unit = SERVICES[name]["unit"]
    tail = f"tail -n 20 {shlex.quote(log)} 2>/dev/null" if log else "true"
    return (f"if {SYSTEMD_TEST}; then journalctl -u {unit} -n 20 --no-pager 2>&1; "
            f"systemctl status {unit} --no-pager -n 0 2>&1; else {tail}; fi")


def _start_script(name: str, controller_answers: bool = False, log: str | None = None) -> str:
    """Shell that starts the daemon and exits 0 once it runs (slurmctld: once it answers, or 10 s on). When it
    does not come up it stops at once, exit code non-zero, and prints on stderr the line ``@@daemon NAME WHAT``
    (``exited with exit code N``, ``exited``, ``did not start within 10 s``), the start's own output and the
    daemon's log tail (``log``; default: the Debian package's path) or journal. ``controller_answers``: the
    caller knows a controller answers, so a slurmd start need not ask (CONTROLLER_WAIT)."""
    svc = SERVICES[name]
    log = svc["log"] if log is None else log
    # Daemonizing parents exit after forking; their output goes to a file in the host's own /run (not the SSH
    # channel, and not /tmp, which local nodes share), so the session ends while the daemon lives on. It is shown
    # only when the start fails (and left in /run, overwritten by the next start).
    out = f"/run/slurmkit-{name}.start"
    alive = f"{{ {_running_check(name)}; }}"

    # fail WHAT [CODE]: the line naming what happened, the start's output and the daemon's words, then exit.
    fail = (f"fail() {{ {{ echo \"{DAEMON_FAILED} {name} $1\"; cat {out} 2>/dev/null; {_diagnose(name, log)}; }} >&2; "
            f"exit ${{2:-1}}; }}; ")
    before = f"{CONTROLLER_WAIT}; " if svc.get("wait_controller") and not controller_answers else ""
    after = ""
    if svc.get("answers"):
        after = f"{_wait(UP_SECONDS, f'{_PING} && {{ echo {ANSWERS}; break; }}; {alive} || fail exited')}; "
    up = _wait(UP_SECONDS, f"{alive} && break; {{ read -r pid < {svc['pidfile']} && [ -n \"$pid\" ] && "
                           f"! [ -d /proc/$pid ]; }} 2>/dev/null && break")
    gone = f"{{ read -r pid < {svc['pidfile']}; }} 2>/dev/null"
    return (f"{fail}{before}if {SYSTEMD_TEST}; then systemctl enable --now {svc['unit']} >{out} 2>&1 || "
            f"fail \"failed to start (exit code $?)\" $?; {up}; {alive} || fail exited; {after}exit 0; fi; "
            f"rm -f {svc['pidfile']}; "
            f"{svc['start']} </dev/null >{out} 2>&1 || fail \"exited with exit code $?\" $?; "
            f"{up}; {alive} || {{ {gone} && fail exited; fail 'did not start within {UP_SECONDS} s'; }}; "
            f"{after}exit 0")


def _stop_script(name: str) -> str:
    svc = SERVICES[name]
    return (f"if {SYSTEMD_TEST}; then systemctl stop {svc['unit']}; exit $?; fi; "
            f"{{ {_pid_check(name)}; }} 2>/dev/null || exit 0; "
            f"kill $pid; {_loop(100, '[ -d /proc/$pid ] || exit 0; sleep 0.1')}; kill -9 $pid")


def restart_service(conn, name: str, log: str | None = None) -> None:
    """Stop the daemon (systemd's stop, or by pid file) and start it again as :func:`_start_script` does, in one
    command; a daemon that does not come back raises CommandError with its own words (``log``: where it logs)."""
    script = f"({_stop_script(name)}) && {{ {_start_script(name, log=log)}\n}}"
    r = conn.run(script, check=False)
    if not r.ok:
        raise CommandError(f"restart {name}", r.exit_code, r.stdout, r.stderr or r.stdout, host=conn.name,
                           extra={"script": script})


# ---------------------------------------------------------------------------------------------------------
# The probe: one command per host reads everything the steps check (packages, owners, modes, checksums, daemons),
# so a host that is already right costs one round trip.


@dataclass
class Probe:
    installed: set[str] = field(default_factory=set)
    stat: dict[str, tuple[str, str, str] | None] = field(default_factory=dict)
    sha: dict[str, str | None] = field(default_factory=dict)
    running: dict[str, bool] = field(default_factory=dict)


def packages_script(packages: list[str]) -> str:
    """Shell that prints ``@@pkg NAME STATUS`` for each of ``packages`` dpkg knows.

    It reads dpkg's status database (/var/lib/dpkg/status, the file dpkg-query reads; deb822 paragraphs, each
    starting with its Package line, its Status line at most three lines on: dpkg writes Package, then Essential
    and Protected when set, then Status) with one fixed-string grep, whose lines a loop of shell builtins turns
    into the report: 2 ms a host where awk over the whole file took 6 and dpkg-query more (it loads more of the
    database), which counts when 16 or 64 hosts share one machine. Where dpkg left status changes not yet merged
    into that file (in updates/, after an interrupted run), dpkg-query answers instead."""
    q = " ".join(shlex.quote(p) for p in packages)
    query = f"dpkg-query -W -f='@@pkg ${{Package}} ${{Status}}\\n' {q} 2>/dev/null"
    want = " ".join(f"-e {shlex.quote('Package: ' + p)}" for p in packages)
    scan = (f"grep -F -x -A3 {want} /var/lib/dpkg/status 2>/dev/null | {{ p=; while IFS= read -r l; do case $l in "
            f"'Package: '*) p=${{l#Package: }};; 'Status: '*) [ -n \"$p\" ] && echo \"@@pkg $p ${{l#Status: }}\"; "
            f"p=;; esac; done; }}")
    return (f"u=; for f in /var/lib/dpkg/updates/[0-9]*; do [ -e \"$f\" ] && u=1; break; done; "
            f"if [ -n \"$u\" ]; then {query}; else {scan}; fi")


def probe_script(steps: list[Step]) -> tuple[str, list[str]]:
    """Shell that reports, for these steps, what the host has: one awk (dpkg's status), one stat and one sha256sum
    for all paths, daemons by shell builtins (few processes: on a busy machine each one counts). Returns (script,
    paths it asks about)."""
    lines = []
    packages = sorted({p for st in steps if st.action == "packages" for p in st.args})
    if packages:
        lines.append(packages_script(packages))
    paths = [st.args["dest"] if st.action == "file" else st.args["path"] for st in steps if st.action in ("file", "directory")]
    files = [st.args["dest"] for st in steps if st.action == "file"]
    if paths:
        lines.append("stat -c '@@stat %U %G %a %n' -- " + " ".join(shlex.quote(p) for p in paths) + " 2>/dev/null")
    if files:
        lines.append("sha256sum -- " + " ".join(shlex.quote(p) for p in files) + " 2>/dev/null")  # "SUM  PATH"
    for st in steps:
        if st.action == "service":
            name = st.args["name"]
            lines.append(f"if {{ {_running_check(name)}; }} >/dev/null 2>&1; then echo '@@svc {name} 1'; "
                         f"else echo '@@svc {name} 0'; fi")
    lines.append("true")
    return "\n".join(lines), paths


_SHA_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


def parse_probe(text: str, paths: list[str]) -> Probe:
    """The probe's report; a path it does not mention does not exist (stat and sha256sum skip missing files)."""
    probe = Probe()
    wanted = set(paths)
    for line in text.splitlines():
        if not line.startswith("@@"):
            sha = _SHA_LINE.fullmatch(line)  # sha256sum's own line
            if sha and sha.group(2) in wanted:
                probe.sha[sha.group(2)] = sha.group(1)
            continue
        tag = line.split(" ", 1)[0]
        if tag == "@@pkg" and line.endswith("install ok installed"):
            probe.installed.add(line.split()[1])
        elif tag == "@@stat":
            parts = line.split(" ", 4)
            if len(parts) == 5 and parts[4] in wanted:
                probe.stat[parts[4]] = (parts[1], parts[2], parts[3])
        elif tag == "@@svc":
            parts = line.split()
            probe.running[parts[1]] = parts[2] == "1"
    return probe


# ---------------------------------------------------------------------------------------------------------
# Steps


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def octal(mode: str) -> str:
    """``"0644"`` -> ``"644"``, as ``stat -c %a`` prints it."""
    return format(int(mode, 8), "o")


@dataclass
class Context:
    """What a host's steps share. Changes that need no answer (a file put in place, a directory's owner and
    mode, a removal, a service start) are deferred and sent, in step order, with the next command that must run
    anyway (a package install, a guarded command's check, the end of the playbooks), so a new host costs two
    commands (the probe, then every change) and a converged one costs one; a deferred change that fails still
    fails its own step, and the steps after it are skipped. The files of those changes travel on that command's
    stdin (``remote.pack``), unpacked where the first of them was staged."""

    probe: Probe
    sources: dict[str, bytes]
    secrets: set[str]
    dry_run: bool
    report: HostReport
    pending: list[tuple[int, str, str]] = field(default_factory=list)  # (index of the step's result, shell, label)
    uploads: list[Upload] = field(default_factory=list)  # the files the pending changes put in place
    # True once the caller knows the primary controller answers (it may wait for that a while); None: never known
    controller_answers: Callable[[], bool] | None = None
    node: str = ""  # the host's name (its NodeName on a compute node)

    def defer(self, command: str, label: str | None = None) -> None:
        """Run ``command`` with the next round trip; ``label`` names it in a failure (default: the command)."""
        self.pending.append((len(self.report.steps), command, label or command))

    def stage(self, upload: Upload) -> None:
        """Send ``upload`` with the pending changes and put it in place at this point of them."""
        if not self.uploads:
            self.defer(UNPACK, "unpack the files sent")  # a failed unpack fails the step that staged the first file
        self.uploads.append(upload)
        self.defer(upload.move(), f"put {upload.path} in place")


DEFERRED_FAILED = 97


def run_with_pending(conn, ctx: Context, command: str = "true", timeout: float | None = 300):
    """Run the deferred changes, then ``command``, in one round trip. A deferred change that fails marks its
    own step failed (a CommandError named by its label, with its exit code and output; the script in
    ``extra["script"]``) and raises; ``command`` failing raises CommandError for the step running it."""
    lines = [f"{{ {cmd}\n}} || {{ rc=$?; echo \"@@deferred-failed {i} $rc\" >&2; exit {DEFERRED_FAILED}; }}"
             for i, cmd, _ in ctx.pending]
    pending, ctx.pending = ctx.pending, []
    files, ctx.uploads = (pack(ctx.uploads) if ctx.uploads else None), []
    script = "\n".join(lines + [command])
    try:
        r = conn.run(script, check=False, input=files, timeout=timeout)
    except CommandError as exc:  # timed out or cut: name what was running, not the whole script
        what = ", ".join(label for _, _, label in pending) + ("" if command == "true" else f", then {command}")
        raise CommandError(what, exc.exit_code_, exc.stdout, exc.stderr, host=conn.name, extra={"script": script}) from None
    marker = re.search(r"@@deferred-failed (\d+) (\d+)\n?", r.stderr)
    if r.exit_code == DEFERRED_FAILED and marker:
        i, rc = int(marker.group(1)), int(marker.group(2))
        cmd, label = next((c, lb) for j, c, lb in pending if j == i)
        err = CommandError(label, rc, "", r.stderr.replace(marker.group(0), "").strip(), host=conn.name,
                           extra={"script": cmd})
        ctx.report.steps[i] = StepResult(ctx.report.steps[i].step, "failed", _short(err), error=err)
        for j, _, _ in pending:  # the script stopped there: the later deferred changes were not made
            if j > i:
                ctx.report.steps[j] = StepResult(ctx.report.steps[j].step, "skipped", "an earlier step failed")
        raise DeferredFailed(i)
    if not r.ok:
        raise CommandError(command, r.exit_code, r.stdout, r.stderr, host=conn.name)
    if ANSWERS in r.stdout:
        ctx.report.notified.add("answers:slurmctld")
    return r


class DeferredFailed(Exception):
    """An earlier step's deferred change failed (that step carries the error)."""

    def __init__(self, index: int):
        super().__init__(f"step {index} failed")
        self.index = index


def run_step(conn, step: Step, ctx: Context) -> StepResult:
    try:
        return _STEP[step.action](conn, step, ctx)
    except DeferredFailed:
        return StepResult(step, "skipped", "an earlier step failed")
    except Exception as exc:  # a failed step is data; the host's remaining steps are skipped by the caller
        return StepResult(step, "failed", _short(exc), error=exc)


def _short(exc: BaseException) -> str:
    from slurmkit.remote import error_summary

    return error_summary(exc)


POLICY_MARK = "# slurmkit bootstrap: no daemon starts while it installs packages"


def without_daemon_starts(command: str, rc_d: str = "/usr/sbin/policy-rc.d") -> str:
    """Shell that runs ``command`` (a package install) with daemon starts blocked, exiting with its status.

    Debian's maintainer scripts start each daemon they install; bootstrap starts them itself once their
    configuration is in place (a slurmd started before slurm.conf exists tries configless DNS SRV until
    systemd's start timeout, ~90 s). A policy-rc.d of ours (exit 101) blocks those starts for the install only
    (units are still enabled): written only where none is, or where ours was left by a run killed mid-install
    (its marker line), and removed on exit, hangup or termination; a site's own policy-rc.d is left as it is."""
    return (f"own=; if [ ! -e {rc_d} ] || grep -qx '{POLICY_MARK}' {rc_d} 2>/dev/null; then "
            f"printf '#!/bin/sh\\n{POLICY_MARK}\\nexit 101\\n' > {rc_d} && chmod 755 {rc_d} && own=1; fi; "
            f"done_() {{ [ -z \"$own\" ] || rm -f {rc_d}; }}; trap 'done_; exit 129' HUP INT TERM; "
            f"( {command} ); rc=$?; done_; exit $rc")


def _packages(conn, step, ctx: Context) -> StepResult:
    missing = [n for n in step.args if n not in ctx.probe.installed]
    if not missing:
        return StepResult(step, "ok", "installed")
    if ctx.dry_run:
        return StepResult(step, "changed", f"would install {' '.join(missing)}")
    install = "apt-get install -y -qq --no-install-recommends " + " ".join(shlex.quote(n) for n in missing)
    guarded = without_daemon_starts(install)
    run_with_pending(conn, ctx, f"export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && ( {guarded} )",
                     timeout=1800)
    return StepResult(step, "changed", f"installed {' '.join(missing)}")


def _file(conn, step, ctx: Context) -> StepResult:
    a = step.args
    dest, src = a["dest"], a["source"]
    mode = a.get("mode", "0644")
    owner, group = a.get("owner", "root"), a.get("group", a.get("owner", "root"))
    want = ctx.sources.get(src)
    st, have_sha = ctx.probe.stat.get(dest), ctx.probe.sha.get(dest)
    exists = st is not None
    secret = src in ctx.secrets
    content_same = exists and want is not None and have_sha == sha256(want)
    # The old text is read only when it will differ: for the diff, and to decide reconfigure or restart.
    have = conn.read(dest) if exists and not content_same and not secret else None
    if dest.startswith("/etc/slurm/") and not content_same:
        ctx.report.old_files[dest] = None if have is None else have.decode(errors="replace")
    if want is None:
        if not exists:
            return StepResult(step, "ok", "not needed")
        if not ctx.dry_run:
            ctx.defer(f"rm -f {shlex.quote(dest)}", f"remove {dest}")
        return StepResult(step, "changed", f"{'would remove' if ctx.dry_run else 'removed'} {dest} (not rendered for this cluster)",
                          diff="" if secret else _diff(dest, have or b"", b""))
    meta_same = st == (owner, group, octal(mode))
    if content_same and meta_same:
        return StepResult(step, "ok", "up to date")
    what = "content" if not content_same else f"owner/mode {' '.join(st)} -> {owner} {group} {mode}"
    diff = "" if content_same else (f"(secret {dest} differs: content not shown)\n" if secret else _diff(dest, have or b"", want))
    if not ctx.dry_run:
        if content_same:
            q = shlex.quote(dest)
            ctx.defer(f"chown {shlex.quote(owner)}:{shlex.quote(group)} {q} && chmod {mode} {q}", f"set owner and mode of {dest}")
        else:
            ctx.stage(Upload(dest, want, int(mode, 8), owner, group))
    return StepResult(step, "changed", f"{'would update' if ctx.dry_run else 'updated'} {dest} ({what})", diff=diff)


def _diff(dest: str, old: bytes, new: bytes) -> str:
    return "".join(difflib.unified_diff(old.decode(errors="replace").splitlines(True), new.decode(errors="replace").splitlines(True),
                                        fromfile=f"{dest} (on host)", tofile=f"{dest} (rendered)"))


def _directory(conn, step, ctx: Context) -> StepResult:
    a = step.args
    path, mode = a["path"], a.get("mode", "0755")
    owner, group = a.get("owner", "root"), a.get("group", a.get("owner", "root"))
    st = ctx.probe.stat.get(path)
    if st == (owner, group, octal(mode)):
        return StepResult(step, "ok", "present")
    if not ctx.dry_run:
        q = shlex.quote(path)
        ctx.defer(f"install -d -o {shlex.quote(owner)} -g {shlex.quote(group)} -m {mode} {q}", f"make {path}")  # one process, not three
    verb = ("would create" if ctx.dry_run else "created") if st is None else ("would fix" if ctx.dry_run else "fixed")
    return StepResult(step, "changed", f"{verb} {path}")


def _service(conn, step, ctx: Context) -> StepResult:
    name = step.args["name"]
    if ctx.probe.running.get(name):
        return StepResult(step, "ok", "running")
    if ctx.dry_run:
        return StepResult(step, "changed", f"would start {name}")
    # Deferred like a file's rename: the start runs after the changes before it and before the ones after it, in
    # the host's next (usually last) command. A subshell keeps the script's exits its own.
    known = bool(SERVICES[name].get("wait_controller") and ctx.controller_answers and ctx.controller_answers())
    log = daemon_log(name, ctx.sources.get("rendered/slurm.conf"), ctx.node or conn.name)
    ctx.defer(f"( {_start_script(name, controller_answers=known, log=log)}\n)", f"start {name}")
    ctx.report.notified.add(f"started:{name}")
    return StepResult(step, "changed", f"started {name}")


def _command(conn, step, ctx: Context) -> StepResult:
    a = step.args
    if ctx.pending and not ctx.dry_run:
        run_with_pending(conn, ctx)  # the check may read what earlier steps changed
    if a.get("unless") and conn.run(a["unless"], check=False).ok:
        return StepResult(step, "ok", "already done")
    if ctx.dry_run:
        return StepResult(step, "changed", f"would run: {a['run']}")
    conn.run(a["run"])
    return StepResult(step, "changed", f"ran: {a['run']}")


_STEP = {"packages": _packages, "file": _file, "directory": _directory, "service": _service, "command": _command}


ALSO = "@@also"


def also_script(guard: str, command: str) -> str:
    """Shell that runs ``command`` when ``guard`` exits 0, its stdout between ``@@also`` and ``@@also-end RC``
    (its stderr dropped; a subshell keeps its exits its own): a read the caller wants from this host in the probe's
    round trip."""
    # The newline before the end line is the script's own (the command's output may not end in one).
    return (f"if {{ {guard}; }} >/dev/null 2>&1; then echo {ALSO}; ( {command}\n) 2>/dev/null; "
            f"rc=$?; echo; echo \"{ALSO}-end $rc\"; fi")


def split_also(text: str) -> tuple[str, tuple[int, str] | None]:
    """The probe's output without the ``also`` block, and that block's (exit code, stdout) or None."""
    start = text.find(f"{ALSO}\n")
    if start < 0 or (start > 0 and text[start - 1] != "\n"):
        return text, None
    m = re.compile(rf"^{ALSO}-end (\d+)$", re.M).search(text, start)
    if not m:
        return text[:start], None  # cut short: as if it had not run
    return text[:start] + text[m.end() + 1:], (int(m.group(1)), text[start + len(ALSO) + 1:m.start() - 1])


def apply_playbooks(conn, role: str, playbooks: list[Playbook], sources: dict[str, bytes], secrets: set[str],
                    dry_run: bool, controller_answers: Callable[[], bool] | None = None,
                    also: str | None = None) -> HostReport:
    """Run every step that applies to this host's role, in order; after a failure the rest are skipped.

    One probe command reads what every step checks; only steps that change something cost more round trips.
    ``controller_answers``: asked before a slurmd start (see Context). ``also``: shell (:func:`also_script`)
    run at the end of the probe; what it printed is ``report.also``."""
    report = HostReport(conn.name, role)
    steps = [st for pb in playbooks if pb.hosts in ("all", "heads" if role == "head" else "computes") for st in pb.steps]
    script, paths = probe_script(steps)
    if also:
        script = f"{script}\n{also}\ntrue"
    text, report.also = split_also(conn.run(script).stdout)
    ctx = Context(parse_probe(text, paths), sources, secrets, dry_run, report,
                  controller_answers=controller_answers, node=conn.name)
    for step in steps:
        if report.failed:
            report.steps.append(StepResult(step, "skipped", "an earlier step failed"))
            continue
        res = run_step(conn, step, ctx)
        report.steps.append(res)
    if ctx.pending and not report.failed:
        try:
            run_with_pending(conn, ctx)
        except DeferredFailed:
            pass  # the step whose change failed carries the error
    for res in report.steps:
        if res.status == "changed" and res.step.notify:
            report.notified.add(res.step.notify)
    return report


# ---------------------------------------------------------------------------------------------------------
# What a slurm.conf change needs (pure)

# Keys whose change Slurm 22.05 does not take on `scontrol reconfigure`: daemons must restart (slurm.conf(5):
# "changes to ... require a restart"; node definitions are rebuilt only at start).
RESTART_KEYS = {
    "slurmctldhost", "controlmachine", "backupcontroller", "slurmctldport", "slurmdport", "authtype", "authinfo",
    "cryptotype", "credtype", "slurmuser", "slurmduser", "selecttype", "selecttypeparameters", "proctracktype",
    "taskplugin", "grestypes", "topologyplugin", "switchtype", "mpidefault", "statesavelocation", "slurmdspooldir",
    "slurmdparameters", "clustername", "jobacctgathertype", "accountingstoragetype", "slurmctldpidfile",
    "slurmdpidfile", "slurmctldlogfile", "slurmdlogfile", "launchtype",
}


def parse_conf(text: str) -> list[tuple[str, str]]:
    """slurm.conf-style text -> (lowercased key, rest of line) per non-comment line."""
    out = []
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out.append((key.strip().lower(), value.strip()))
    return out


def slurm_conf_action(old: str | None, new: str) -> Literal["none", "reconfigure", "restart"]:
    """How to apply a slurm.conf change: nothing, `scontrol reconfigure`, or a restart of the daemons."""
    if old is None:
        return "restart"
    if old == new:
        return "none"
    a, b = parse_conf(old), parse_conf(new)
    if a == b:
        return "none"
    def pick(entries, pred):
        return sorted(e for e in entries if pred(e[0]))
    if pick(a, lambda k: k in RESTART_KEYS) != pick(b, lambda k: k in RESTART_KEYS):
        return "restart"
    if pick(a, lambda k: k in ("nodename", "nodeset")) != pick(b, lambda k: k in ("nodename", "nodeset")):
        return "restart"
    return "reconfigure"

