"""Parsers for ``ibstat``, ``ibstatus``, ``ibdev2netdev`` and the sysfs port files of RDMA devices."""

from __future__ import annotations

import re

from slurmkit.facts._text import clean
from slurmkit.facts.errors import FactsParseError
from slurmkit.facts.models import IbDevice, IbPort, IbReport, NetdevLink

IBSTAT_COMMAND = "ibstat"
# Every Port section of ibstat (infiniband-diags) prints these; a section without one was cut short.
_PORT_KEYS = {"State": "state", "Physical state": "phys_state", "Rate": "rate_gbps", "Link layer": "link_layer"}

# ibstat prints infiniband-diags' words; sysfs and ibstatus print "4: ACTIVE". Normalise to the sysfs words.
_IBSTAT_STATES = {"down": "DOWN", "initializing": "INIT", "armed": "ARMED", "active": "ACTIVE"}


def _state(value: str) -> str:
    value = value.strip()
    if ":" in value:  # "4: ACTIVE"
        value = value.split(":", 1)[1].strip()
    return _IBSTAT_STATES.get(value.lower(), value.upper())


def _phys(value: str) -> str:
    value = value.strip()
    return value.split(":", 1)[1].strip() if ":" in value else value


def _rate(value: str) -> float | None:
    m = re.match(r"\s*([0-9.]+)", value)
    return float(m.group(1)) if m else None


def parse_ibstat(text: str) -> IbReport:
    """``ibstat`` (run with stderr merged): ``CA 'mlx5_0'`` blocks with ``Port N:`` sections.

    A failing ibstat (exit 255) prints the devices it read, then ``ibpanic: ... IB device 'mlx5_8' failed``:
    the devices are kept, the line goes to ``errors`` and the named device to ``failed_devices``.

    A CA block cut short or garbled raises :class:`FactsParseError`: a port section lacking one of State,
    Physical state, Rate, Link layer (the line named is the port's ``Port N:``), fewer ports than the block's
    ``Number of ports`` (the ``CA`` line), an indented line that is no ``key: value``, a Rate that is no number.
    """
    report = IbReport()
    dev: IbDevice | None = None
    port: IbPort | None = None
    dev_line = port_line = 0
    seen: set[str] = set()
    declared_ports: int | None = None

    def close_port() -> None:
        if port is not None:
            lacking = [k for k in _PORT_KEYS if k not in seen]
            if lacking:
                raise FactsParseError(IBSTAT_COMMAND, port_line, f"CA '{dev.name}' port {port.number}: no "
                                      f"{', '.join(lacking)} (output cut short?)")

    def close_dev() -> None:
        close_port()
        if dev is not None and declared_ports is not None and len(dev.ports) < declared_ports:
            raise FactsParseError(IBSTAT_COMMAND, dev_line, f"CA '{dev.name}': Number of ports {declared_ports}, "
                                  f"{len(dev.ports)} printed (output cut short?)")

    for no, line in enumerate(clean(text).split("\n"), 1):
        stripped = line.strip()
        if not stripped:
            continue
        # ibstat's only unindented lines are "CA '...'"; anything else there is an error line (ibpanic/ibwarn)
        if not line[:1].isspace() and not stripped.startswith("CA '"):
            report.errors.append(stripped)
            m = re.search(r"IB device '([^']+)'", stripped)
            if m:
                report.failed_devices.append(m.group(1))
            continue
        m = re.match(r"^CA '([^']+)'", stripped)
        if m and not line[:1].isspace():
            close_dev()
            dev = IbDevice(name=m.group(1), source="ibstat")
            report.devices.append(dev)
            port, dev_line, declared_ports = None, no, None
            continue
        if dev is None:
            continue
        m = re.match(r"^Port (\d+):$", stripped)
        if m:
            close_port()
            port, port_line, seen = IbPort(number=int(m.group(1))), no, set()
            dev.ports.append(port)
            continue
        if ":" not in stripped:
            raise FactsParseError(IBSTAT_COMMAND, no, f"CA '{dev.name}': {stripped!r} is no 'key: value' line")
        key, value = (s.strip() for s in stripped.split(":", 1))
        if port is None:
            if key == "CA type":
                dev.ca_type = value
            elif key == "Firmware version":
                dev.firmware = value
            elif key == "Node GUID":
                dev.node_guid = value
            elif key == "Number of ports" and value.isdigit():
                declared_ports = int(value)
            continue
        if key in _PORT_KEYS:
            seen.add(key)
        _set_port(port, _IBSTAT_KEYS.get(key), value)
        if key == "Rate" and port.rate_gbps is None:
            raise FactsParseError(IBSTAT_COMMAND, no, f"CA '{dev.name}' port {port.number}: Rate {value!r} "
                                  "is no number")
    close_dev()
    return report


