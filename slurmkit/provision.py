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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml

from slurmkit.errors import CommandError, ConfigError, Problem

PLAYBOOK_DIR = Path(__file__).resolve().parent.parent / "playbooks"
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
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    out = []
    for name in names:
        path = directory / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
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

    def count(self, status: Status) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def failed(self) -> bool:
        return any(s.status == "failed" for s in self.steps)


# ---------------------------------------------------------------------------------------------------------
# Services: systemd where the host runs it; otherwise (containers, the local cluster) started directly and
# tracked by pid file. Debian's packages install all three daemons under /usr/sbin.

SERVICES: dict[str, dict[str, str]] = {
    "munge": {"unit": "munge", "pidfile": "/run/munge/munged.pid", "start": "runuser -u munge -- /usr/sbin/munged",
              "comm": "munged"},
    "slurmd": {"unit": "slurmd", "pidfile": "/run/slurmd.pid", "start": "/usr/sbin/slurmd", "comm": "slurmd"},
    "slurmctld": {"unit": "slurmctld", "pidfile": "/run/slurmctld.pid", "start": "/usr/sbin/slurmctld", "comm": "slurmctld"},
}


def has_systemd(conn) -> bool:
    return conn.run("test -d /run/systemd/system", check=False).ok


def service_pid(conn, name: str) -> int | None:
    """PID of a running daemon from its pid file (checked against /proc/PID/comm), else None."""
    svc = SERVICES[name]
    r = conn.run(f"pid=$(cat {svc['pidfile']} 2>/dev/null) && [ \"$(cat /proc/$pid/comm 2>/dev/null)\" = {svc['comm']} ]"
                 f" && echo $pid", check=False)
    return int(r.stdout.strip()) if r.ok and r.stdout.strip().isdigit() else None


def service_running(conn, name: str) -> bool:
    if has_systemd(conn):
        return conn.run(f"systemctl is-active --quiet {SERVICES[name]['unit']}", check=False).ok
    return service_pid(conn, name) is not None


def start_service(conn, name: str) -> None:
    svc = SERVICES[name]
    if has_systemd(conn):
        conn.run(f"systemctl enable --now {svc['unit']}")
        return
    # Daemonizing parents exit after forking; their output goes to a file, not the SSH channel, so the session
    # ends while the daemon lives on in the host's own namespaces.
    out = f"/run/slurmkit-{name}.start"  # /run is per host; /tmp may be shared (the local cluster)
    conn.run(f"{svc['start']} </dev/null >{out} 2>&1; rc=$?; cat {out}; rm -f {out}; exit $rc")
    for _ in range(50):
        if service_pid(conn, name) is not None:
            return
        time.sleep(0.1)
    log = conn.run(f"tail -n 15 /var/log/slurm/{name}.log 2>/dev/null || true", check=False).stdout
    raise CommandError(f"start {name}", None, "", f"{name} did not stay up\n{log}", host=conn.name)


def stop_service(conn, name: str) -> None:
    svc = SERVICES[name]
    if has_systemd(conn):
        conn.run(f"systemctl stop {svc['unit']}")
        return
    pid = service_pid(conn, name)
    if pid is None:
        return
    conn.run(f"kill {pid}")
    for _ in range(100):
        if conn.run(f"test -d /proc/{pid}", check=False).exit_code != 0:
            return
        time.sleep(0.1)
    conn.run(f"kill -9 {pid}", check=False)


def restart_service(conn, name: str) -> None:
    if has_systemd(conn):
        conn.run(f"systemctl restart {SERVICES[name]['unit']}")
        return
    stop_service(conn, name)
    start_service(conn, name)


# ---------------------------------------------------------------------------------------------------------
# Steps


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stat(conn, path: str) -> tuple[str, str, str] | None:
    r = conn.run(f"stat -c '%U %G %a' {shlex.quote(path)}", check=False)
    if not r.ok:
        return None
    owner, group, mode = r.stdout.split()
    return owner, group, mode


def run_step(conn, step: Step, sources: dict[str, bytes], secrets: set[str], dry_run: bool, report: HostReport) -> StepResult:
    try:
        return _STEP[step.action](conn, step, sources, secrets, dry_run, report)
    except Exception as exc:  # a failed step is data; the host's remaining steps are skipped by the caller
        return StepResult(step, "failed", _short(exc), error=exc)


def _short(exc: BaseException) -> str:
    from slurmkit.remote import error_summary

    return error_summary(exc)


def _packages(conn, step, sources, secrets, dry_run, report) -> StepResult:
    names = list(step.args)
    q = " ".join(shlex.quote(n) for n in names)
    r = conn.run(f"dpkg-query -W -f='${{Package}} ${{Status}}\\n' {q} 2>/dev/null || true", check=False)
    installed = {ln.split()[0] for ln in r.stdout.splitlines() if ln.endswith("install ok installed")}
    missing = [n for n in names if n not in installed]
    if not missing:
        return StepResult(step, "ok", "installed")
    if dry_run:
        return StepResult(step, "changed", f"would install {' '.join(missing)}")
    conn.run("export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends "
             + " ".join(shlex.quote(n) for n in missing), timeout=1800)
    return StepResult(step, "changed", f"installed {' '.join(missing)}")


