"""The facts cache's old address: the cache and ``hardware_source`` live in :mod:`slurmkit.hardware`.

Kept so that ``from slurmkit.facts_cache import hardware_source`` goes on working (with the declared-vs-found
check that :func:`slurmkit.hardware.hardware_source` runs); new code imports from :mod:`slurmkit.hardware`.
"""

from __future__ import annotations

from slurmkit.hardware import facts_dir, hardware_source, read_facts, write_facts

__all__ = ["facts_dir", "hardware_source", "read_facts", "write_facts"]
