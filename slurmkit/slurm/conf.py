"""Read slurm.conf, gres.conf and topology.conf as production sites write them. Pure (reads files only).

``read_slurm_conf(path)`` / ``parse_slurm_conf(text, source)`` give a :class:`SlurmConf`: settings (every
``key=value`` that is not a node, partition or controller line, keys as written, looked up case-insensitively),
controllers in order, nodes (each name expanded, ``NodeName=DEFAULT`` applied, CPU layout resolved the way
slurmctld resolves it), partitions (``PartitionName=DEFAULT`` applied) and findings (inconsistencies Slurm would
tolerate or warn about). ``parse_gres_conf`` and ``parse_topology_conf`` read the other two. The syntax follows
Slurm's own parser (src/common/parse_config.c): ``key = value`` with blanks around ``=``, values in double
quotes, ``#`` to end of line (``\\#`` is a literal ``#``), a trailing ``\\`` continues the line, keys are
case-insensitive, ``include FILE`` (relative to the including file; bounded depth). Hostlists go through
:mod:`slurmkit.hostlist`. Every error is a :class:`SlurmConfError` naming ``file:line``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from slurmkit import hostlist
from slurmkit.errors import SlurmkitError

MAX_INCLUDE_DEPTH = 8
MAX_TEXT = 8_000_000  # characters in one file; far past any real slurm.conf

_PAIR = re.compile(r'\s*([A-Za-z0-9_.]+)\s*([-+*/]?)=\s*(?:"([^"]*)"|(\S*))')
_INCLUDE = re.compile(r"^\s*include\s+(\S.*?)\s*$", re.IGNORECASE)


class SlurmConfError(SlurmkitError):
    """A Slurm config file that cannot be read: the message names ``file:line``."""


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Record:
    """One logical line: its ``key=value`` pairs in order (keys as written)."""

    pairs: list[tuple[str, str]]
    where: Where

    @property
    def first(self) -> tuple[str, str]:
        return self.pairs[0]

    def get(self, key: str, default: str | None = None) -> str | None:
        k = key.lower()
        for name, value in self.pairs:
            if name.lower() == k:
                return value
        return default


@dataclass(frozen=True)
class Controller:
    name: str
    addr: str | None = None


@dataclass(frozen=True)
class GresSpec:
    """One item of a node's ``Gres=`` (``gpu:a100:4``)."""

    name: str
    type: str | None
    count: int


@dataclass
class Node:
    name: str
    where: Where
    line_names: str = ""  # the NodeName= value of the line that defined it
    addr: str | None = None
    hostname: str | None = None
    cpus: int = 1
    boards: int = 1
    sockets: int = 1  # total over all boards, as slurmctld counts them
    cores_per_socket: int = 1
    threads_per_core: int = 1
    memory_mb: int = 1
    gres: tuple[GresSpec, ...] = ()
    features: tuple[str, ...] = ()
    weight: int | None = None
    state: str | None = None
    other: dict[str, str] = field(default_factory=dict)  # every other key of the line, as written

    def hardware(self) -> tuple:
        """What makes two definitions of a node the same hardware."""
        return (self.cpus, self.sockets, self.cores_per_socket, self.threads_per_core, self.memory_mb, self.gres)


@dataclass
class PartitionDef:
    name: str
    where: Where
    nodes: str | None = None  # as written (ALL, a hostlist, or missing)
    default: bool = False
    max_time: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # every other key, as written (State included)


@dataclass
class SlurmConf:
    source: str
    settings: dict[str, tuple[str, str, Where]] = field(default_factory=dict)  # lower key -> (key, value, where)
    controllers: list[Controller] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)  # in order of definition
    partitions: list[PartitionDef] = field(default_factory=list)
    other_lines: list[Record] = field(default_factory=list)  # NodeSet, DownNodes, FrontendName lines
    findings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # slurm.conf and every file it included

    def setting(self, key: str, default: str | None = None) -> str | None:
        hit = self.settings.get(key.lower())
        return hit[1] if hit else default

    def partition_nodes(self, p: PartitionDef) -> list[str]:
        """The nodes a partition names that are defined (ALL: every node)."""
        if p.nodes is None:
            return []
        if p.nodes.upper() == "ALL":
            return list(self.nodes)
        return [n for n in _expand(p.nodes, p.where) if n in self.nodes]


@dataclass
class GresLine:
    where: Where
    nodes: list[str] | None  # None: every node that reads the file
    name: str | None
    type: str | None = None
    files: tuple[str, ...] = ()
    count: int | None = None
    cores: str | None = None  # Cores= or CPUs= as written
    cores_key: str | None = None
    autodetect: str | None = None
    other: dict[str, str] = field(default_factory=dict)


