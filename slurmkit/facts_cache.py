"""Facts cached by `slurmkit discover`, beside the cluster file: ``.slurmkit/facts/<host>.json``.

Rendering reads them for node groups whose hardware the cluster file leaves out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slurmkit.cluster import Cluster, NodeGroup
from slurmkit.render import Hardware, HardwareSource, declared_hardware


def facts_dir(cluster_file: Path) -> Path:
    return Path(cluster_file).expanduser().resolve().parent / ".slurmkit" / "facts"


def read_facts(cluster_file: Path, host: str) -> dict[str, Any] | None:
    p = facts_dir(cluster_file) / f"{host}.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        return None


def write_facts(cluster_file: Path, host: str, record: dict[str, Any]) -> Path:
    d = facts_dir(cluster_file)
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{host}.json"
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, p)
    return p


def hardware_source(cluster: Cluster, cluster_file: Path) -> HardwareSource:
    """Declared hardware where the group gives it, else the host's cached facts (None when neither)."""

    def source(name: str, group: NodeGroup) -> Hardware | None:
        hw = declared_hardware(name, group)
        if hw is not None:
            return hw
        record = read_facts(cluster_file, name)
        if record is None:
            return None
        from slurmkit.discovery import hardware_from_facts

        return hardware_from_facts(record, group, cluster.slurm_version)

    return source
