"""The cluster file (``cluster.yaml``): a typed model, loading, and every check that can run before SSH.

``load_cluster(path)`` returns a :class:`Cluster` or raises :class:`ConfigError` holding every problem found,
each with its path in the file (``nodes[1].gpus.count: must be > 0``) and, where known, its line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slurmkit import hostlist
from slurmkit.errors import ConfigError, Problem
from slurmkit.slurm_versions import DEFAULT as DEFAULT_SLURM, SUPPORTED as SUPPORTED_SLURM
NAME_RE = r"^[a-z0-9][a-z0-9_-]*$"


def _hostlist(value: str) -> str:
    hostlist.expand(value)  # raises HostlistError (a ValueError) with the reason
    return value


Hostlist = Annotated[str, Field(min_length=1)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SSH(Model):
    """How slurmkit reaches the hosts."""

    user: str = Field(min_length=1)
    identity_file: str | None = None
    proxy_jump: str | None = None  # [user@]host[:port] of the jump host
    config_file: str | None = None  # an OpenSSH config read for HostName, User, ProxyJump, IdentityFile
    known_hosts: str | None = None  # a known_hosts file; default: the user's
    port: int = Field(default=22, gt=0, lt=65536)
    connect_timeout: float = Field(default=10, gt=0)


class GPUs(Model):
    type: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(gt=0)
    files: str | None = None  # device files, a hostlist pattern; default /dev/nvidia[0-(count-1)]
    autodetect: Literal["off", "nvml"] = "off"

    _v_files = field_validator("files")(lambda cls, v: v if v is None else _hostlist(v))

    def device_files(self) -> list[str]:
        return hostlist.expand(self.files) if self.files else [f"/dev/nvidia{i}" for i in range(self.count)]


class HostGroup(Model):
    names: Hostlist
    addresses: str | None = None

    _v_names = field_validator("names", "addresses")(lambda cls, v: v if v is None else _hostlist(v))


class NodeGroup(HostGroup):
    """A group of compute nodes with the same hardware. Hardware keys left out are discovered.

    ``gpus``: one mapping (one GPU type), or a list of mappings for nodes with several GPU types
    (``Gres=gpu:a:1,gpu:b:1``), each type once; :attr:`gpu_types` reads both forms as a list."""

    gpus: GPUs | list[GPUs] | None = None
    sockets: int | None = Field(default=None, gt=0)
    cores_per_socket: int | None = Field(default=None, gt=0)
    threads_per_core: int | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)
    rails: int | None = Field(default=None, ge=0)
    features: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]] = []
    weight: int | None = Field(default=None, gt=0)

    @property
    def hardware_declared(self) -> bool:
        return None not in (self.sockets, self.cores_per_socket, self.threads_per_core, self.memory_mb)

    @property
    def gpu_types(self) -> list[GPUs]:
        """The declared GPU types in file order: [] without ``gpus``, one for the mapping form."""
        if self.gpus is None:
            return []
        return [self.gpus] if isinstance(self.gpus, GPUs) else list(self.gpus)

    @property
    def gpu_count(self) -> int:
        """GPUs per node, all types together."""
        return sum(g.count for g in self.gpu_types)


class Partition(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    nodes: str = "ALL"
    default: bool = False
    max_time: str = "INFINITE"
    options: dict[str, str | int] = {}


class Switch(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    nodes: str | None = None
    switches: str | None = None

    _v = field_validator("nodes", "switches")(lambda cls, v: v if v is None else _hostlist(v))


class Topology(Model):
    """Switch layout for topology/tree: either ``leaf_size`` (scalable units of N nodes under one spine) or
    explicit ``switches``."""

    leaf_size: int | None = Field(default=None, gt=0)
    leaf_prefix: str = Field(default="leaf", pattern=r"^[A-Za-z0-9_.-]+$")
    spine: str = Field(default="spine", pattern=r"^[A-Za-z0-9_.-]+$")
    switches: list[Switch] | None = None


class Cluster(Model):
    cluster: str = Field(pattern=NAME_RE, max_length=40)
    # A pin: the Slurm release the nodes must run (checked against their facts: slurmkit.slurm_versions).
    # Left out, the nodes decide; read as DEFAULT_SLURM (22.05) by callers that want a value (slurm_pin: None).
    slurm_version: str = DEFAULT_SLURM
    profile: Literal["real", "local"] = "real"
    ssh: SSH
    heads: Union[Hostlist, HostGroup]
    nodes: list[NodeGroup] = Field(min_length=1)
    partitions: list[Partition] = [Partition(name="batch", default=True)]
    state_dir: str = "/var/spool/slurmctld"
    shared_dir: str | None = None
    topology: Topology | None = None
    slurm_conf: dict[str, str | int] = {}  # extra slurm.conf key=value lines, applied last
    # What Slurm calls each host (NodeName, SlurmctldHost): "hostname", its own short hostname as discovery
    # found it (the cluster file's name or address stays the way to reach it: NodeAddr); "as-written", the
    # cluster file's names, which must then be the hosts' hostnames (checked: slurmkit.hardware.check_names).
    slurm_names: Literal["hostname", "as-written"] = "hostname"

    @field_validator("heads")
    @classmethod
    def _v_heads(cls, v: Any) -> Any:
        if isinstance(v, str):
            _hostlist(v)
        return v

    @field_validator("slurm_version")
    @classmethod
    def _v_version(cls, v: str) -> str:
        if v not in SUPPORTED_SLURM:
            raise ValueError(f"unsupported Slurm version {v!r}; supported: {', '.join(SUPPORTED_SLURM)}")
        return v

    # ----- derived views (pure) -----
    @property
    def head_group(self) -> HostGroup:
        return HostGroup(names=self.heads) if isinstance(self.heads, str) else self.heads

    @property
    def head_names(self) -> list[str]:
        return hostlist.expand(self.head_group.names)

    @property
    def compute_names(self) -> list[str]:
        return [n for g in self.nodes for n in hostlist.expand(g.names)]

    def hosts(self) -> list[Host]:
        """Every host once, heads first, with the address slurmkit uses to reach it. A head that is also a
        compute node (a name in ``heads`` and in ``nodes``) is one Host, role ``head``, ``also_compute``; it is
        reached by the heads' address, else its node group's."""
        heads = self.head_names
        node_addr: dict[str, str] = {}
        for g in self.nodes:
            if g.addresses:
                node_addr.update(zip(hostlist.expand(g.names), hostlist.expand(g.addresses)))
        computes = set(self.compute_names)
        hg = self.head_group
        head_addrs = hostlist.expand(hg.addresses) if hg.addresses else [node_addr.get(n, n) for n in heads]
        out = [Host(n, a, "head", n in computes) for n, a in zip(heads, head_addrs)]
        for g in self.nodes:
            names = hostlist.expand(g.names)
            addrs = hostlist.expand(g.addresses) if g.addresses else names
            out += [Host(n, a, "compute") for n, a in zip(names, addrs) if n not in heads]
        return out

    @property
    def heads_also_computes(self) -> list[str]:
        """Heads that are also compute nodes (in ``heads`` and in a node group), in the heads' order."""
        computes = set(self.compute_names)
        return [n for n in self.head_names if n in computes]

    def select(self, names: str | None, option: str = "--limit") -> list[Host]:
        """Every host, or those a hostlist names (in the cluster file's order). A bad hostlist or a name that is
        not in the cluster file is a ConfigError naming ``option``."""
        hosts = self.hosts()
        if not names:
            return hosts
        try:
            wanted = set(hostlist.expand(names))
        except hostlist.HostlistError as exc:
            raise ConfigError(option, [Problem("", str(exc))]) from None
        unknown = wanted - {h.name for h in hosts}
        if unknown:
            raise ConfigError(option, [Problem("", f"not in the cluster file: {hostlist.fold(unknown)}")])
        return [h for h in hosts if h.name in wanted]

    def compute_names_of(self, group: NodeGroup) -> list[str]:
        return hostlist.expand(group.names)

    def group_of(self, name: str) -> NodeGroup:
        for g in self.nodes:
            if name in hostlist.expand(g.names):
                return g
        raise KeyError(name)

    @property
    def slurm_pin(self) -> str | None:
        """The ``slurm_version`` the cluster file gives (a pin), None when it gives none."""
        return self.slurm_version if "slurm_version" in self.model_fields_set else None

    def slurm_version_tuple(self) -> tuple[int, int]:
        major, minor = self.slurm_version.split(".")
        return int(major), int(minor)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    role: Literal["head", "compute"]
    also_compute: bool = False  # a head that is also a compute node (SlurmctldHost and NodeName name it)