@dataclass
class SwitchDef:
    name: str
    where: Where
    nodes: list[str] | None = None
    switches: list[str] | None = None
    other: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- lines


Reader = Callable[[Path], str]  # a file's text; raises OSError when it cannot be read (a remote host's files)


def _read_local(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _read(path: Path, read: Reader = _read_local) -> str:
    """A config file's text, or a SlurmConfError naming the file and the system's reason."""
    try:
        return read(path)
    except OSError as exc:
        raise SlurmConfError(f"{path}: {exc.strerror or exc}") from None


def logical_lines(text: str, source: str, depth: int = 0, base: Path | None = None, seen: list[str] | None = None,
                  read: Reader = _read_local) -> list[Record]:
    """Every ``key=value`` line of ``text`` (comments dropped, continuations joined, includes read in place)."""
    if not isinstance(text, str):
        raise SlurmConfError(f"{source}: not text")
    if len(text) > MAX_TEXT:
        raise SlurmConfError(f"{source}: {len(text)} characters; not a Slurm config file")
    seen = seen if seen is not None else []
    out: list[Record] = []
    buf, start = "", 0
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i, raw in enumerate(lines, 1):
        line = _strip_comment(raw)
        if not buf:
            start = i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        line, buf = buf + line, ""
        if not line.strip():
            continue
        where = Where(source, start)
        m = _INCLUDE.match(line)
        if m and "=" not in line:
            out += _include(m.group(1).strip().strip('"'), where, depth, base, seen, read)
            continue
        out.append(Record(_pairs(line, where), where))
    if buf.strip():
        out.append(Record(_pairs(buf, Where(source, start)), Where(source, start)))
    return out


def _strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] == "#":
            out.append("#")
            i += 2
            continue
        if c == "#":
            break
        out.append(c)
        i += 1
    return "".join(out)


def _pairs(line: str, where: Where) -> list[tuple[str, str]]:
    pairs = []
    pos = 0
    line = line.rstrip()
    while pos < len(line):
        if not line[pos:].strip():
            break
        m = _PAIR.match(line, pos)
        if not m:
            bad = line[pos:].strip().split()[0]
            raise SlurmConfError(f"{where}: cannot read {bad[:80]!r}: expected key=value")
        key, value = m.group(1), m.group(3) if m.group(3) is not None else m.group(4)
        if m.group(2):
            raise SlurmConfError(f"{where}: {key}{m.group(2)}= (an scontrol operator) is not valid in a config file")
        pairs.append((key, value))
        pos = m.end()
        if pos < len(line) and not line[pos].isspace():
            raise SlurmConfError(f"{where}: cannot read {line[m.start():pos + 20].strip()[:80]!r}: expected blank after the value")
    if not pairs:
        raise SlurmConfError(f"{where}: expected key=value")
    return pairs


def _include(target: str, where: Where, depth: int, base: Path | None, seen: list[str], read: Reader) -> list[Record]:
    if depth >= MAX_INCLUDE_DEPTH:
        raise SlurmConfError(f"{where}: include {target!r}: more than {MAX_INCLUDE_DEPTH} levels deep (an include loop?)")
    if base is None:
        raise SlurmConfError(f"{where}: include {target!r}: no directory to read it from (text given without a file)")
    path = Path(target) if os.path.isabs(target) else base / target
    try:
        text = read(path)
    except OSError as exc:
        raise SlurmConfError(f"{where}: include {target!r}: {exc.strerror or exc}") from None
    seen.append(str(path))
    return logical_lines(text, str(path), depth + 1, path.parent, seen, read)


def _expand(expr: str, where: Where) -> list[str]:
    try:
        return hostlist.expand(expr)
    except hostlist.HostlistError as exc:
        raise SlurmConfError(f"{where}: {exc}") from None