# The same port facts under each tool's names: ibstat ("Physical state"), ibstatus ("phys state"), and sysfs file
# names (used as they are: state, phys_state, rate, link_layer).
_IBSTAT_KEYS = {"State": "state", "Physical state": "phys_state", "Rate": "rate", "Link layer": "link_layer",
                "Base lid": "base_lid", "SM lid": "sm_lid"}
_IBSTATUS_KEYS = {"state": "state", "phys state": "phys_state", "rate": "rate", "link_layer": "link_layer",
                  "base lid": "base_lid", "sm lid": "sm_lid"}


def _set_port(port: IbPort, key: str | None, value: str) -> None:
    """Set one port fact from its (normalised) key; unknown keys are ignored."""
    if key == "state":
        port.state = _state(value)
    elif key == "phys_state":
        port.phys_state = _phys(value)
    elif key == "rate":
        port.rate_gbps = _rate(value)
    elif key in ("link_layer", "base_lid", "sm_lid"):
        setattr(port, key, value)


_IBSTATUS_HEAD = re.compile(r"^Infiniband device '([^']+)' port (\d+) status:")


def parse_ibstatus(text: str) -> IbReport:
    """``ibstatus``: one ``Infiniband device 'X' port N status:`` block per port, ``key: value`` lines."""
    report = IbReport()
    by_name: dict[str, IbDevice] = {}
    port: IbPort | None = None
    for line in clean(text).split("\n"):
        m = _IBSTATUS_HEAD.match(line.strip())
        if m:
            name = m.group(1)
            if name not in by_name:
                by_name[name] = IbDevice(name=name, source="ibstatus")
                report.devices.append(by_name[name])
            port = IbPort(number=int(m.group(2)))
            by_name[name].ports.append(port)
            continue
        if port is None or ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        _set_port(port, _IBSTATUS_KEYS.get(key), value)
    return report


_NETDEV = re.compile(r"^(\S+) port (\d+) ==> (\S+) \((\w+)\)\s*$")


def parse_ibdev2netdev(text: str) -> list[NetdevLink]:
    """``ibdev2netdev``: ``mlx5_0 port 1 ==> enp25s0np0 (Up)``."""
    out = []
    for line in clean(text).split("\n"):
        m = _NETDEV.match(line.strip())
        if m:
            out.append(NetdevLink(hca=m.group(1), port=int(m.group(2)), netdev=m.group(3), up=m.group(4) == "Up"))
    return out


# The collect command for the sysfs variant (kept beside its parser; also in slurmkit.facts.COMMANDS):
SYSFS_IB_COMMAND = (
    "for f in /sys/class/infiniband/*/ports/*/state /sys/class/infiniband/*/ports/*/phys_state "
    "/sys/class/infiniband/*/ports/*/rate /sys/class/infiniband/*/ports/*/link_layer; "
    'do [ -r "$f" ] && echo "$f: $(cat "$f")"; done; true'
)
_SYSFS_IB = re.compile(r"^/sys/class/infiniband/([^/]+)/ports/(\d+)/(state|phys_state|rate|link_layer): ?(.*)$")


def parse_sysfs_ib(text: str) -> IbReport:
    """Lines ``/sys/class/infiniband/mlx5_0/ports/1/state: 4: ACTIVE`` from :data:`SYSFS_IB_COMMAND`.

    No line (no /sys/class/infiniband) gives an empty report: the node has no RDMA device.
    """
    report = IbReport()
    devs: dict[str, IbDevice] = {}
    ports: dict[tuple[str, int], IbPort] = {}
    for line in clean(text).split("\n"):
        m = _SYSFS_IB.match(line.strip())
        if not m:
            continue
        name, number, key, value = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        if name not in devs:
            devs[name] = IbDevice(name=name, source="sysfs")
            report.devices.append(devs[name])
        if (name, number) not in ports:
            ports[(name, number)] = IbPort(number=number)
            devs[name].ports.append(ports[(name, number)])
        _set_port(ports[(name, number)], key, value.strip())
    return report
