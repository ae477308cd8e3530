"""Small text helpers shared by the parsers."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clean(text: str) -> str:
    """Drop ANSI escapes and CR line ends (fixtures keep both as captured)."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def cpu_list(text: str) -> list[int]:
    """Parse a Linux CPU list (``0-55,112-167`` or ``0,2,4``); ``N/A`` or empty gives []."""
    out: list[int] = []
    text = text.strip()
    if not text or text.upper() == "N/A":
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def ranges(values) -> str:
    """Fold integers into Slurm/Linux list syntax: [0,1,2,5] -> ``0-2,5``."""
    vals = sorted(set(values))
    parts: list[str] = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ",".join(parts)