def _int(value: str | None, key: str, where: Where, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise SlurmConfError(f"{where}: {key}={value[:40]!r}: not a number") from None
    if n < 0 or n > 10**12:
        raise SlurmConfError(f"{where}: {key}={value[:40]!r}: out of range")
    return n


# ------------------------------------------------------------------------------------------------- slurm.conf

_NODE_KEYS = {
    "nodename", "nodeaddr", "nodehostname", "cpus", "procs", "boards", "socketsperboard", "sockets",
    "corespersocket", "threadspercore", "realmemory", "gres", "feature", "features", "weight", "state",
}


def read_slurm_conf(path: str | os.PathLike, read: Reader = _read_local) -> SlurmConf:
    """slurm.conf at ``path`` with its includes; ``read`` reads each file (default: this machine's)."""
    p = Path(path)
    return parse_slurm_conf(_read(p, read), str(p), base=p.parent, read=read)


def parse_slurm_conf(text: str, source: str = "slurm.conf", base: Path | None = None, read: Reader = _read_local) -> SlurmConf:
    files: list[str] = [source]
    records = logical_lines(text, source, 0, base, files, read)
    conf = SlurmConf(source, files=files)
    node_default: dict[str, str] = {}
    part_default: dict[str, str] = {}
    old_ctl: dict[str, tuple[str, Where]] = {}
    for rec in records:
        key, value = rec.first
        k = key.lower()
        if k == "nodename":
            if value.upper() == "DEFAULT":
                node_default.update({n.lower(): v for n, v in rec.pairs[1:]})
                node_default.update({f"\0{n.lower()}": n for n, v in rec.pairs[1:]})
                continue
            _add_nodes(conf, rec, node_default)
        elif k == "partitionname":
            if value.upper() == "DEFAULT":
                part_default.update({n.lower(): v for n, v in rec.pairs[1:]})
                part_default.update({f"\0{n.lower()}": n for n, v in rec.pairs[1:]})
                continue
            conf.partitions.append(_partition(rec, part_default))
        elif k == "slurmctldhost":
            for n, v in rec.pairs:
                if n.lower() != "slurmctldhost":
                    raise SlurmConfError(f"{rec.where}: {n}= does not belong on a SlurmctldHost line")
                conf.controllers.append(_controller(v, rec.where))
        elif k in ("nodeset", "downnodes", "frontendname"):
            conf.other_lines.append(rec)
        else:
            for n, v in rec.pairs:
                if n.lower() in ("controlmachine", "controladdr", "backupcontroller", "backupaddr"):
                    old_ctl[n.lower()] = (v, rec.where)
                    continue
                if n.lower() in conf.settings and conf.settings[n.lower()][1] != v:
                    conf.findings.append(f"{rec.where}: {n} given again (was {conf.settings[n.lower()][1]!r} at {conf.settings[n.lower()][2]}); the last one counts")
                conf.settings[n.lower()] = (n, v, rec.where)
    if old_ctl:
        if conf.controllers:
            conf.findings.append(f"{old_ctl[next(iter(old_ctl))][1]}: ControlMachine/BackupController beside SlurmctldHost: SlurmctldHost counts")
        else:
            for host_key, addr_key in (("controlmachine", "controladdr"), ("backupcontroller", "backupaddr")):
                if host_key in old_ctl:
                    addr = old_ctl.get(addr_key, (None,))[0]
                    for name in old_ctl[host_key][0].split(","):
                        if name.strip():
                            conf.controllers.append(Controller(name.strip(), addr or None))
    if not conf.controllers:
        conf.findings.append(f"{source}: no SlurmctldHost (or ControlMachine): slurmctld would not start")
    for p in conf.partitions:
        if p.nodes and p.nodes.upper() != "ALL":
            missing = [n for n in _expand(p.nodes, p.where) if n not in conf.nodes]
            nodesets = {r.first[1] for r in conf.other_lines if r.first[0].lower() == "nodeset"}
            missing = [n for n in missing if n not in nodesets]
            if missing:
                conf.findings.append(f"{p.where}: partition {p.name} names undefined node(s) {hostlist.fold(missing)}")
    names = [p.name for p in conf.partitions]
    for n in sorted({n for n in names if names.count(n) > 1}):
        conf.findings.append(f"{source}: partition {n} defined more than once")
    if sum(p.default for p in conf.partitions) > 1:
        conf.findings.append(f"{source}: more than one partition has Default=YES")
    return conf


def _controller(value: str, where: Where) -> Controller:
    m = re.fullmatch(r"([^()\s]+)(?:\(([^()\s]+)\))?", value)
    if not m:
        raise SlurmConfError(f"{where}: SlurmctldHost={value[:80]!r}: expected host or host(address)")
    return Controller(m.group(1), m.group(2))


def _add_nodes(conf: SlurmConf, rec: Record, defaults: dict[str, str]) -> None:
    merged = {k: v for k, v in defaults.items() if not k.startswith("\0")}
    written: dict[str, str] = {k[1:]: v for k, v in defaults.items() if k.startswith("\0")}
    for n, v in rec.pairs[1:]:
        merged[n.lower()] = v
        written[n.lower()] = n
    where = rec.where
    names = _expand(rec.first[1], where)
    addrs = _expand(merged["nodeaddr"], where) if merged.get("nodeaddr") else None
    hosts = _expand(merged["nodehostname"], where) if merged.get("nodehostname") else None
    for what, vals in (("NodeAddr", addrs), ("NodeHostname", hosts)):
        if vals is not None and len(vals) != len(names):
            raise SlurmConfError(f"{where}: {len(vals)} {what} value(s) for {len(names)} node name(s)")
    cpus = _int(merged.get("cpus") or merged.get("procs"), "CPUs", where)
    boards = _int(merged.get("boards"), "Boards", where, 1) or 1
    spb = _int(merged.get("socketsperboard"), "SocketsPerBoard", where)
    sockets = _int(merged.get("sockets"), "Sockets", where)
    cores = _int(merged.get("corespersocket"), "CoresPerSocket", where)
    threads = _int(merged.get("threadspercore"), "ThreadsPerCore", where)
    if spb is not None:
        if sockets is not None and sockets != spb * boards:
            conf.findings.append(f"{where}: both Sockets={sockets} and SocketsPerBoard={spb}: SocketsPerBoard counts")
        sockets = spb * boards
    if sockets is None and cores is None and threads is None:
        # slurmctld: CPUs without a layout is that many one-core sockets
        sockets, cores, threads = (cpus or 1), 1, 1
    else:
        sockets = sockets or 1
        cores = cores or 1
        threads = threads or 1
    layout = sockets * cores * threads
    if cpus is None:
        cpus = layout
    elif cpus not in (layout, sockets * cores):
        conf.findings.append(f"{where}: CPUs={cpus} matches neither Sockets*CoresPerSocket*ThreadsPerCore={layout} nor the core count {sockets * cores}")
    memory = _int(merged.get("realmemory"), "RealMemory", where, 1)
    gres = parse_gres_list(merged.get("gres") or "", where)
    feats = merged.get("feature") or merged.get("features") or ""
    weight = _int(merged.get("weight"), "Weight", where)
    other = {written.get(k, k): v for k, v in merged.items() if k not in _NODE_KEYS}
    for i, name in enumerate(names):
        node = Node(
            name=name, where=where, line_names=rec.first[1], addr=addrs[i] if addrs else None, hostname=hosts[i] if hosts else None,
            cpus=cpus, boards=boards, sockets=sockets, cores_per_socket=cores, threads_per_core=threads,
            memory_mb=memory or 1, gres=gres, features=tuple(f for f in feats.split(",") if f), weight=weight,
            state=merged.get("state"), other=dict(other),
        )
        if name in conf.nodes:
            old = conf.nodes[name]
            if old.hardware() != node.hardware():
                conf.findings.append(f"{where}: node {name} defined again with different hardware (first at {old.where}); the first counts")
            else:
                conf.findings.append(f"{where}: node {name} defined again (first at {old.where}); the first counts")
            continue
        conf.nodes[name] = node


def parse_gres_list(value: str, where: Where) -> tuple[GresSpec, ...]:
    """``gpu:a100:4,gpu:v100:2(S:0-1),shard:8`` -> GresSpecs (a missing count is 1, as Slurm reads it)."""
    out = []
    for item in _split_gres(value):
        item = re.sub(r"\([^()]*\)$", "", item.strip())  # old socket binding: gpu:2(S:0-1)
        if not item:
            continue
        parts = [p for p in item.split(":") if p.lower() != "no_consume"]
        name = parts[0]
        if not name:
            raise SlurmConfError(f"{where}: Gres item {item[:60]!r} has no name")
        count, gtype = 1, None
        rest = parts[1:]
        if rest and re.fullmatch(r"\d+[KkMmGg]?", rest[-1]):
            count = _count(rest.pop(), where)
        if len(rest) > 1:
            raise SlurmConfError(f"{where}: Gres item {item[:60]!r}: expected name[:type][:count]")
        if rest:
            gtype = rest[0] or None
        out.append(GresSpec(name, gtype, count))
    return tuple(out)


def _split_gres(value: str) -> list[str]:
    items, depth, cur = [], 0, ""
    for c in value:
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        if c == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += c
    items.append(cur)
    return items


def _count(text: str, where: Where) -> int:
    mult = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1].lower(), 1)
    digits = text[:-1] if mult > 1 else text
    n = _int(digits, "Gres count", where)
    return n * mult


