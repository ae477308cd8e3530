"""The Slurm-commands backend: jobs and states through the commands of :mod:`slurmkit.slurm.commands`, run by
the injected runner (local or over SSH) as argv lists, never shell strings.
"""

from __future__ import annotations

import shlex
from typing import Sequence

from slurmkit.errors import CommandError
from slurmkit.slurm import commands, parsers
from slurmkit.slurm.parsers import Controller, JobInfo, NodeInfo, PartitionInfo


class CliBackend:
    name = "cli"

    def __init__(self, runner):
        self.runner = runner

    # -- interface -----------------------------------------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        try:
            return True, commands.version(self.runner)
        except CommandError as exc:
            return False, str(exc)

    def submit(self, script: str, sbatch_args: Sequence[str] = ()) -> str:
        # sbatch reads the script from stdin when no file is named.
        r = commands.run(self.runner, commands.submit_argv(sbatch_args), stdin=script)
        return parsers.parse_sbatch_parsable(r.stdout)

    def jobs(self) -> list[JobInfo]:
        return parsers.parse_squeue_json(commands.run(self.runner, list(commands.JOBS)).stdout)

    def job(self, job_id: str) -> JobInfo:
        job_id = str(job_id)
        # One command while the controller remembers the job: `scontrol -o show job` gives its state and the
        # expanded StdOut/StdErr (22.05's squeue --json leaves standard_output empty or unexpanded: slurmkit-%j.out).
        detail = self._scontrol_job(job_id)
        if detail is not None:
            return detail
        # Forgotten by the controller (MinJobAge): squeue may still list it in the moment between, then sacct.
        for j in self.jobs():
            if j.job_id == job_id:
                return j
        r = self.runner(commands.sacct_job_argv(job_id), None)
        if r.returncode == 0:
            found = [j for j in parsers.parse_sacct_parsable2(r.stdout) if j.job_id == job_id]
            if found:
                return found[0]
        # Without slurmdbd there is no sacct ("Slurm accounting storage is disabled"): nobody knows the job.
        return JobInfo(job_id=job_id, state="UNKNOWN", source="none")

    def _scontrol_job(self, job_id: str) -> JobInfo | None:
        argv = commands.show_job_argv(job_id)
        r = self.runner(argv, None)
        if r.returncode != 0:
            if "Invalid job id" in (r.stderr or ""):
                return None
            raise CommandError(shlex.join(argv), r.returncode, r.stdout, r.stderr, getattr(self.runner, "host", None))
        found = [j for j in parsers.parse_scontrol_jobs(r.stdout) if j.job_id == job_id]
        return found[0] if found else None

    def cancel(self, job_id: str) -> None:
        commands.run(self.runner, commands.cancel_argv(job_id))

    def nodes(self) -> list[NodeInfo]:
        return commands.show_nodes(self.runner)

    def partitions(self) -> list[PartitionInfo]:
        return commands.show_partitions(self.runner)

    def controllers(self) -> list[Controller]:
        return commands.ping(self.runner)

    def read_file(self, path: str, offset: int = 0) -> str:
        argv = commands.read_file_argv(path, offset)
        r = self.runner(argv, None)
        if r.returncode != 0:
            if "No such file" in (r.stderr or ""):
                return ""
            raise CommandError(shlex.join(argv), r.returncode, r.stdout, r.stderr, getattr(self.runner, "host", None))
        return r.stdout