# ---------------------------------------------------------------------------------------------------------
# Loading


def resolve_cluster_path(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(path)))


def load_cluster(path: str | os.PathLike) -> Cluster:
    """Read, parse and validate a cluster file. Raises ConfigError with every problem found."""
    p = resolve_cluster_path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(
            str(p), [Problem("", "no such file; create one with `slurmkit init` or point at one with -c FILE")]
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [Problem("", f"cannot read: {exc}")]) from None
    return parse_cluster(text, str(p))


# Bounds on what a cluster file may expand to: aliases (``*x``) are references, so a few lines can name a tree of
# billions of values ("billion laughs") that walking or validating would never finish.
MAX_VALUES = 100_000
MAX_DEPTH = 64


def parse_cluster(text: str, source: str = "cluster.yaml") -> Cluster:
    """Parse and validate cluster-file text. Returns a Cluster or raises ConfigError (never hangs: recursive
    aliases, documents expanding past :data:`MAX_VALUES` values or nested past :data:`MAX_DEPTH` are refused)."""
    data, node = load_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", "the cluster file must be a YAML mapping of keys (cluster:, ssh:, ...)")])
    lines = _line_index(node)
    try:
        cluster = Cluster.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems_from_pydantic(exc, lines)) from None
    problems = cross_check(cluster)
    if problems:
        raise ConfigError(source, [_with_line(p, lines) for p in problems])
    return cluster