def _partition(rec: Record, defaults: dict[str, str]) -> PartitionDef:
    merged: dict[str, tuple[str, str]] = {k: (defaults[f"\0{k}"], v) for k, v in defaults.items() if not k.startswith("\0")}
    for n, v in rec.pairs[1:]:
        merged[n.lower()] = (n, v)
    p = PartitionDef(rec.first[1], rec.where)
    for k, (n, v) in merged.items():
        if k == "nodes":
            p.nodes = v
        elif k == "default":
            p.default = v.upper() in ("YES", "Y", "1", "TRUE")
        elif k == "maxtime":
            p.max_time = v
        else:
            p.options[n] = v
    if p.nodes and p.nodes.upper() != "ALL":
        _expand(p.nodes, rec.where)
    return p


# ------------------------------------------------------------------------------------------------- gres.conf


def read_gres_conf(path: str | os.PathLike) -> list[GresLine]:
    p = Path(path)
    return parse_gres_conf(_read(p), str(p), base=p.parent)


def parse_gres_conf(text: str, source: str = "gres.conf", base: Path | None = None) -> list[GresLine]:
    out = []
    autodetect: str | None = None
    for rec in logical_lines(text, source, 0, base):
        d = {n.lower(): (n, v) for n, v in rec.pairs}
        if len(rec.pairs) == 1 and "autodetect" in d:
            autodetect = d["autodetect"][1]  # a global AutoDetect line
            out.append(GresLine(rec.where, None, None, autodetect=autodetect))
            continue
        nodes = _expand(d["nodename"][1], rec.where) if "nodename" in d else None
        if "name" not in d and "autodetect" in d and len(d) == 2 and nodes is not None:
            out.append(GresLine(rec.where, nodes, None, autodetect=d["autodetect"][1]))  # AutoDetect for some nodes
            continue
        if "name" not in d:
            raise SlurmConfError(f"{rec.where}: a gres.conf line without Name=")
        files: tuple[str, ...] = ()
        if d.get("file"):
            files = tuple(_expand(d["file"][1], rec.where))
        cores_key = "cores" if "cores" in d else ("cpus" if "cpus" in d else None)
        line = GresLine(
            where=rec.where, nodes=nodes, name=d["name"][1], type=d.get("type", (None, None))[1] or None, files=files,
            count=_count(d["count"][1], rec.where) if d.get("count") else None,
            cores=d[cores_key][1] if cores_key else None, cores_key=d[cores_key][0] if cores_key else None,
            autodetect=d.get("autodetect", (None, autodetect))[1],
            other={n: v for k, (n, v) in d.items() if k not in ("nodename", "name", "type", "file", "count", "cores", "cpus", "autodetect")},
        )
        out.append(line)
    return out


