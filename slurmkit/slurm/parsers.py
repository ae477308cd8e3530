"""Pure parsers of Slurm command output -> typed records. No process is spawned here.

Sources, by preference: ``squeue --json`` / ``sinfo --json`` (openapi v0.0.38 in 22.05), ``scontrol -o show
node|job|partition`` (one record per line), ``scontrol ping``, ``scontrol show config``, ``sbatch --parsable``,
``sacct --parsable2``.
Tested on outputs captured from Slurm 22.05.8 (tests/fixtures/slurm-22.05/SOURCES.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from slurmkit.errors import SlurmkitError
from slurmkit.slurm import state as _state

# Normalised job states. Anything else Slurm reports is kept upper-case as it is (``raw_state`` keeps the original).
JOB_STATES = (
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT", "UNKNOWN",
)
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "REVOKED", "SPECIAL_EXIT",
})
# Compact codes (squeue %t, sacct) and old spellings.
_JOB_ALIASES = {
    "PD": "PENDING", "CF": "CONFIGURING", "R": "RUNNING", "CG": "COMPLETING", "S": "SUSPENDED", "RQ": "REQUEUED",
    "RS": "RESIZING", "CD": "COMPLETED", "F": "FAILED", "CA": "CANCELLED", "TO": "TIMEOUT", "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY", "PR": "PREEMPTED", "BF": "BOOT_FAIL", "DL": "DEADLINE", "RV": "REVOKED",
    "SE": "SPECIAL_EXIT", "CANCELED": "CANCELLED",
}
# Job state flags Slurm may list beside the base state (newer JSON: ``"job_state": ["RUNNING", "COMPLETING"]``).
_JOB_FLAGS = {"COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING", "STAGE_OUT", "SIGNALING", "LAUNCH_FAILED",
              "UPDATE_DB", "POWER_UP_NODE", "RECONFIG_FAIL", "RESV_DEL_HOLD", "REQUEUE_FED", "REQUEUE_HOLD",
              "STOPPED", "REVOKED"}


class SlurmOutputError(SlurmkitError):
    """A Slurm command answered with something that cannot be read, or with errors in its JSON."""


@dataclass
class JobInfo:
    job_id: str
    state: str  # normalised, one of JOB_STATES (or the upper-cased raw state when unknown to slurmkit)
    name: str = ""
    raw_state: str = ""
    reason: str = ""
    nodes: list[str] = field(default_factory=list)
    node_count: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    partition: str = ""
    user: str = ""
    stdout: str = ""
    stderr: str = ""
    work_dir: str = ""
    source: str = ""  # which command told: squeue, sacct, scontrol, none

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass
class NodeInfo:
    """``state`` is the base state upper-cased (IDLE, ALLOCATED, MIXED, DOWN, ...); ``flags`` the rest
    (DRAIN, NOT_RESPONDING, MAINTENANCE, ...), whatever the version printed (``IDLE+DRAIN``, ``down*``, lists)."""

    name: str
    state: str
    flags: tuple[str, ...] = ()
    reason: str = ""
    cpus: int | None = None
    memory_mb: int | None = None
    gres: str = ""
    address: str = ""
    partitions: tuple[str, ...] = ()

    @property
    def state_text(self) -> str:
        return "+".join((self.state, *self.flags))

    # What the state means: the rules are in slurmkit.slurm.state.
    @property
    def is_down(self) -> bool:
        return _state.is_down(self)

    @property
    def is_drained(self) -> bool:
        return _state.is_drained(self)

    @property
    def is_coming_up(self) -> bool:
        return _state.is_coming_up(self)

    @property
    def is_usable(self) -> bool:
        return _state.is_usable(self)

    @property
    def is_ready(self) -> bool:
        return _state.is_ready(self)


@dataclass
class PartitionInfo:
    name: str
    state: str
    nodes: str = ""
    default: bool = False
    max_time: str = ""
    total_nodes: int | None = None
    total_cpus: int | None = None


@dataclass
class Controller:
    """One slurmctld from ``scontrol ping``: ``role`` is ``primary``, ``backup1``, ...; ``up`` whether it answered."""

    host: str
    role: str
    up: bool

    @property
    def primary(self) -> bool:
        return self.role == "primary"


# ---------------------------------------------------------------------------------------------------------
# States


def normalise_job_state(value: str | list | None) -> str:
    """``"RUNNING"``, ``["RUNNING"]`` (newer JSON), ``["PENDING", "REQUEUED"]``, ``"CANCELLED by 0"`` (sacct),
    ``"CD"`` -> a member of JOB_STATES (or the upper-cased word when unknown)."""
    if value is None:
        return "UNKNOWN"
    items = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    words = [_JOB_ALIASES.get(w, w) for w in (i.strip().split(" ")[0].upper() for i in items) if w]
    if not words:
        return "UNKNOWN"
    base = [w for w in words if w not in _JOB_FLAGS]
    return base[0] if base else words[0]


_NODE_BASE = {"IDLE", "ALLOCATED", "MIXED", "DOWN", "FUTURE", "UNKNOWN", "ERROR", "COMPLETING", "PLANNED",
              "INVAL", "FAIL", "DRAINED", "DRAINING", "BLOCKED"}
_NODE_ALIASES = {"ALLOC": "ALLOCATED", "MIX": "MIXED", "UNK": "UNKNOWN", "DRAIN": "DRAIN", "DRNG": "DRAINING",
                 "COMP": "COMPLETING", "MAINT": "MAINTENANCE", "RESV": "RESERVED", "NPC": "NOT_RESPONDING",
                 "POWER_DOWN": "POWERED_DOWN"}
# sinfo's suffixes on the short/long state: * not responding, ~ powered off, # powering up, ! pending power down,
# % powering down, $ maintenance reservation, @ reboot pending, ^ reboot issued, - planned.
_NODE_SUFFIX = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP", "!": "POWER_DOWN_PENDING",
                "%": "POWERING_DOWN", "$": "MAINTENANCE", "@": "REBOOT_REQUESTED", "^": "REBOOT_ISSUED",
                "-": "PLANNED"}


def parse_node_state(value: str | list | None, flags: list | tuple = ()) -> tuple[str, tuple[str, ...]]:
    """``IDLE+DRAIN`` -> (IDLE, (DRAIN,)); ``down*`` -> (DOWN, (NOT_RESPONDING,)); ``["IDLE", "DRAIN"]`` ->
    (IDLE, (DRAIN,)); ``drain`` alone (sinfo) -> (IDLE, (DRAIN,)). 22.05's sinfo --json gives ``state`` and a
    separate ``state_flags`` list: pass both."""
    items: list[str] = []
    for v in (value if isinstance(value, list) else [value or "UNKNOWN"]):
        items += str(v).split("+")
    items += [str(f) for f in flags]
    words: list[str] = []
    for item in items:
        item = item.strip()
        while item and item[-1] in _NODE_SUFFIX:
            words.append(_NODE_SUFFIX[item[-1]])
            item = item[:-1]
        if item:
            words.append(_NODE_ALIASES.get(item.upper(), item.upper()))
    base = next((w for w in words if w in _NODE_BASE), None)
    rest = [w for w in words if w != base]
    if base is None:
        # A bare flag (sinfo prints "drain" for an idle drained node).
        base = "IDLE" if "DRAIN" in rest else (rest.pop(0) if rest else "UNKNOWN")
    if base in ("DRAINED", "DRAINING"):
        # sinfo's summary words: drained = idle + drain, draining = allocated/mixed + drain.
        base, rest = ("IDLE" if base == "DRAINED" else "ALLOCATED"), ["DRAIN", *[w for w in rest if w != "DRAIN"]]
    seen: list[str] = []
    for w in rest:
        if w not in seen:
            seen.append(w)
    return base, tuple(seen)


# ---------------------------------------------------------------------------------------------------------
# JSON (squeue --json, sinfo --json)


def _number(value: Any) -> int | None:
    """22.05 prints plain numbers; 23.02+ prints ``{"set": true, "infinite": false, "number": N}``."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _load_json(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SlurmOutputError(f"{what}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SlurmOutputError(f"{what}: expected a JSON object")
    # Slurm 22.05 exits 0 when the controller does not answer, with the reason only in "errors".
    errors = data.get("errors") or []
    errors = [e for e in (errors if isinstance(errors, list) else [errors]) if e]
    if errors:
        msgs = "; ".join(f"{e.get('source', '')}: {e.get('description') or e.get('error')}" if isinstance(e, dict)
                         else str(e) for e in errors)
        raise SlurmOutputError(f"{what} reported errors: {msgs}")
    return data


