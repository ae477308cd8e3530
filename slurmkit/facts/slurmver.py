"""The Slurm a host runs, or would install: the commands discovery runs and their pure parsers.

Three outputs, each empty when its tool is missing (a fact, not an error):

- ``slurm_version`` (:data:`VERSION_COMMAND`): ``slurmctld -V`` and ``slurmd -V``, each line prefixed by the
  daemon's name: ``slurmd: slurm-wlm 22.05.8`` (Debian's build says ``slurm-wlm``, upstream's ``slurm``);
- ``slurm_packages`` (:data:`PACKAGES_COMMAND`): ``dpkg-query -W`` of the Slurm packages with their status
  (``slurmd<TAB>22.05.8-4+deb12u3<TAB>ii ``);
- ``slurm_candidate`` (:data:`CANDIDATE_COMMAND`): ``apt-cache policy slurmctld slurmd``, whose ``Candidate:``
  line is what ``apt-get install`` would install where nothing is installed yet.

RPM hosts are covered by the daemons' ``-V`` once Slurm is installed; their package manager is not asked for a
candidate (no real ``rpm``/``dnf`` output could be captured to test a parser on).
"""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.errors import FactsParseError
from slurmkit.facts.models import SlurmVersions

DAEMONS = ("slurmctld", "slurmd")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "slurm-wlm")

# /usr/sbin is not on a non-root login's PATH on Debian: look there too.
VERSION_COMMAND = (
    "for t in " + " ".join(DAEMONS) + "; do "
    'p=$(command -v "$t" 2>/dev/null); [ -n "$p" ] || { [ -x "/usr/sbin/$t" ] && p="/usr/sbin/$t"; }; '
    '[ -n "$p" ] && "$p" -V 2>&1 | sed "s|^|$t: |"; '
    "done; true"
)
PACKAGES_COMMAND = (
    "command -v dpkg-query >/dev/null 2>&1 && "
    "LC_ALL=C dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' "
    + " ".join(PACKAGES) + " 2>/dev/null; true"
)
CANDIDATE_COMMAND = (
    "command -v apt-cache >/dev/null 2>&1 && LC_ALL=C apt-cache policy " + " ".join(DAEMONS) + " 2>/dev/null; true"
)

# A Slurm release number as the tools print it: 22.05.8, 24.11.5, 26.05.5, 23.11.4, 25.05.0-0rc1
_RELEASE = re.compile(r"(\d{2})\.(\d{2})(?:\.(\d+))?")


def upstream_version(text: str) -> str | None:
    """The upstream Slurm version of a package or tool version: ``22.05.8-4+deb12u3`` -> ``22.05.8``,
    ``1:23.11.4-1.2`` -> ``23.11.4``, ``24.11.5`` -> ``24.11.5``; None when it is none (``(none)``, empty)."""
    text = text.strip()
    text = re.sub(r"^\d+:", "", text)  # a Debian epoch
    m = _RELEASE.match(text)
    if m is None:
        return None
    return f"{m.group(1)}.{m.group(2)}" + (f".{m.group(3)}" if m.group(3) is not None else "")


def parse_slurm_version(text: str) -> dict[str, str]:
    """``slurm_version``: daemon -> version it printed (``{"slurmd": "22.05.8"}``).

    Lines are ``DAEMON: slurm[-wlm] VERSION``. A daemon that printed something else (an error: a missing
    library, a crash) gives no version, its line is skipped; a line with no daemon prefix cannot come from
    :data:`VERSION_COMMAND` and raises :class:`FactsParseError`."""
    out: dict[str, str] = {}
    for no, line in enumerate(clean(text).split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        daemon, sep, rest = line.partition(": ")
        if not sep or daemon not in DAEMONS:
            raise FactsParseError("slurmd -V", no, f"{line[:80]!r} is not a `DAEMON: output` line")
        m = re.fullmatch(r"slurm(?:-wlm)?\s+(\S+)", rest.strip())
        if m is None:
            continue
        version = upstream_version(m.group(1))
        if version is not None:
            out.setdefault(daemon, version)
    return out


def parse_dpkg_query(text: str) -> dict[str, str]:
    """``slurm_packages``: installed package -> upstream version (``{"slurmd": "22.05.8"}``).

    Lines are ``PACKAGE<TAB>VERSION<TAB>STATUS``; only packages whose status says installed (``ii``, also
    ``hi``: held) count; removed ones that left their configuration (``rc``) do not. A line with fewer fields
    (cut short) raises :class:`FactsParseError`."""
    out: dict[str, str] = {}
    for no, line in enumerate(clean(text).split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise FactsParseError("dpkg-query -W", no, f"{line[:80]!r}: expected PACKAGE, VERSION and STATUS")
        package, version, status = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if len(status) >= 2 and status[1] == "i" and version:
            upstream = upstream_version(version)
            if upstream is not None:
                out[package] = upstream
    return out


def parse_apt_policy(text: str) -> dict[str, dict[str, str | None]]:
    """``apt-cache policy PKG...``: package -> ``{"installed": upstream or None, "candidate": upstream or None}``.

    Each package's block starts with ``name:`` at column 0 and holds ``Installed:`` and ``Candidate:`` lines
    (``(none)`` when there is none). A block without its ``Candidate:`` line (cut short) raises
    :class:`FactsParseError`; the version table below is not read."""
    out: dict[str, dict[str, str | None]] = {}
    current: str | None = None
    start = 0
    lines = clean(text).split("\n")
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not line[0].isspace():
            if current is not None and "candidate" not in out[current]:
                raise FactsParseError("apt-cache policy", start, f"{current}: no Candidate: line (output cut short?)")
            name = line.rstrip()
            if not name.endswith(":") or not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?:", name):
                raise FactsParseError("apt-cache policy", no, f"{line[:80]!r} is no `package:` line")
            current, start = name[:-1], no
            out[current] = {}
            continue
        if current is None:
            raise FactsParseError("apt-cache policy", no, "an indented line before any `package:` line")
        key, sep, value = line.strip().partition(":")
        if sep and key in ("Installed", "Candidate") and key.lower() not in out[current]:
            out[current][key.lower()] = upstream_version(value)
    if current is not None and "candidate" not in out[current]:
        raise FactsParseError("apt-cache policy", start, f"{current}: no Candidate: line (output cut short?)")
    return {k: {"installed": v.get("installed"), "candidate": v["candidate"]} for k, v in out.items()}


def slurm_versions(version_text: str, packages_text: str, candidate_text: str) -> SlurmVersions | None:
    """The three outputs as one :class:`SlurmVersions`; None when all three are empty (no Slurm, no apt)."""
    daemons = parse_slurm_version(version_text)
    packages = parse_dpkg_query(packages_text)
    policy = parse_apt_policy(candidate_text)
    if not (daemons or packages or policy or version_text.strip() or packages_text.strip()):
        return None
    candidates = {k: v["candidate"] for k, v in policy.items() if v["candidate"]}
    for k, v in policy.items():  # apt's Installed: line counts as an installed package too
        if v["installed"] and k not in packages:
            packages[k] = v["installed"]
    return SlurmVersions(daemons=daemons, packages=packages, candidates=candidates)
