"""The Slurm backend interface and how to get one.

A :class:`Backend` submits sbatch scripts, reads job, node, partition and controller states, cancels jobs and
reads job output files. Two implementations:

- ``cli`` (:mod:`slurmkit.slurm.cli_backend`, the default): the Slurm commands, run through a *runner*;
- ``pyslurm`` (:mod:`slurmkit.slurm.pyslurm_backend`): only where pyslurm imports and matches the installed Slurm.

A runner is ``Callable[[list[str], str | None], CompletedProcess-like]``: it runs one argv (never a shell string)
with optional stdin text and returns an object with ``returncode``, ``stdout``, ``stderr``. :func:`local_runner`
runs commands here with ``SLURM_CONF`` always set; :class:`~slurmkit.slurm.commands.ConnRunner` runs them over
one host's connection; the head runner (SSH to the head node) comes from ``slurmkit.remote``. A runner must pass
every argv item through unchanged (quote each one).

This package is the only part of slurmkit that knows Slurm:

- :mod:`slurmkit.slurm.commands`: every Slurm command slurmkit runs, and the ``SLURM_CONF`` rule;
- :mod:`slurmkit.slurm.parsers`: their output -> typed records (``NodeInfo``, ``JobInfo``, ``Controller``, ...);
- :mod:`slurmkit.slurm.state`: what node states mean (down, drained, usable, ...) and the cluster state;
- the backends below, for jobs.
"""

from __future__ import annotations

import os
import subprocess
from typing import Callable, Protocol, Sequence

from slurmkit.errors import SlurmkitError
from slurmkit.slurm.commands import DEFAULT_CONF, ConnRunner, conf_env, local_conf
from slurmkit.slurm.parsers import Controller, JobInfo, NodeInfo, PartitionInfo, TERMINAL_STATES
from slurmkit.slurm.state import CLUSTER_STATES, cluster_state

__all__ = [
    "Backend", "Runner", "JobInfo", "NodeInfo", "PartitionInfo", "Controller", "TERMINAL_STATES",
    "get_backend", "available_backends", "local_runner", "BACKENDS", "DEFAULT_CONF", "ConnRunner", "conf_env",
    "cluster_state", "CLUSTER_STATES",
]

Runner = Callable[[list[str], "str | None"], "subprocess.CompletedProcess[str]"]


class Backend(Protocol):
    """What slurmkit needs from Slurm. Job ids are strings."""

    name: str

    def available(self) -> tuple[bool, str]:
        """(True, version) when this backend can talk to Slurm here, else (False, the reason)."""

    def submit(self, script: str, sbatch_args: Sequence[str] = ()) -> str:
        """Submit a batch script (its text) with extra sbatch arguments; return the job id."""

    def jobs(self) -> list[JobInfo]:
        """Every job the controller knows (pending, running, and recently ended ones)."""

    def job(self, job_id: str) -> JobInfo:
        """One job: ``scontrol show job`` while the controller still remembers it (MinJobAge; one command with
        the state and the expanded output paths), then squeue, then sacct for jobs the controller forgot (needs
        slurmdbd); state ``UNKNOWN`` when nobody knows it."""

    def cancel(self, job_id: str) -> None:
        ...

    def nodes(self) -> list[NodeInfo]:
        ...

    def partitions(self) -> list[PartitionInfo]:
        ...

    def controllers(self) -> list[Controller]:
        """Every slurmctld in slurm.conf order (primary first) and whether it answers."""

    def read_file(self, path: str, offset: int = 0) -> str:
        """A job output file from byte ``offset`` on ("" when it does not exist yet)."""


def local_runner(slurm_conf: str | os.PathLike | None = None, timeout: float = 60) -> Runner:
    """Run commands on this machine with ``SLURM_CONF`` set to ``slurm_conf``, else ``$SLURM_CONF``, else
    /etc/slurm/slurm.conf when it exists. Without any, raise: a Slurm command with no slurm.conf looks for a
    configuration server through DNS SRV records instead of failing."""
    conf = local_conf(slurm_conf)
    if not conf:
        raise SlurmkitError(
            "no slurm.conf here: set SLURM_CONF, or run slurmkit on a node of the cluster, or through the head node"
        )
    env = {**os.environ, "SLURM_CONF": conf}

    def run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=timeout)
        except FileNotFoundError:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(argv, 124, exc.stdout or "", f"timed out after {timeout} s")

    run.slurm_conf = conf  # type: ignore[attr-defined]
    return run


BACKENDS = ("cli", "pyslurm")


def get_backend(kind: str = "cli", runner: Runner | None = None) -> Backend:
    """A backend by name. ``runner`` (cli only) defaults to :func:`local_runner`."""
    if kind == "cli":
        from slurmkit.slurm.cli_backend import CliBackend

        return CliBackend(runner or local_runner())
    if kind == "pyslurm":
        from slurmkit.slurm.pyslurm_backend import PyslurmBackend

        return PyslurmBackend()
    raise SlurmkitError(f"unknown Slurm backend {kind!r}; valid: {', '.join(BACKENDS)}")


def available_backends(runner: Runner | None = None) -> dict[str, tuple[bool, str]]:
    """Each backend name -> (available, version or reason)."""
    out = {}
    for kind in BACKENDS:
        try:
            out[kind] = get_backend(kind, runner).available()
        except SlurmkitError as exc:
            out[kind] = (False, str(exc))
    return out
