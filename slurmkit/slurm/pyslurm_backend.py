"""The pyslurm backend: used only where pyslurm imports and was built for the installed Slurm's major release.

pyslurm's releases follow Slurm's (pyslurm 25.11.x needs libslurm 25.11). On this project's machines (Debian 12,
Slurm 22.05) the PyPI pyslurm does not match, so :meth:`available` says why and the contract tests skip it.
Nothing here is faked: the methods below are the mapping onto pyslurm's API (``pyslurm.Jobs.load()``,
``pyslurm.Nodes.load()``, ``pyslurm.JobSubmitDescription``), untested until a matching pyslurm can be installed.
"""

from __future__ import annotations

import re
import subprocess
from typing import Sequence

from slurmkit.errors import SlurmkitError
from slurmkit.slurm.commands import VERSION
from slurmkit.slurm.parsers import Controller, JobInfo, NodeInfo, PartitionInfo, normalise_job_state, parse_node_state


def _installed_slurm() -> str | None:
    try:
        out = subprocess.run(list(VERSION), capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"(\d+)\.(\d+)", out)
    return f"{m[1]}.{m[2]}" if m else None


class PyslurmBackend:
    name = "pyslurm"

    def available(self) -> tuple[bool, str]:
        try:
            import pyslurm  # noqa: F401
        except ImportError as exc:
            return False, f"pyslurm is not installed ({exc}); PyPI's pyslurm targets Slurm 25.11"
        version = getattr(pyslurm, "__version__", "") or ""
        m = re.match(r"(\d+)\.(\d+)", version)
        slurm = _installed_slurm()
        if not m or slurm is None or f"{m[1]}.{m[2]}" != slurm:
            return False, f"pyslurm {version or '?'} does not match the installed Slurm {slurm or '(not found)'}"
        return True, f"pyslurm {version}"

    def _pyslurm(self):
        ok, why = self.available()
        if not ok:
            raise SlurmkitError(f"pyslurm backend unavailable: {why}")
        import pyslurm

        return pyslurm

    def submit(self, script: str, sbatch_args: Sequence[str] = ()) -> str:
        if sbatch_args:
            raise SlurmkitError("pyslurm backend: extra sbatch arguments are not supported; put them in the script")
        pyslurm = self._pyslurm()
        desc = pyslurm.JobSubmitDescription(script=script)
        return str(desc.submit())

    def _info(self, j) -> JobInfo:
        return JobInfo(job_id=str(j.id), name=j.name or "", state=normalise_job_state(j.state), raw_state=str(j.state),
                       reason=j.state_reason or "", nodes=list(j.get_nodes() or []) if hasattr(j, "get_nodes") else [],
                       exit_code=getattr(j, "exit_code", None), partition=j.partition or "", user=j.user_name or "",
                       stdout=getattr(j, "standard_output", "") or "", stderr=getattr(j, "standard_error", "") or "",
                       source="pyslurm")

    def jobs(self) -> list[JobInfo]:
        return [self._info(j) for j in self._pyslurm().Jobs.load().values()]

    def job(self, job_id: str) -> JobInfo:
        pyslurm = self._pyslurm()
        try:
            return self._info(pyslurm.Job.load(int(job_id)))
        except pyslurm.RPCError:
            return JobInfo(job_id=str(job_id), state="UNKNOWN", source="none")

    def cancel(self, job_id: str) -> None:
        self._pyslurm().Job(int(job_id)).cancel()

    def nodes(self) -> list[NodeInfo]:
        out = []
        for n in self._pyslurm().Nodes.load().values():
            state, flags = parse_node_state(n.state)
            out.append(NodeInfo(name=n.name, state=state, flags=flags, reason=n.reason or "", cpus=n.total_cpus,
                                memory_mb=n.real_memory, gres=",".join(n.configured_gres or {}), address=n.address or ""))
        return out

    def partitions(self) -> list[PartitionInfo]:
        return [PartitionInfo(name=p.name, state=str(p.state), nodes=p.nodes or "", default=bool(p.is_default))
                for p in self._pyslurm().Partitions.load().values()]

    def controllers(self) -> list[Controller]:
        raise SlurmkitError("pyslurm backend: controller ping is not exposed by pyslurm; use the cli backend")

    def read_file(self, path: str, offset: int = 0) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