def _records(data: dict, key: str, what: str) -> list[dict]:
    """``data[key]``: a list of JSON objects (none when absent); any other shape is a SlurmOutputError."""
    items = data.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SlurmOutputError(f"{what}: {key!r} is not a list of objects")
    return items


def _text(value: Any) -> str:
    """A string field; null or another type (a garbled record) reads as empty."""
    return value if isinstance(value, str) else ""


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _exit_code(value: Any) -> tuple[int | None, int | None]:
    """(exit code, signal). 22.05 JSON: the raw wait status (768 = exit 3); newer: ``{"return_code": ...,
    "signal": {"id": ...}}``."""
    if isinstance(value, dict):
        code = _number(value.get("return_code"))
        sig = value.get("signal")
        sig = _number(sig.get("id") if isinstance(sig, dict) else sig)
        return code, sig or None
    status = _number(value)
    if status is None:
        return None, None
    return (status >> 8) & 0xFF, (status & 0x7F) or None


def _split_nodes(text: str) -> list[str]:
    from slurmkit import hostlist

    text = (text or "").strip()
    if not text or text in ("(null)", "None"):
        return []
    try:
        return hostlist.expand(text)
    except hostlist.HostlistError:
        return [text]


def _output_paths(stdout: str, stderr: str, job_id: str, user: str, name: str, work_dir: str) -> tuple[str, str]:
    """A job's output files as paths. 26.05 (squeue --json) gives the pattern as submitted (``slurm-%j.out``,
    relative to the job's working directory) and an empty stderr (merged into stdout; 26.05's scontrol prints
    ``StdErr=`` empty too); 22.05 and 24.11 give both expanded. Patterns expanded: %j %u %x %%; others left."""
    def expand(path: str) -> str:
        if not path:
            return ""
        path = re.sub(r"%(%|j|u|x)", lambda m: {"%": "%", "j": job_id, "u": user, "x": name}[m[1]], path)
        return path if path.startswith("/") or not work_dir else f"{work_dir.rstrip('/')}/{path}"
    out = expand(stdout)
    return out, expand(stderr) or out


