"""Node health: a check program run on each compute node (:mod:`slurmkit.health.check_node`), the values it
expects (:mod:`slurmkit.health.expected`), and the drain/resume policy with its kept state
(:mod:`slurmkit.health.policy`)."""

from __future__ import annotations

from importlib import resources


def program_text() -> str:
    """The node check program's source, as sent to ``python3 -`` on a node (read from the installed package,
    so a wheel carries it as the module it is)."""
    return resources.files("slurmkit.health").joinpath("check_node.py").read_text()