def load_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """One YAML document (safe tags only) and its composed nodes, for any input file slurmkit reads. Every
    problem is a ConfigError naming ``source``: syntax (line and column), characters YAML forbids, values its
    constructors refuse, recursive aliases, more than :data:`MAX_VALUES` values after alias expansion, nesting
    past :data:`MAX_DEPTH`."""
    loader = None
    try:
        loader = _Loader(text)  # reads the whole text: a NUL or other unprintable character fails here
        node = loader.get_single_node()
        _check_size(node, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(source, [Problem("", f"malformed YAML at {where}: {exc.problem}")]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(source, [Problem("", f"malformed YAML at line {line}: character {chr(exc.character)!r} is "
                                               "not allowed in YAML; remove it")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", f"malformed YAML: {exc}")]) from None
    except (RecursionError, _TooDeep):
        raise ConfigError(source, [Problem("", f"nested more than {MAX_DEPTH} levels deep; no slurmkit "
                                               "input needs more than a few")]) from None
    except (ValueError, OverflowError) as exc:
        # PyYAML's constructors: a timestamp that is no date (2024-02-30), an int past Python's digit limit.
        raise ConfigError(source, [Problem("", f"a value YAML cannot read: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, node


class _TooDeep(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting past MAX_DEPTH while it scans and composes: its composer recurses
    once per level (to Python's recursion limit), and its scanner checks every open flow collection at each
    token (5000 nested ``[`` took 2 s)."""

    _depth = 0

    def fetch_flow_collection_start(self, TokenClass):
        super().fetch_flow_collection_start(TokenClass)
        if self.flow_level > MAX_DEPTH:
            raise _TooDeep()

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep()
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_size(root: yaml.Node | None, source: str) -> None:
    """Refuse a composed document whose aliases recurse, or that expands past MAX_VALUES values or MAX_DEPTH
    levels, before anything walks it. Linear in the composed nodes: expanded sizes are counted once per node."""
    if root is None:
        return
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    aliased = False
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        n, done = stack.pop()
        key = id(n)
        children = _children(n)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_VALUES:
                what = (f"its aliases (*name) expand to more than {MAX_VALUES} values; write the repeated parts "
                        "out or use fewer aliases") if aliased else f"more than {MAX_VALUES} values"
                raise ConfigError(source, [Problem("", f"too large: {what}")])
            if depth[key] > MAX_DEPTH:
                raise ConfigError(source, [Problem("", f"nested more than {MAX_DEPTH} levels deep; no slurmkit "
                                                       "input needs more than a few")])
            continue
        if key in size:
            aliased = True
            continue
        if key in on_path:
            mark = n.start_mark
            raise ConfigError(source, [Problem("", f"a recursive alias (an anchor &name used inside itself) at line "
                                                   f"{mark.line + 1}; an input cannot contain itself")])
        on_path.add(key)
        stack.append((n, True))
        for c in children:
            if id(c) in on_path:
                mark = c.start_mark
                raise ConfigError(source, [Problem("", f"a recursive alias (an anchor &name used inside itself) "
                                                       f"at line {mark.line + 1}; an input cannot contain itself")])
            if id(c) in size:
                aliased = True
                continue
            stack.append((c, False))


def _children(n: yaml.Node) -> list[yaml.Node]:
    if isinstance(n, yaml.MappingNode):
        return [x for kv in n.value for x in kv]
    if isinstance(n, yaml.SequenceNode):
        return list(n.value)
    return []


def cross_check(c: Cluster) -> list[Problem]:
    """Checks across fields, after each field is valid on its own."""
    problems: list[Problem] = []
    heads = c.head_names
    seen: dict[str, str] = {}
    head_path = "heads" if isinstance(c.heads, str) else "heads.names"
    for h in heads:
        seen.setdefault(h, head_path)
    if len(set(heads)) != len(heads):
        problems.append(Problem(head_path, "a head is listed twice"))
    if c.head_group.addresses and len(hostlist.expand(c.head_group.addresses)) != len(heads):
        problems.append(Problem("heads.addresses", f"{len(hostlist.expand(c.head_group.addresses))} addresses for {len(heads)} heads"))
    computes: set[str] = set()
    for i, g in enumerate(c.nodes):
        names = hostlist.expand(g.names)
        for n in names:
            if seen.get(n, "").startswith("heads"):
                seen[n] = f"nodes[{i}]"  # a head that is also a compute node: allowed (see cluster_notes)
            elif n in seen:
                problems.append(Problem(f"nodes[{i}].names", f"{n} is also in {seen[n]}"))
            else:
                seen[n] = f"nodes[{i}]"
        computes.update(names)
        if g.addresses and len(hostlist.expand(g.addresses)) != len(names):
            problems.append(Problem(f"nodes[{i}].addresses", f"{len(hostlist.expand(g.addresses))} addresses for {len(names)} names"))
        hw = [g.sockets, g.cores_per_socket, g.threads_per_core]
        if any(v is not None for v in hw) and any(v is None for v in hw):
            problems.append(Problem(f"nodes[{i}]", "give sockets, cores_per_socket and threads_per_core together (or none, to discover them)"))
        listed = isinstance(g.gpus, list)
        if listed and not g.gpus:
            problems.append(Problem(f"nodes[{i}].gpus", "an empty list: give one {type, count} mapping per GPU type, or leave gpus out"))
        types: set[str] = set()
        files: dict[str, str] = {}
        for j, t in enumerate(g.gpu_types):
            at = f"nodes[{i}].gpus" + (f"[{j}]" if listed else "")
            if t.files and len(t.device_files()) != t.count:
                problems.append(Problem(f"{at}.files", f"{len(t.device_files())} device files for count {t.count}"))
            if t.type in types:
                problems.append(Problem(f"{at}.type", f"GPU type {t.type!r} is listed twice (give its count once)"))
            types.add(t.type)
            if listed and len(g.gpu_types) > 1:
                if not t.files and t.autodetect == "off":
                    problems.append(Problem(f"{at}.files", "with several GPU types each type needs its device files "
                                                           "(the default /dev/nvidia[0-N] would be shared between types)"))
                for f in t.device_files() if t.files else []:
                    if f in files:
                        problems.append(Problem(f"{at}.files", f"{f} is also a device of type {files[f]!r}"))
                    files.setdefault(f, t.type)
            if listed and t.autodetect != g.gpu_types[0].autodetect:
                problems.append(Problem(f"{at}.autodetect", "give every GPU type of a node group the same autodetect"))
        if g.rails and not g.gpus:
            problems.append(Problem(f"nodes[{i}].rails", "rails are the InfiniBand rails used for GPU traffic: declare gpus too"))
    pnames: set[str] = set()
    defaults = 0
    for i, part in enumerate(c.partitions):
        if part.name in pnames:
            problems.append(Problem(f"partitions[{i}].name", f"duplicate partition name {part.name!r}"))
        pnames.add(part.name)
        defaults += part.default
        if part.nodes != "ALL":
            try:
                missing = [n for n in hostlist.expand(part.nodes) if n not in computes]
            except hostlist.HostlistError as exc:
                problems.append(Problem(f"partitions[{i}].nodes", str(exc)))
                continue
            if missing:
                problems.append(Problem(f"partitions[{i}].nodes", f"no such compute node: {hostlist.fold(missing)}"))
    if defaults > 1:
        problems.append(Problem("partitions", "more than one partition has default: true"))
    if c.topology:
        problems += _check_topology(c.topology, computes)
    return problems


def cluster_notes(c: Cluster) -> list[Problem]:
    """What is allowed but worth saying (validate prints each as ``note:``): a head that is also a compute node."""
    notes = []
    heads = set(c.head_names)
    for i, g in enumerate(c.nodes):
        both = [n for n in hostlist.expand(g.names) if n in heads]
        if both:
            notes.append(Problem(f"nodes[{i}].names", f"{hostlist.fold(both)}: also a head: a controller that is also "
                                                      "a compute node (SlurmctldHost and NodeName both name it; it runs "
                                                      "slurmctld and slurmd)"))
    return notes


def _check_topology(t: Topology, computes: set[str]) -> list[Problem]:
    if (t.leaf_size is None) == (t.switches is None):
        return [Problem("topology", "give either leaf_size or switches")]
    if t.switches is None:
        return []
    problems = []
    names = [s.name for s in t.switches]
    under: set[str] = set()
    for i, s in enumerate(t.switches):
        if bool(s.nodes) == bool(s.switches):
            problems.append(Problem(f"topology.switches[{i}]", "give either nodes or switches"))
            continue
        if s.nodes:
            kids = hostlist.expand(s.nodes)
            missing = [n for n in kids if n not in computes]
            if missing:
                problems.append(Problem(f"topology.switches[{i}].nodes", f"no such compute node: {hostlist.fold(missing)}"))
            under.update(kids)
        else:
            # Slurm 22.05: a switch naming a missing child is fatal, and on reconfigure kills slurmctld.
            missing = [n for n in hostlist.expand(s.switches) if n not in names]
            if missing:
                problems.append(Problem(f"topology.switches[{i}].switches", f"no such switch: {', '.join(missing)}"))
    orphans = sorted(computes - under)
    if orphans:
        problems.append(Problem("topology.switches", f"nodes under no switch (multi-node jobs would not schedule): {hostlist.fold(orphans)}"))
    return problems


def check_environment(c: Cluster, base: Path) -> list[Problem]:
    """Checks of the machine slurmkit runs on (files that must exist). Separate from parsing, so that rendering
    works on a laptop without the keys."""
    problems = []
    for key in ("identity_file", "config_file", "known_hosts"):
        value = getattr(c.ssh, key)
        if value and not resolve_relative(value, base).is_file():
            problems.append(Problem(f"ssh.{key}", f"no such file: {value}"))
    return problems


def resolve_relative(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


# ---------------------------------------------------------------------------------------------------------
# Error reporting: pydantic locations -> file paths with lines, unknown keys -> the valid ones


def _fmt_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems_from_pydantic(exc: ValidationError, lines: dict[str, int]) -> list[Problem]:
    found: list[tuple[str, str, str]] = []
    for err in exc.errors():
        # pydantic tags union members in the location ("str", "HostGroup"); drop them.
        etype = err["type"]
        raw = err["loc"]
        # pydantic tags union members in the location ("str", "HostGroup"); drop them (never the top-level
        # key, nor the key an unknown-key error names).
        keep_last = etype == "extra_forbidden" and len(raw) > 1
        inner = raw[1 : len(raw) - keep_last]
        loc = raw[:1] + tuple(p for p in inner if p not in _UNION_TAGS) + (raw[-1:] if keep_last else ())
        path = _fmt_loc(loc)
        if etype == "extra_forbidden":
            valid = _valid_keys(loc[:-1])
            msg = f"unknown key {loc[-1]!r}; valid keys: {', '.join(valid)}" if valid else f"unknown key {loc[-1]!r}"
        elif etype == "missing":
            msg = "required key missing" + (" (the SSH user slurmkit logs in as)" if path == "ssh.user" else "")
        elif etype == "greater_than":
            msg = f"must be > {err['ctx']['gt']}"
        elif etype == "greater_than_equal":
            msg = f"must be >= {err['ctx']['ge']}"
        elif etype == "string_pattern_mismatch":
            msg = f"{err['input']!r} is not allowed here (must match {err['ctx']['pattern']})"
        elif etype == "value_error":
            msg = str(err["ctx"]["error"])
        else:
            msg = err["msg"]
        found.append((path, etype, msg))
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for path, etype, msg in found:
        # A union (heads: a hostlist or a mapping) reports each branch; a branch's "wrong type" goes when another
        # branch said more about the same key.
        if etype in _TYPE_MISMATCH and any(
            (p == path and t not in _TYPE_MISMATCH) or p.startswith((path + ".", path + "[")) for p, t, _ in found
        ):
            continue
        if (path, msg) in seen:
            continue
        seen.add((path, msg))
        problems.append(_with_line(Problem(path, msg), lines))
    return problems


_UNION_TAGS = {"str", "int", "constrained-str", "Cluster", "SSH", "GPUs", "list[GPUs]", "HostGroup", "NodeGroup", "Partition",
               "Switch", "Topology"}
_TYPE_MISMATCH = {"string_type", "model_type", "model_attributes_type", "dict_type", "list_type"}


def _with_line(p: Problem, lines: dict[str, int]) -> Problem:
    path = p.path
    while path and path not in lines:
        # Drop the last part (.key or [i]); a top-level key has no dot, so it goes whole.
        m = re.search(r"(\.[^.\[]+|\[\d+\])$", path)
        path = path[: m.start()] if m else ""
    line = lines.get(path)
    return Problem(p.path, f"{p.message} (line {line})") if line else p


def _valid_keys(loc: tuple) -> list[str]:
    model: Any = Cluster
    for part in loc:
        model = _unwrap(model)
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        model = model.model_fields[part].annotation
    model = _unwrap(model)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is not None:
        args = [a for a in get_args(tp) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        tp = models[0] if models else (args[0] if args else tp)
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
    return tp


def _line_index(node: yaml.Node | None, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """Map each key path (``nodes[1].gpus.count``) to its 1-based line in the file."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{path}.{k.value}" if path else str(k.value)
            out[key] = k.start_mark.line + 1
            _line_index(v, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            key = f"{path}[{i}]"
            out[key] = v.start_mark.line + 1
            _line_index(v, key, out)
    return out


def dump_cluster(data: dict) -> str:
    """YAML text of a cluster-file dict, keys in the order given (used by importers and `local up`)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