def parse_squeue_json(text: str) -> list[JobInfo]:
    """``squeue --json`` (every job the controller remembers; 22.05 ignores filters: filter the result)."""
    data = _load_json(text, "squeue --json")
    out = []
    for j in _records(data, "jobs", "squeue --json"):
        raw = j.get("job_state")
        code, sig = _exit_code(j.get("exit_code"))
        stdout, stderr = _output_paths(_text(j.get("standard_output")), _text(j.get("standard_error")),
                                       str(j.get("job_id")), _text(j.get("user_name")), _text(j.get("name")),
                                       _text(j.get("current_working_directory")))
        out.append(JobInfo(
            job_id=str(j.get("job_id")),
            name=_text(j.get("name")),
            state=normalise_job_state(raw),
            raw_state="+".join(map(str, raw)) if isinstance(raw, list) else str(raw or ""),
            reason=_text(j.get("state_reason")),
            nodes=_split_nodes(_text(j.get("nodes"))),
            node_count=_number(j.get("node_count")),
            exit_code=code,
            signal=sig,
            partition=_text(j.get("partition")),
            user=_text(j.get("user_name")),
            stdout=stdout,
            stderr=stderr,
            work_dir=_text(j.get("current_working_directory")),
            source="squeue",
        ))
    return out


def parse_sinfo_json(text: str) -> list[NodeInfo]:
    """``sinfo --json`` node records. 22.05 (data_parser 0.0.38): top-level ``nodes``, one object per node,
    ``state`` string + ``state_flags`` list. 24.11 (v0.0.42) and 26.05 (v0.0.45): no ``nodes`` but ``sinfo``, one
    object per group of like nodes in one partition (``nodes.nodes`` its names, ``node.state`` a list, ``cpus`` /
    ``memory`` with ``maximum``, ``reason.description``, ``partition.name``): one NodeInfo per node, partitions
    merged across groups; ``address`` only where ``nodes.addresses`` pairs with the names (empty in both)."""
    data = _load_json(text, "sinfo --json")
    if "nodes" not in data and "sinfo" in data:
        return _sinfo_groups(_records(data, "sinfo", "sinfo --json"))
    out = []
    for n in _records(data, "nodes", "sinfo --json"):
        state, flags = parse_node_state(n.get("state"), _names(n.get("state_flags")))
        out.append(NodeInfo(
            name=_text(n.get("name")), state=state, flags=flags, reason=_text(n.get("reason")),
            cpus=_number(n.get("cpus")), memory_mb=_number(n.get("real_memory")), gres=_text(n.get("gres")),
            address=_text(n.get("address")), partitions=_names(n.get("partitions")),
        ))
    return out


