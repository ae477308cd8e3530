"""Parser for ``slurmd -C``."""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.errors import FactsParseError
from slurmkit.facts.models import SlurmdHardware

COMMAND = "slurmd -C"
# What every slurmd -C prints (22.05 and 23.x): the CPU layout and memory slurmd registers with.
REQUIRED = ("CPUs", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")


def parse_slurmd_c(text: str) -> SlurmdHardware | None:
    """``slurmd -C``: ``NodeName=... CPUs=... RealMemory=...`` (one line, or two with ``UpTime=`` apart in
    newer slurmd), preceded by notes such as ``slurmd: Considering each NUMA node as a socket``.

    Empty text (no slurmd) gives None. Output lacking one of :data:`REQUIRED` (cut short), or a word of the
    values line that is no ``Key=value``, raises :class:`FactsParseError`."""
    values: dict[str, str] = {}
    notes: list[str] = []
    last = 0
    for no, line in enumerate(clean(text).split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("slurmd:"):
            notes.append(line[len("slurmd:") :].strip())
            continue
        for word in line.split():
            m = re.fullmatch(r"(\w+)=(\S+)", word)
            if m is None:
                raise FactsParseError(COMMAND, no, f"{word!r} is no Key=value")
            values[m.group(1)] = m.group(2)
        last = no
    if not values:
        return None
    missing = [k for k in REQUIRED if k not in values]
    if missing:
        raise FactsParseError(COMMAND, last, f"no {', '.join(missing)} (output cut short?)")
    bad = [k for k in REQUIRED if not values[k].isdigit()]
    if bad:
        raise FactsParseError(COMMAND, last, f"{bad[0]}={values[bad[0]]} is not a number")
    return SlurmdHardware(values=values, notes=notes)
