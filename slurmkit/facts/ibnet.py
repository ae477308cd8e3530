"""Parser for ``ibnetdiscover`` (the topology-file format)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from slurmkit.facts._text import clean

_NODE = re.compile(r'^(Switch|Ca|Rt)\s+(\d+)\s+"([^"]+)"\s*(?:#\s*"([^"]*)")?')
_LINK = re.compile(r'^\[(\d+)\]\s*"([^"]+)"\[(\d+)\]\S*\s*(?:#\s*"([^"]*)")?(.*)$')


@dataclass
class IbnetLink:
    """One ``[port] "H-guid"[rport](guid) # "desc" lid N width`` line under a node."""

    port: int
    remote_id: str
    remote_port: int
    remote_desc: str | None
    rest: str


@dataclass
class IbnetNode:
    """A ``Switch``/``Ca`` block: its id (``S-...``/``H-...``), its description and its links."""

    kind: str
    ports: int
    node_id: str
    desc: str | None
    links: list[IbnetLink] = field(default_factory=list)


def parse_ibnetdiscover(text: str) -> list[IbnetNode]:
    """Node blocks with their links; header, ``vendid=`` lines and cut markers (``...omitted``) are skipped.
    GUIDs are kept as printed (they may be redacted, not hex)."""
    nodes: list[IbnetNode] = []
    current: IbnetNode | None = None
    for line in clean(text).split("\n"):
        line = line.strip()
        m = _NODE.match(line)
        if m:
            current = IbnetNode(kind=m.group(1), ports=int(m.group(2)), node_id=m.group(3), desc=m.group(4))
            nodes.append(current)
            continue
        m = _LINK.match(line)
        if m and current is not None:
            current.links.append(
                IbnetLink(
                    port=int(m.group(1)),
                    remote_id=m.group(2),
                    remote_port=int(m.group(3)),
                    remote_desc=m.group(4),
                    rest=m.group(5).strip(),
                )
            )
            continue
        if not line:
            current = None
    return nodes