def _field(record: dict, *path: str) -> Any:
    for key in path:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _sinfo_groups(groups: list[dict]) -> list[NodeInfo]:
    nodes: dict[str, NodeInfo] = {}
    for g in groups:
        names = [n for entry in _names(_field(g, "nodes", "nodes")) for n in _split_nodes(entry)]
        addresses = _names(_field(g, "nodes", "addresses"))
        state, flags = parse_node_state(_field(g, "node", "state"))
        partition = _text(_field(g, "partition", "name"))
        for i, name in enumerate(names):
            if name in nodes:
                if partition and partition not in nodes[name].partitions:
                    nodes[name].partitions += (partition,)
                continue
            nodes[name] = NodeInfo(
                name=name, state=state, flags=flags, reason=_text(_field(g, "reason", "description")),
                cpus=_number(_field(g, "cpus", "maximum")), memory_mb=_number(_field(g, "memory", "maximum")),
                gres=_text(_field(g, "gres", "total")),
                address=addresses[i] if len(addresses) == len(names) else "",
                partitions=(partition,) if partition else (),
            )
    return list(nodes.values())


# ---------------------------------------------------------------------------------------------------------
# scontrol -o (one record per line, Key=Value separated by spaces)

# A key starts a field only after a space: values such as OS=Linux 6.1 #1 SMP or Reason=... [root@...] hold
# spaces but no " Key=" inside. Reason is last on node lines, and is taken to the end of the line there.
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:.]*)=")


def parse_scontrol_records(text: str, last_key: str | None = None) -> list[dict[str, str]]:
    """One dict per line. ``last_key`` (``Reason`` on node lines) takes the rest of the line, spaces and all."""
    records = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line.strip():
            continue
        rec: dict[str, str] = {}
        matches = list(_KEY.finditer(line))
        for i, m in enumerate(matches):
            key = m.group(1)
            if key == last_key:
                rec[key] = line[m.end():].strip()
                break
            end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
            rec[key] = line[m.end():end].strip()
        if rec:
            records.append(rec)
    return records


def _null(value: str | None) -> str:
    return "" if value in (None, "(null)", "N/A", "None") else value


def parse_scontrol_nodes(text: str) -> list[NodeInfo]:
    out = []
    for r in parse_scontrol_records(text, last_key="Reason"):
        state, flags = parse_node_state(r.get("State"))
        out.append(NodeInfo(
            name=r.get("NodeName", ""), state=state, flags=flags, reason=_null(r.get("Reason")),
            cpus=_number(r.get("CPUTot")), memory_mb=_number(r.get("RealMemory")), gres=_null(r.get("Gres")),
            address=_null(r.get("NodeAddr")), partitions=tuple(p for p in _null(r.get("Partitions")).split(",") if p),
        ))
    return out


def parse_scontrol_jobs(text: str) -> list[JobInfo]:
    out = []
    for r in parse_scontrol_records(text):
        code, sig = None, None
        if ":" in r.get("ExitCode", ""):
            c, s = r["ExitCode"].split(":", 1)
            code, sig = _number(c), (_number(s) or None)
        stdout, stderr = _output_paths(_null(r.get("StdOut")), _null(r.get("StdErr")), r.get("JobId", ""),
                                       (r.get("UserId") or "").split("(")[0], r.get("JobName", ""),
                                       _null(r.get("WorkDir")))
        out.append(JobInfo(
            job_id=r.get("JobId", ""), name=r.get("JobName", ""), state=normalise_job_state(r.get("JobState")),
            raw_state=r.get("JobState", ""), reason=_null(r.get("Reason")), nodes=_split_nodes(_null(r.get("NodeList"))),
            node_count=_number((r.get("NumNodes") or "").split("-")[0]), exit_code=code, signal=sig,
            partition=_null(r.get("Partition")), user=(r.get("UserId") or "").split("(")[0],
            stdout=stdout, stderr=stderr, work_dir=_null(r.get("WorkDir")),
            source="scontrol",
        ))
    return out


