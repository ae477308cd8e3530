"""Hostlist expressions (``node-[1-64]``), folded and expanded by ClusterShell's NodeSet.

The one place that imports ClusterShell, so its errors become ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ClusterShell.NodeSet import NodeSet, NodeSetException
from ClusterShell.NodeUtils import GroupResolverError
from ClusterShell.RangeSet import RangeSetParseError

from slurmkit.errors import SlurmkitError


class HostlistError(SlurmkitError, ValueError):
    """A hostlist expression that does not parse (a ValueError too, so that pydantic validators report it)."""


# More names than any Slurm cluster has; past it a typo (``node-[1-100000000]``) would take minutes and gigabytes.
MAX_NAMES = 100_000
_GROUP = re.compile(r"\[([^\[\]]*)\]")
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*(?:/\s*(\d+)\s*)?$")


def expand(expr: str) -> list[str]:
    """Expand a hostlist expression into names, in the order written (``a-[1-2],b`` -> a-1, a-2, b)."""
    if not isinstance(expr, str) or not expr.strip():
        raise HostlistError("empty hostlist")
    if _upper_bound(expr) > MAX_NAMES:
        raise HostlistError(f"bad hostlist {expr[:80]!r}: names more than {MAX_NAMES} hosts; check the ranges")
    names: list[str] = []
    # NodeSet sorts; keep the user's order across comma-separated parts, which matters for heads.
    for part in _split_top_level(expr):
        try:
            for piece in _split_single_bracket(part):
                names.extend(NodeSet(piece, resolver=_NO_GROUPS))
        except (NodeSetException, RangeSetParseError, GroupResolverError) as exc:
            raise HostlistError(f"bad hostlist {expr[:80]!r}: {exc}") from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - ClusterShell's internals on odd input (AssertionError: range too large)
            raise HostlistError(f"bad hostlist {expr[:80]!r}: {type(exc).__name__}: {exc}") from None
    if not names:  # NodeSet's operators can leave nothing: a&b, a!a
        raise HostlistError(f"bad hostlist {expr!r}: names no host")
    return names


def _upper_bound(expr: str) -> int:
    """At least how many names NodeSet would build for ``expr``: per word, the product of its bracket ranges'
    sizes, summed (an upper bound, counted without expanding anything)."""
    total = 0
    for word in re.split(r"[,!&^\s]+(?![^\[]*\])", expr):
        count = 1
        for group in _GROUP.findall(word):
            size = 0
            for item in group.split(","):
                m = _RANGE.match(item)
                if m:
                    lo, hi, step = int(m[1]), int(m[2]), int(m[3] or 1)
                    size += max(0, hi - lo) // max(step, 1) + 1
                else:
                    size += 1
            count *= size
            if count > MAX_NAMES:
                return count
        total += count
    return total


def fold(names: Iterable[str]) -> str:
    """Fold names into the shortest hostlist expression (``n1,n2,n3`` -> ``n[1-3]``)."""
    names = list(names)
    try:
        return str(NodeSet.fromlist(names, resolver=_NO_GROUPS))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - ClusterShell's own errors, and its internals', become ours
        shown = ",".join(names[:5])[:80] + ("..." if len(names) > 5 else "")
        raise HostlistError(f"cannot fold names {shown!r}: {type(exc).__name__}: {exc}") from None


def fold_numbers(numbers: Iterable[int]) -> str:
    """Fold integers into a range expression, as inside a hostlist's brackets (``0,1,2,5`` -> ``0-2,5``)."""
    from ClusterShell.RangeSet import RangeSet

    return str(RangeSet([str(n) for n in numbers]))


def _split_single_bracket(part: str) -> list[str]:
    """``10.0.0.[7,3-4]`` -> ``10.0.0.7``, ``10.0.0.[3-4]``: NodeSet sorts a bracket's items, but the order written
    matters where names are paired with addresses. Parts with several brackets are left to NodeSet."""
    if part.count("[") != 1:
        return [part]
    head, rest = part.split("[", 1)
    inner, tail = rest.split("]", 1) if "]" in rest else (rest, "")
    return [f"{head}[{item}]{tail}" for item in inner.split(",")]


def _split_top_level(expr: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in expr.strip():
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    if any(not p for p in parts) or depth != 0:
        raise HostlistError(f"bad hostlist {expr!r}: unbalanced brackets or empty item")
    return parts


# NodeSet would otherwise read /etc/clustershell/groups.conf and expand @group names through it.
from ClusterShell.NodeUtils import GroupResolver  # noqa: E402

_NO_GROUPS = GroupResolver()
