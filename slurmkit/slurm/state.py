"""What Slurm's node and controller states mean for slurmkit: the one place where a node is judged down,
drained, coming up, usable or ready, and where one cluster state is drawn from them. Pure: these read the
records of :mod:`slurmkit.slurm.parsers` (``NodeInfo.state`` is the base state, ``NodeInfo.flags`` the rest, as
:func:`~slurmkit.slurm.parsers.parse_node_state` normalises every Slurm version's spelling), never text.

Node predicates (also properties of :class:`~slurmkit.slurm.parsers.NodeInfo`: ``node.is_down`` ...):

- :func:`is_down`: Slurm cannot run anything there: DOWN, FAIL, FAILING, INVAL, ERROR, or flagged
  NOT_RESPONDING (``*``), FAIL or INVALID_REG.
- :func:`is_invalid`: Slurm refused the node's registration (INVAL, INVALID_REG): final for this configuration.
- :func:`is_drained`: drained or draining (DRAIN): capacity a person or Slurm took away.
- :func:`is_coming_up`: not in service yet, but on its way: UNKNOWN (not registered), FUTURE, powering up,
  powered down (power saving resumes it for a job), reboot requested or issued.
- :func:`is_usable`: a new job may be placed there: not down, not drained, not FUTURE.
- :func:`is_ready`: in service now: not down, not coming up, not powering down (drain is judged apart).

Cluster state (:func:`cluster_state`, ``slurmkit status``), the highest-priority state found, in the manner of
TensorPool (FAILED > DEGRADED > CONFIGURING > RUNNING):

- FAILED: no controller answers ``scontrol ping``; or the cluster has no node; or every node is down.
- DEGRADED: the primary controller is down while a backup answers; or any node is down; or any node is drained.
- CONFIGURING: any node is coming up (UNKNOWN, FUTURE, powering up, powered down, rebooting).
- RUNNING: otherwise (every node IDLE, ALLOCATED, MIXED, COMPLETING or PLANNED, every controller up).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from slurmkit.slurm.parsers import Controller, NodeInfo

DOWN_STATES = frozenset({"DOWN", "FAIL", "FAILING", "INVAL", "ERROR"})
DOWN_FLAGS = frozenset({"NOT_RESPONDING", "FAIL", "INVALID_REG"})
INVALID = frozenset({"INVAL", "INVALID_REG"})
# sinfo's summary words (drained, draining) become IDLE/ALLOCATED + DRAIN when parsed; a record built by hand
# may still carry them as its state.
DRAIN_STATES = frozenset({"DRAIN", "DRAINED", "DRAINING"})
COMING_UP_STATES = frozenset({"UNKNOWN", "FUTURE"})
COMING_UP_FLAGS = frozenset({"POWERING_UP", "POWERED_DOWN", "REBOOT_REQUESTED", "REBOOT_ISSUED"})
GOING_DOWN_FLAGS = frozenset({"POWERING_DOWN"})

# Reasons Slurm gives when it drains or downs a node whose hardware or registration does not match slurm.conf
# (slurmctld's validate_node_specs, 22.05), or that stopped answering: a configuration's fault, which a fixed
# configuration clears. Any other reason is a person's (an admin's drain) and is left alone.
CONFIG_REASON = re.compile(
    r"gres/\w+ count reported lower|Low RealMemory|Low socket\*core\*thread count|Low CPUs|Node unexpectedly rebooted|"
    r"Not responding|invalid", re.I)
MAINTENANCE_REASON = re.compile(r"maint", re.I)


def _words(node: NodeInfo) -> set[str]:
    """The base state and the flags: a flag Slurm printed alone (``NOT_RESPONDING``) is parsed as the state."""
    return {node.state, *node.flags}


def is_down(node: NodeInfo) -> bool:
    """Slurm cannot run anything on the node (down, failed, refused, or not responding)."""
    return node.state in DOWN_STATES or bool(DOWN_FLAGS & _words(node))


def is_invalid(node: NodeInfo) -> bool:
    """Slurm refused the node's registration (INVAL / INVALID_REG): waiting does not fix it, a new config may."""
    return bool(INVALID & _words(node))