def autodetect_of(lines: list[GresLine], node: str) -> str | None:
    """The AutoDetect= that applies to ``node``: its own lines' over the global one."""
    own = [g.autodetect for g in lines if g.autodetect and g.nodes is not None and node in g.nodes]
    glob = [g.autodetect for g in lines if g.autodetect and g.nodes is None]
    return (own or glob or [None])[-1]


def gres_of(lines: list[GresLine], node: str) -> list[GresLine]:
    """The gres.conf lines that apply to ``node`` (its own and those naming no node)."""
    return [g for g in lines if g.name and (g.nodes is None or node in g.nodes)]


# ------------------------------------------------------------------------------------------------- topology.conf


def read_topology_conf(path: str | os.PathLike) -> list[SwitchDef]:
    p = Path(path)
    return parse_topology_conf(_read(p), str(p), base=p.parent)


def parse_topology_conf(text: str, source: str = "topology.conf", base: Path | None = None) -> list[SwitchDef]:
    out = []
    for rec in logical_lines(text, source, 0, base):
        key, value = rec.first
        if key.lower() != "switchname":
            raise SlurmConfError(f"{rec.where}: expected SwitchName=, got {key}=")
        s = SwitchDef(value, rec.where)
        for n, v in rec.pairs[1:]:
            if n.lower() == "nodes":
                s.nodes = _expand(v, rec.where)
            elif n.lower() == "switches":
                s.switches = _expand(v, rec.where)
            else:
                s.other[n] = v
        out.append(s)
    return out


def topology_findings(switches: list[SwitchDef], conf: SlurmConf | None) -> list[str]:
    """A switch naming a node slurm.conf lacks, or a switch that is not defined."""
    out = []
    names = {s.name for s in switches}
    for s in switches:
        if conf is not None and s.nodes:
            missing = [n for n in s.nodes if n not in conf.nodes]
            if missing:
                out.append(f"{s.where}: switch {s.name} names node(s) slurm.conf does not define: {hostlist.fold(missing)}")
        if s.switches:
            missing = [n for n in s.switches if n not in names]
            if missing:
                out.append(f"{s.where}: switch {s.name} names undefined switch(es): {','.join(missing)}")
    return out