def _file(conn, step, sources, secrets, dry_run, report) -> StepResult:
    a = step.args
    dest, src = a["dest"], a["source"]
    mode = a.get("mode", "0644")
    owner, group = a.get("owner", "root"), a.get("group", a.get("owner", "root"))
    want = sources.get(src)
    have = conn.read(dest)
    secret = src in secrets
    if dest.startswith("/etc/slurm/"):
        report.old_files[dest] = None if have is None else have.decode(errors="replace")
    if want is None:
        if have is None:
            return StepResult(step, "ok", "not needed")
        if not dry_run:
            conn.run(f"rm -f {shlex.quote(dest)}")
        return StepResult(step, "changed", f"{'would remove' if dry_run else 'removed'} {dest} (not rendered for this cluster)",
                          diff="" if secret else _diff(dest, have, b""))
    st = _stat(conn, dest) if have is not None else None
    content_same = have is not None and sha256(have) == sha256(want)
    meta_same = st is not None and st == (owner, group, format(int(mode, 8), "o"))
    if content_same and meta_same:
        return StepResult(step, "ok", "up to date")
    what = "content" if not content_same else f"owner/mode {' '.join(st) if st else '?'} -> {owner} {group} {mode}"
    diff = "" if content_same or secret else _diff(dest, have or b"", want)
    if secret and not content_same:
        diff = f"(secret {dest} differs: content not shown)\n"
    if not dry_run:
        conn.write(dest, want, int(mode, 8), owner, group)
    return StepResult(step, "changed", f"{'would update' if dry_run else 'updated'} {dest} ({what})", diff=diff)


def _diff(dest: str, old: bytes, new: bytes) -> str:
    return "".join(difflib.unified_diff(old.decode(errors="replace").splitlines(True), new.decode(errors="replace").splitlines(True),
                                        fromfile=f"{dest} (on host)", tofile=f"{dest} (rendered)"))


def _directory(conn, step, sources, secrets, dry_run, report) -> StepResult:
    a = step.args
    path, mode = a["path"], a.get("mode", "0755")
    owner, group = a.get("owner", "root"), a.get("group", a.get("owner", "root"))
    st = _stat(conn, path)
    want = (owner, group, format(int(mode, 8), "o"))
    if st == want:
        return StepResult(step, "ok", "present")
    if not dry_run:
        q = shlex.quote(path)
        conn.run(f"mkdir -p {q} && chown {shlex.quote(owner)}:{shlex.quote(group)} {q} && chmod {mode} {q}")
    verb = ("would create" if dry_run else "created") if st is None else ("would fix" if dry_run else "fixed")
    return StepResult(step, "changed", f"{verb} {path}")


def _service(conn, step, sources, secrets, dry_run, report) -> StepResult:
    name = step.args["name"]
    if service_running(conn, name):
        return StepResult(step, "ok", "running")
    if dry_run:
        return StepResult(step, "changed", f"would start {name}")
    start_service(conn, name)
    report.notified.add(f"started:{name}")
    return StepResult(step, "changed", f"started {name}")


def _command(conn, step, sources, secrets, dry_run, report) -> StepResult:
    a = step.args
    if a.get("unless") and conn.run(a["unless"], check=False).ok:
        return StepResult(step, "ok", "already done")
    if dry_run:
        return StepResult(step, "changed", f"would run: {a['run']}")
    conn.run(a["run"])
    return StepResult(step, "changed", f"ran: {a['run']}")


_STEP = {"packages": _packages, "file": _file, "directory": _directory, "service": _service, "command": _command}


def apply_playbooks(conn, role: str, playbooks: list[Playbook], sources: dict[str, bytes], secrets: set[str],
                    dry_run: bool) -> HostReport:
    """Run every step that applies to this host's role, in order; after a failure the rest are skipped."""
    report = HostReport(conn.name, role)
    for pb in playbooks:
        if pb.hosts not in ("all", "heads" if role == "head" else "computes"):
            continue
        for step in pb.steps:
            if report.failed:
                report.steps.append(StepResult(step, "skipped", "an earlier step failed"))
                continue
            res = run_step(conn, step, sources, secrets, dry_run, report)
            report.steps.append(res)
            if res.status == "changed" and step.notify:
                report.notified.add(step.notify)
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


NODE_REASON_CONFIG = re.compile(
    r"gres/\w+ count reported lower|Low RealMemory|Low socket\*core\*thread count|Low CPUs|Node unexpectedly rebooted|"
    r"Not responding|invalid", re.I)
