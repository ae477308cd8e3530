"""Where slurmkit keeps its state: the ``.slurmkit/`` folder beside a cluster file.

One object names every path in it, so that no module spells ``".slurmkit"`` itself::

    .slurmkit/                      StateDir.of(cluster_file).root
        munge.key                   .munge_key       the cluster's munge key (0600; bootstrap)
        mesh_ed25519, .pub          .mesh_key, .mesh_public_key   the node-to-node SSH key pair (ssh mesh)
        facts/<host>.json           .facts_dir, .facts_file(host)  facts cached by discover
        bench/<run>/                .bench_dir       saved bench runs (the user's: never removed with a cluster)
        health/                     .health_dir      health's node state and run history

A local cluster's own cluster file lives in the ``.slurmkit/`` of the current directory:
``StateDir.here().local_cluster_file(name)`` is ``.slurmkit/local/<name>/cluster.yaml`` (relative, as printed).

Pure: nothing here creates, reads or removes a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from slurmkit.errors import SlurmkitError

STATE_DIR_NAME = ".slurmkit"


def _component(name: str, what: str, fix: str) -> str:
    """``name`` when it is one path component (no ``/``, not ``.`` or ``..``); else an error naming it."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise SlurmkitError(f"{name!r} is not a usable {what}: it must be one path component (no '/', not '.' "
                            f"or '..'); {fix}")
    return name


@dataclass(frozen=True)
class StateDir:
    """The ``.slurmkit/`` folder at ``root`` and the paths in it."""

    root: Path

    @classmethod
    def of(cls, cluster_file: str | os.PathLike[str]) -> StateDir:
        """The state folder beside ``cluster_file`` (``~`` expanded, the path resolved)."""
        return cls(Path(cluster_file).expanduser().resolve().parent / STATE_DIR_NAME)

    @classmethod
    def here(cls) -> StateDir:
        """The state folder of the current directory, as a relative path (``.slurmkit``)."""
        return cls(Path(STATE_DIR_NAME))

    @property
    def munge_key(self) -> Path:
        return self.root / "munge.key"

    @property
    def mesh_key(self) -> Path:
        """The mesh's private key; its public key is :attr:`mesh_public_key`."""
        return self.root / "mesh_ed25519"

    @property
    def mesh_public_key(self) -> Path:
        return self.root / "mesh_ed25519.pub"

    @property
    def facts_dir(self) -> Path:
        return self.root / "facts"

    def facts_file(self, host: str) -> Path:
        """The cached facts of ``host`` (``facts/<host>.json``); a SlurmkitError for a name that would leave
        :attr:`facts_dir`."""
        return self.facts_dir / f"{_component(host, 'host name', 'rename the host in the cluster file')}.json"

    @property
    def bench_dir(self) -> Path:
        """Saved bench runs, one folder per run (the default of ``bench -o`` and of ``support-bundle``)."""
        return self.root / "bench"

    @property
    def health_dir(self) -> Path:
        """``slurmkit health``'s kept node state and run history (``state.json``, ``history.jsonl``)."""
        return self.root / "health"

    @property
    def local_dir(self) -> Path:
        return self.root / "local"

    def local_cluster_file(self, name: str) -> Path:
        """The cluster file of the local cluster ``name``: ``local/<name>/cluster.yaml``; a SlurmkitError for a
        name that would leave :attr:`local_dir`."""
        return self.local_dir / _component(name, "local cluster name", "give another --name") / "cluster.yaml"

    @property
    def cluster_owned(self) -> tuple[Path, ...]:
        """What belongs to the cluster alone and goes with it (``local down``): the munge key, the mesh key pair,
        the cached facts. Bench results are the user's and are not in it."""
        return self.munge_key, self.mesh_key, self.mesh_public_key, self.facts_dir
