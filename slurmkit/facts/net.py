"""Parsers for iproute2's one-line forms: ``ip -o -4 addr show`` and ``ip -o route get ADDRESS``."""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.models import Ipv4Address, RouteInfo

# `2: eth0    inet 10.1.2.3/24 brd 10.1.2.255 scope global eth0\       valid_lft forever preferred_lft forever`
_ADDR = re.compile(r"^(\d+):\s+(\S+)\s+inet\s+(\S+)(.*)$")
# Route types iproute2 prints before the destination when the route is not plain unicast.
_ROUTE_TYPES = {"unicast", "local", "broadcast", "multicast", "anycast", "unreachable", "prohibit", "blackhole",
                "throw", "nat"}


def parse_ip_addr(text: str) -> list[Ipv4Address]:
    """``ip -o -4 addr show``: one address per line, ``INDEX: IFNAME    inet ADDR/LEN [peer P/LEN] [brd B]
    scope SCOPE [flags] LABEL\\ valid_lft ...``.

    ``ifname`` is the link name without iproute2's ``@peer`` suffix (``eth0@if12``); ``label`` is the address
    label printed after the flags (``eth0:1`` for an alias, else the link name). Lines of other forms are skipped.
    """
    out: list[Ipv4Address] = []
    for line in clean(text).split("\n"):
        m = _ADDR.match(line.strip())
        if m is None:
            continue
        index, ifname, addr, rest = m.groups()
        rest = rest.split("\\", 1)[0]  # `\` joins the lifetime line in -o output
        words = rest.split()
        address, _, prefix = addr.partition("/")
        if "peer" in words:  # point-to-point: `inet 10.0.0.1 peer 10.0.0.2/32`, the length is the peer's
            peer = words[words.index("peer") + 1]
            prefix = peer.partition("/")[2]
        scope = words[words.index("scope") + 1] if "scope" in words[:-1] else None
        label = words[-1] if words and words[-1] != scope else None
        out.append(Ipv4Address(index=int(index), ifname=ifname.split("@", 1)[0], address=address,
                               prefixlen=int(prefix) if prefix.isdigit() else None, scope=scope, label=label))
    return out


def parse_ip_route_get(text: str) -> RouteInfo | None:
    """``ip -o route get ADDRESS``: ``[TYPE] DEST [via GW] dev IFNAME [src SRC] ...\\    cache``.

    ``kind`` is the route type (``local`` for an address of the host itself, ``unicast`` when none is printed).
    None for empty output (no ``ip``, or ``RTNETLINK answers: Network is unreachable`` on stderr).
    """
    for line in clean(text).split("\n"):
        words = line.split("\\", 1)[0].split()
        if not words:
            continue
        kind = "unicast"
        if words[0] in _ROUTE_TYPES:
            kind, words = words[0], words[1:]
        if not words:
            continue

        def value(key: str) -> str | None:
            return words[words.index(key) + 1] if key in words[1:-1] else None

        return RouteInfo(destination=words[0], kind=kind, dev=value("dev"), via=value("via"), src=value("src"))
    return None


def route_to_host_command(name: str, address: str | None = None) -> str:
    """The shell command asking a node for its route to host ``name``: the name as the node resolves it
    (``getent ahostsv4``: /etc/hosts or DNS, what Slurm and NCCL on the node would use), else ``address``.
    Prints nothing when ``ip`` is missing or no route exists (the reason goes to stderr)."""
    import shlex

    fallback = f" || _a={shlex.quote(address)}" if address else ""
    return (f"_a=$(getent ahostsv4 {shlex.quote(name)} 2>/dev/null | awk 'NR==1{{print $1}}'); "
            f'[ -n "$_a" ]{fallback}; '
            f'command -v ip >/dev/null 2>&1 && [ -n "$_a" ] && ip -o route get "$_a" || true')
