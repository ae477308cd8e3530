"""What the node check program expects of each compute node, from the cluster file and the discovered facts.

Read-only use of :mod:`slurmkit.hardware` (``hardware_source``: declared hardware, else the cached facts, the same
hardware render writes into slurm.conf; ``cached_records`` and the facts' topology for the rail HCAs). Pure but
for reading the facts cache.

One node's expected values, the JSON :mod:`slurmkit.health.check_node` takes::

    {"host": "node-1",
     "gpus": {"count": 8, "type": "h100", "files": ["/dev/nvidia0", ...]} | null,
     "rails": [{"hca": "mlx5_0", "rate": 400.0}, ...],     # usable rail HCAs as discovered
     "mounts": [{"path": SHARED_DIR, "token_file": TOKEN_FILE, "token": "..."}],
     "munge": true,
     "memory_mb": REALMEMORY | null,
     "spool": {"path": SLURMD_SPOOL_DIR, "min_free_mb": 1024}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from slurmkit.cluster import Cluster

TOKEN_FILE = ".slurmkit-health-token"  # in shared_dir: written once by the head, read back by each node
SLURMD_SPOOL_DIR = "/var/spool/slurmd"  # what slurmkit.render writes unless the cluster file's slurm_conf says
SPOOL_MIN_FREE_MB = 1024


def spool_dir(cluster: Cluster) -> str:
    for key, value in cluster.slurm_conf.items():
        if key.lower() == "slurmdspooldir":
            return str(value)
    return SLURMD_SPOOL_DIR


def rails_of(record: Mapping[str, Any] | None) -> list[dict]:
    """The rail HCAs of a cached facts record that discovery found usable, each with the rate it found (the
    rate a later check must still see). Empty without facts, GPUs or a topology matrix."""
    if not record:
        return []
    from slurmkit.hardware import node_facts
    from slurmkit.topology import node_topology

    topo = node_topology(node_facts(record), allow_roce=True)
    seen: dict[str, dict] = {}
    for rail in topo.rails:
        if rail.usable and rail.hca not in seen:
            seen[rail.hca] = {"hca": rail.hca, "rate": rail.rate_gbps}
    return list(seen.values())


def expected_values(cluster: Cluster, cluster_file: Path, names: list[str], token: str | None,
                    records: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict]:
    """Each named compute's expected values (see the module doc). ``token``: the shared dir's token as the head
    sees it (None: the mount check only asks for the directory)."""
    from slurmkit.hardware import cached_records, hardware_source

    if records is None:
        records = cached_records(cluster, cluster_file)
    source = hardware_source(cluster, cluster_file, records)
    out = {}
    for name in names:
        group = cluster.group_of(name)
        hw = source(name, group)
        gpus = None  # every GPU type together; the model is checked only when the node has one type
        if hw is not None and hw.gpu_total:
            sets = hw.gpu_sets
            gpus = {"count": hw.gpu_total, "type": sets[0].type if len(sets) == 1 else None,
                    "files": [f for gs in sets for f in gs.files]}
        elif group.gpu_types:
            types = group.gpu_types
            gpus = {"count": group.gpu_count, "type": types[0].type if len(types) == 1 else None,
                    "files": [f for g in types for f in g.device_files()]}
        mounts = []
        if cluster.shared_dir:
            mounts.append({"path": cluster.shared_dir, "token_file": TOKEN_FILE, "token": token})
        out[name] = {
            "host": name,
            "gpus": gpus,
            "rails": rails_of(records.get(name)),
            "mounts": mounts,
            "munge": True,
            "memory_mb": hw.memory_mb if hw is not None else None,
            "spool": {"path": spool_dir(cluster), "min_free_mb": SPOOL_MIN_FREE_MB},
        }
    return out