def parse_scontrol_partitions(text: str) -> list[PartitionInfo]:
    return [
        PartitionInfo(
            name=r.get("PartitionName", ""), state=r.get("State", ""), nodes=_null(r.get("Nodes")),
            default=r.get("Default") == "YES", max_time=r.get("MaxTime", ""),
            total_nodes=_number(r.get("TotalNodes")), total_cpus=_number(r.get("TotalCPUs")),
        )
        for r in parse_scontrol_records(text)
    ]


_CONFIG_LINE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_]*(?:\[\d+\])?)\s*= ?(?P<value>.*)$")


def parse_scontrol_config(text: str) -> dict[str, str]:
    """``scontrol show config``: the running slurm.conf settings, ``Key -> value`` as printed (``(null)`` read as
    empty; times keep their unit: ``300 sec``). Only the first block: the sections after it (``Cgroup Support
    Configuration:``, ``MPI Plugins Configuration:``) and the closing ping lines are other files' settings."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        m = _CONFIG_LINE.match(line)
        if m:
            out[m["key"]] = _null(m["value"].strip())
    if not out:
        raise SlurmOutputError(f"scontrol show config printed no setting: {text.strip()[:200]!r}")
    return out


_PING = re.compile(r"^Slurmctld\((?P<role>[^)]+)\) at (?P<host>\S+) is (?P<state>UP|DOWN)", re.M)


def parse_scontrol_ping(text: str) -> list[Controller]:
    """``Slurmctld(primary) at vm is UP`` / ``Slurmctld(backup1) at h2 is DOWN``, one line per controller."""
    return [Controller(m["host"], m["role"], m["state"] == "UP") for m in _PING.finditer(text)]


def parse_sbatch_parsable(text: str) -> str:
    """``sbatch --parsable`` prints ``JOBID`` or ``JOBID;CLUSTER``."""
    first = text.strip().splitlines()[-1] if text.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise SlurmOutputError(f"sbatch --parsable printed no job id: {text.strip()!r}")
    return job_id


SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "NodeList", "Partition", "User")


def parse_sacct_parsable2(text: str) -> list[JobInfo]:
    """``sacct -X -n --parsable2 -o JobID,JobName,State,ExitCode,NodeList,Partition,User``."""
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < len(SACCT_FIELDS):
            continue
        rec = dict(zip(SACCT_FIELDS, parts))
        c, _, s = rec["ExitCode"].partition(":")
        out.append(JobInfo(
            job_id=rec["JobID"], name=rec["JobName"], state=normalise_job_state(rec["State"]), raw_state=rec["State"],
            nodes=_split_nodes(_null(rec["NodeList"]) if rec["NodeList"] != "None assigned" else ""),
            exit_code=_number(c), signal=_number(s) or None, partition=rec["Partition"], user=rec["User"],
            source="sacct",
        ))
    return out


_SRUN_TASK_FAIL = re.compile(r"^srun: error: (?P<node>[^:\s]+): tasks? [0-9,\-]+: (?P<what>.+)$", re.M)


_SRUN_NODE_DOWN = re.compile(
    r"^srun: error: (?:Task launch for StepId=\S+ failed on node (?P<launch>[^:\s]+)|Node failure on (?P<fail>[^:\s]+))",
    re.M)
_SRUN_ABORT = re.compile(r"^(?:srun: Job step aborted|srun: .*Terminating StepId=|slurmstepd\S*: error: \*\*\* STEP .* CANCELLED)", re.M)


def failed_nodes_from_srun(log: str) -> list[str]:
    """Nodes that failed a job step, from srun's messages (first seen first).

    A node srun could not launch on, or reports a node failure for, is the culprit. Otherwise the nodes whose
    tasks failed by themselves (``srun: error: NODE: task N: Exited with exit code C``). Once a step is being
    aborted (``Job step aborted``, ``Terminating StepId=``, a ``STEP ... CANCELLED`` line), the other nodes' tasks
    are reported ``Killed``/``Terminated``: those are collateral, not culprits."""
    down = [m["launch"] or m["fail"] for m in _SRUN_NODE_DOWN.finditer(log)]
    if down:
        return list(dict.fromkeys(down))
    cut = _SRUN_ABORT.search(log)
    seen: list[str] = []
    for m in _SRUN_TASK_FAIL.finditer(log):
        collateral = cut is not None and m.start() > cut.start() and m["what"].strip() in ("Terminated", "Killed")
        if not collateral and m["node"] not in seen:
            seen.append(m["node"])
    return seen