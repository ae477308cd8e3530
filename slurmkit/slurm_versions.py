"""Which Slurm release slurmkit renders for, and what differs between the releases it supports. Pure.

The nodes decide: :func:`resolve_target` takes each host's version from its cached facts (the Slurm installed,
else the candidate its package manager would install, see :mod:`slurmkit.facts.slurmver`). A cluster file's
``slurm_version`` is a pin: the nodes must run it. Hosts on different releases are refused unless the newest
accepts the oldest (Slurm's upgrade window, :func:`accepts`) and no head runs older than a compute node; the
target is then the OLDEST release, since slurmctld must be >= every slurmd and a config written for the oldest
is read by the newer daemons (the keys it uses are still accepted by them, see :data:`DIFFERENCES`). No facts
and no pin: :data:`DEFAULT`, with a note.

:data:`DIFFERENCES` is the version table: what the renderer emits differently per target, each row citing
where it comes from. "man page" means the release's own ``slurm.conf(5)``/``cgroup.conf(5)``/``gres.conf(5)``;
those of 22.05.8 (Debian 12), 24.11.5 (Debian 13) and 26.05.5 (Debian sid) were read as installed; for the
other releases the citation is to SchedMD's RELEASE_NOTES/CHANGELOG of that release, marked ``(unsure)``
where it was not read in full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from slurmkit import hostlist
from slurmkit.errors import ConfigError, Problem

# Targets slurmkit renders for (the list: Ubuntu 22.04 = 21.08, Debian 12 = 22.05, Ubuntu 24.04 = 23.11,
# Debian 13 = 24.11, sites' own builds 25.x/26.x).
SUPPORTED = ("21.08", "22.05", "23.11", "24.11", "25.05", "25.11", "26.05")
DEFAULT = "22.05"
# Every major release in order, supported or not, for the upgrade window (SchedMD's release cadence).
RELEASES = ("20.02", "20.11", "21.08", "22.05", "23.02", "23.11", "24.05", "24.11", "25.05", "25.11", "26.05")
# Which targets run on this project's machines (daemons tested live): README "Slurm versions".
RUN_HERE = ("22.05", "24.11", "26.05")


def as_tuple(release: str) -> tuple[int, int]:
    major, minor = release.split(".")[:2]
    return int(major), int(minor)


def release_of(version: str) -> str | None:
    """The major release of a version: ``22.05.8`` -> ``22.05``; None when it is no Slurm version."""
    m = re.match(r"^(\d{2})\.(\d{2})(?:\.|$|-)", version.strip())
    return f"{m.group(1)}.{m.group(2)}" if m else None


def window(release: str) -> int:
    """How many previous major releases ``release`` accepts (daemons, state, commands): three since 24.11,
    two before (24.11 RELEASE_NOTES: "can be upgraded from version 23.02, 23.11 or 24.05"; 22.05's: "from
    20.11 or 21.08"; /work/shared/REAL-NODES.md "Upgrade window")."""
    return 3 if as_tuple(release) >= (24, 11) else 2


def accepts(newer: str, older: str) -> bool:
    """True when a ``newer`` slurmctld (or slurmdbd) works with ``older`` daemons and state: equal, or
    ``older`` within :func:`window` major releases before ``newer``."""
    if newer == older:
        return True
    if newer not in RELEASES or older not in RELEASES:
        return False
    gap = RELEASES.index(newer) - RELEASES.index(older)
    return 0 < gap <= window(newer)


def check_supported(release: str, what: str = "Slurm") -> None:
    if release not in SUPPORTED:
        raise ConfigError("render", [Problem("slurm_version", f"{what} {release} is not a release slurmkit renders "
                                                              f"for; supported: {', '.join(SUPPORTED)}")])


# ---------------------------------------------------------------- the version table


@dataclass(frozen=True)
class Difference:
    """One thing the renderer emits differently across targets: ``values`` maps the first release of each form
    to what is written from it on (None: the line is left out); ``source`` is where it comes from."""

    file: str
    setting: str
    values: tuple[tuple[str, str | None], ...]
    source: str

    def at(self, release: str) -> str | None:
        chosen = None
        for since, value in self.values:
            if as_tuple(release) >= as_tuple(since):
                chosen = value
        return chosen


DIFFERENCES: dict[str, Difference] = {
    # 21.08's slurm.conf(5) knows only CryptoType; 22.05's RELEASE_NOTES rename it to CredType=cred/munge and
    # 22.05.8's man page documents only CredType, but 22.05 still reads the old name (tests/live renders it and
    # slurmctld 22.05.8 runs), so 22.05 keeps the form its golden files always had. 24.11.5 and 26.05.5's man
    # pages have no CryptoType any more; their slurmctld still starts with it, silently (tried here with the
    # 22.05 rendering), so an upgrade pair rendered for the older release works.
    "cred": Difference("slurm.conf", "CryptoType / CredType",
                       (("21.08", "CryptoType=crypto/munge"), ("23.11", "CredType=cred/munge")),
                       "22.05 RELEASE_NOTES (rename); slurm.conf(5) of 22.05.8, 24.11.5, 26.05.5"),
    # cgroup.conf CgroupAutomount: in 22.05.8's cgroup.conf(5); absent from 24.11.5's (July 2024); slurmd -G and
    # slurmctld of 24.11.5 and 26.05.5 log 'error: The option "CgroupAutomount" is defunct, please remove it from
    # cgroup.conf' (and go on) when given it (tried here). Which release made it defunct (24.05?) is unsure: it
    # is gone by 24.11, the next target after 23.11, whose cgroup.conf(5) still has it (unsure).
    "automount": Difference("cgroup.conf", "CgroupAutomount",
                            (("21.08", "CgroupAutomount=yes"), ("24.11", None)),
                            "cgroup.conf(5) of 22.05.8 and 24.11.5; 'defunct' in 24.11.5/26.05.5 daemon logs"),
    # CgroupPlugin: 21.08's cgroup.conf(5) offers cgroup/v1 only (the cgroup/v2 plugin and "autodetect", the
    # default, arrive in 22.05: 22.05 RELEASE_NOTES, 22.05.8's cgroup.conf(5) "<cgroup/v1|cgroup/v2|autodetect>";
    # 21.08 from its man page as remembered: unsure). 26.05.5's cgroup.conf(5): cgroup/v1 deprecated.
    "cgroup_plugin": Difference("cgroup.conf", "CgroupPlugin",
                                (("21.08", "CgroupPlugin=cgroup/v1"), ("22.05", "CgroupPlugin=autodetect")),
                                "cgroup.conf(5) of 22.05.8, 24.11.5, 26.05.5; 22.05 RELEASE_NOTES (cgroup/v2); "
                                "21.08 cgroup.conf(5) (unsure)"),
}

# What stays the same on every target, checked against the man pages named (so that nobody "fixes" it):
SAME_ON_ALL = {
    "SlurmctldHost": "since 17.11; ControlMachine is deprecated in 22.05.8 and 24.11.5's slurm.conf(5), gone "
                     "from 26.05.5's",
    "SelectType=select/cons_tres": "since 19.05; select/cons_res (not rendered) is 'legacy' in 24.11.5's "
                                   "slurm.conf(5) and removed in 24.11 (24.11 RELEASE_NOTES)",
    "ProctrackType=proctrack/cgroup, TaskPlugin=task/cgroup,task/affinity, JobAcctGatherType=jobacct_gather/cgroup":
        "unchanged in slurm.conf(5) 22.05.8, 24.11.5, 26.05.5",
    "gres.conf Name/Type/File/Cores, AutoDetect=nvml": "gres.conf(5) of 21.08 (AutoDetect since 19.05) through "
                                                      "26.05.5; MultipleFiles (22.05+) is for MIG, not rendered",
    "TopologyPlugin=topology/tree + topology.conf": "every target; topology.yaml (25.05+, optional) is not "
                                                   "rendered: 26.05.5's slurm.conf(5) reads TopologyPlugin only "
                                                   "when there is no topology.yaml",
}


def settings_for(release: str) -> dict[str, tuple[str, str] | None]:
    """Each :data:`DIFFERENCES` row at ``release`` as ``(key, value)`` (None: left out)."""
    out: dict[str, tuple[str, str] | None] = {}
    for name, diff in DIFFERENCES.items():
        line = diff.at(release)
        out[name] = None if line is None else tuple(line.split("=", 1))  # type: ignore[assignment]
    return out


# ---------------------------------------------------------------- each host's version, the target


@dataclass(frozen=True)
class HostVersion:
    """The Slurm of one host: ``version`` (``24.11.5``), ``release`` (``24.11``) and where it was found."""

    host: str
    version: str
    source: str  # "installed" | "candidate"

    @property
    def release(self) -> str:
        return release_of(self.version) or self.version


def host_versions(host: str, facts: Any) -> list[HostVersion]:
    """The versions a host's facts (:class:`~slurmkit.facts.NodeFacts`) show: every distinct installed one
    (daemons' ``-V``, packages), else the package manager's candidate; [] when none (no Slurm, no apt, or a
    record cached before versions were collected)."""
    s = getattr(facts, "slurm", None)
    if s is None:
        return []
    installed = [v for v in s.installed if release_of(v)]
    if installed:
        return [HostVersion(host, v, "installed") for v in installed]
    if s.candidate and release_of(s.candidate):
        return [HostVersion(host, s.candidate, "candidate")]
    return []


@dataclass(frozen=True)
class Target:
    """The release to render for and why: ``source`` is ``nodes``, ``pin`` (no facts to check it against) or
    ``default``; ``hosts`` each host's version found; ``note`` a line for the user, or None."""

    release: str
    source: str
    hosts: tuple[HostVersion, ...] = ()
    note: str | None = None

    @property
    def version_tuple(self) -> tuple[int, int]:
        return as_tuple(self.release)


def _by_version(found: list[HostVersion]) -> str:
    groups: dict[str, list[str]] = {}
    for hv in found:
        groups.setdefault(hv.version + (" (candidate)" if hv.source == "candidate" else ""), []).append(hv.host)
    return ", ".join(f"{hostlist.fold(hs)} {'run' if len(hs) > 1 else 'runs'} {v}"
                     for v, hs in sorted(groups.items(), key=lambda kv: as_tuple(kv[0].split()[0])))


def resolve_target(pin: str | None, facts_by_host: Mapping[str, Any], heads: list[str] | tuple[str, ...] = (),
                   source: str = "cluster.yaml") -> Target:
    """The target release from the pin (the cluster file's ``slurm_version``, None when it gives none) and the
    facts of the hosts that have them (host -> NodeFacts). Raises ConfigError (``source``, path
    ``slurm_version``) when

    - the nodes run a release slurmkit does not render for;
    - the pin disagrees with the nodes: ``pin slurm_version 22.05, but nodes a-[1-2] run 24.11.5``;
    - one host has two releases installed, or hosts run releases that are no supported upgrade pair (the
      newest must accept the oldest: :func:`accepts`), or a head runs older than a compute node.
    """
    found: list[HostVersion] = []
    for host, facts in facts_by_host.items():
        found += host_versions(host, facts)
    if not found:
        if pin is not None:
            return Target(pin, "pin", (), None)
        return Target(DEFAULT, "default", (), f"no Slurm version known for any host (no facts cached, or none shows "
                                              f"Slurm or an apt candidate): rendering for Slurm {DEFAULT}; run "
                                              "`slurmkit discover`, or pin slurm_version in the cluster file")
    releases = sorted({hv.release for hv in found}, key=as_tuple)
    problems: list[Problem] = []
    per_host: dict[str, set[str]] = {}
    for hv in found:
        per_host.setdefault(hv.host, set()).add(hv.release)
    for host, rel in sorted(per_host.items()):
        if len(rel) > 1:
            both = " and ".join(hv.version for hv in found if hv.host == host)
            problems.append(Problem("slurm_version", f"{host} has Slurm {both} installed: remove all but one"))
    unsupported = [r for r in releases if r not in SUPPORTED]
    if unsupported:
        problems.append(Problem("slurm_version", f"{_by_version([hv for hv in found if hv.release in unsupported])}"
                                                 f": not a release slurmkit renders for; supported: "
                                                 f"{', '.join(SUPPORTED)}"))
    oldest, newest = releases[0], releases[-1]
    if len(releases) > 1 and not unsupported:
        head_rel = [hv.release for hv in found if hv.host in heads]
        compute_rel = [hv.release for hv in found if hv.host not in heads]
        if not accepts(newest, oldest):
            problems.append(Problem("slurm_version", f"mixed Slurm versions: {_by_version(found)}; Slurm {newest} "
                                                     f"accepts only the {window(newest)} releases before it, not "
                                                     f"{oldest}: upgrade the older hosts"))
        elif head_rel and compute_rel and as_tuple(min(head_rel, key=as_tuple)) < as_tuple(max(compute_rel, key=as_tuple)):
            problems.append(Problem("slurm_version", f"mixed Slurm versions: {_by_version(found)}; a head runs "
                                                     "older than a compute node (slurmctld must be >= every "
                                                     "slurmd): upgrade the heads first"))
    if pin is not None and (pin != oldest or len(releases) > 1 and problems):
        others = [hv for hv in found if hv.release != pin]
        problems.append(Problem("slurm_version", f"pin slurm_version {pin}, but nodes {_by_version(others)}: install "
                                                 f"Slurm {pin} there, or change or remove the pin"))
    if problems:
        raise ConfigError(source, problems)
    if len(releases) > 1:
        return Target(oldest, "nodes", tuple(found),
                      f"mixed Slurm versions ({_by_version(found)}), a supported upgrade pair: rendering for the "
                      f"oldest, {oldest} (slurmctld must be >= every slurmd; the newer daemons read it)")
    return Target(oldest, "nodes", tuple(found), None)