def is_drained(node: NodeInfo) -> bool:
    """Drained or draining (Slurm places no new job there)."""
    return bool(DRAIN_STATES & _words(node))


def is_coming_up(node: NodeInfo) -> bool:
    """Not in service yet but on its way (unregistered, future, powering up, powered down, rebooting)."""
    return node.state in COMING_UP_STATES or bool(COMING_UP_FLAGS & _words(node))


def is_usable(node: NodeInfo) -> bool:
    """A job submitted now may be placed there (Slurm powers a powered-down node up for it; an UNKNOWN node is
    used once it registers): not down, not drained, not FUTURE."""
    return not is_down(node) and not is_drained(node) and node.state != "FUTURE"


def is_ready(node: NodeInfo) -> bool:
    """In service now: not down, not coming up, not powering down. Drain is judged apart (:func:`is_drained`)."""
    return not is_down(node) and not is_coming_up(node) and not GOING_DOWN_FLAGS & _words(node)


def drained_for_config(node: NodeInfo) -> bool:
    """Slurm itself drained or downed the node over a configuration mismatch (:data:`CONFIG_REASON`)."""
    return bool(CONFIG_REASON.search(node.reason or ""))


def for_maintenance(node: NodeInfo) -> bool:
    """The node's reason says it is out for maintenance."""
    return bool(MAINTENANCE_REASON.search(node.reason or ""))


def needs_resume(node: NodeInfo) -> bool:
    """Left DOWN or drained by an earlier configuration Slurm found wrong, and answering again: once the
    configuration is fixed, ``scontrol update state=resume`` puts it back (Slurm does not by itself). Never a
    node an admin drained for a reason of their own, nor one Slurm still refuses (INVAL) or cannot reach."""
    return ((node.state == "DOWN" or is_drained(node)) and not is_invalid(node)
            and "NOT_RESPONDING" not in _words(node) and drained_for_config(node))


def describe(node: NodeInfo) -> str:
    """``name STATE+FLAGS: reason`` for a person."""
    return f"{node.name} {node.state_text}" + (f": {node.reason}" if node.reason else "")


def node_problem(node: NodeInfo) -> str | None:
    """Why a registered node is not usable once its configuration was applied, or None: down, refused, not
    responding or not registered (UNKNOWN); or drained by Slurm for a configuration mismatch. A node an admin
    drained for a reason of their own is left alone: that is not the configuration's failure."""
    bad = is_down(node) or node.state == "UNKNOWN" or (is_drained(node) and drained_for_config(node))
    return (f"Slurm reports {node.state_text}" + (f": {node.reason}" if node.reason else "")) if bad else None


CLUSTER_STATES = ("FAILED", "DEGRADED", "CONFIGURING", "RUNNING")  # highest priority first


def cluster_state(nodes: Iterable[NodeInfo], controllers: Iterable[Controller]) -> tuple[str, list[str]]:
    """One cluster state and the reasons for it (see the module docstring for the rules)."""
    nodes, controllers = list(nodes), list(controllers)
    found: list[tuple[str, str]] = []
    if not controllers or not any(c.up for c in controllers):
        found.append(("FAILED", "no slurmctld answers"))
    elif not any(c.up for c in controllers if c.primary):
        found.append(("DEGRADED", "primary slurmctld down; a backup answers"))
    if not nodes:
        found.append(("FAILED", "no compute nodes"))
    down = [n for n in nodes if is_down(n)]
    if nodes and len(down) == len(nodes):
        found.append(("FAILED", "every node is down"))
    for n in down:
        found.append(("DEGRADED", describe(n)))
    for n in nodes:
        if is_down(n):
            continue
        if is_drained(n):
            found.append(("DEGRADED", describe(n)))
        elif is_coming_up(n):
            found.append(("CONFIGURING", f"{n.name} {n.state_text}"))
    if not found:
        return "RUNNING", []
    top = min(CLUSTER_STATES.index(s) for s, _ in found)
    return CLUSTER_STATES[top], [why for s, why in found if CLUSTER_STATES.index(s) == top]
