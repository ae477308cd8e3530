"""The Slurm-commands backend: the only module that builds sbatch/squeue/sinfo/scontrol/scancel/sacct command
lines. Every command goes through the injected runner (local or over SSH) as an argv list, never a shell string.
"""

from __future__ import annotations

from typing import Sequence

from slurmkit.errors import CommandError
from slurmkit.slurm import parsers
from slurmkit.slurm.parsers import Controller, JobInfo, NodeInfo, PartitionInfo


class CliBackend:
    name = "cli"

    def __init__(self, runner):
        self.runner = runner

    # -- plumbing ------------------------------------------------------------------------------------------
    def _run(self, argv: list[str], stdin: str | None = None, ok: tuple[int, ...] = (0,)):
        r = self.runner(argv, stdin)
        if r.returncode not in ok:
            raise CommandError(" ".join(argv), r.returncode, r.stdout or "", r.stderr or "",
                               getattr(self.runner, "host", None))
        return r

    # -- interface -----------------------------------------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        try:
            r = self._run(["sinfo", "--version"])
        except CommandError as exc:
            return False, str(exc)
        return True, r.stdout.strip()

    def submit(self, script: str, sbatch_args: Sequence[str] = ()) -> str:
        # sbatch reads the script from stdin when no file is named.
        r = self._run(["sbatch", "--parsable", *sbatch_args], stdin=script)
        return parsers.parse_sbatch_parsable(r.stdout)

    def jobs(self) -> list[JobInfo]:
        # 22.05: --json ignores -j/-t/-u filters; callers filter the list.
        return parsers.parse_squeue_json(self._run(["squeue", "--json"]).stdout)

    def job(self, job_id: str) -> JobInfo:
        job_id = str(job_id)
        for j in self.jobs():
            if j.job_id == job_id:
                # 22.05's squeue --json leaves standard_output empty, or gives the unexpanded pattern
                # (slurmkit-%j.out): scontrol prints the expanded paths.
                if not j.stdout or "%" in j.stdout:
                    detail = self._scontrol_job(job_id)
                    if detail:
                        j.stdout, j.stderr, j.work_dir = detail.stdout, detail.stderr, detail.work_dir or j.work_dir
                return j
        r = self.runner(["sacct", "-j", job_id, "-X", "-n", "--parsable2", "-o", ",".join(parsers.SACCT_FIELDS)], None)
        if r.returncode == 0:
            found = [j for j in parsers.parse_sacct_parsable2(r.stdout) if j.job_id == job_id]
            if found:
                detail = self._scontrol_job(job_id)
                if detail:
                    found[0].stdout, found[0].stderr = detail.stdout, detail.stderr
                return found[0]
        # Without slurmdbd there is no sacct ("Slurm accounting storage is disabled"): ask the controller.
        return self._scontrol_job(job_id) or JobInfo(job_id=job_id, state="UNKNOWN", source="none")

    def _scontrol_job(self, job_id: str) -> JobInfo | None:
        r = self.runner(["scontrol", "-o", "show", "job", job_id], None)
        if r.returncode != 0:
            if "Invalid job id" in (r.stderr or ""):
                return None
            raise CommandError(f"scontrol -o show job {job_id}", r.returncode, r.stdout, r.stderr,
                               getattr(self.runner, "host", None))
        found = [j for j in parsers.parse_scontrol_jobs(r.stdout) if j.job_id == job_id]
        return found[0] if found else None

    def cancel(self, job_id: str) -> None:
        self._run(["scancel", str(job_id)])

    def nodes(self) -> list[NodeInfo]:
        # scontrol -o is the same text from 22.05 to 25.x and carries the reason; sinfo --json changed shape.
        return parsers.parse_scontrol_nodes(self._run(["scontrol", "-o", "show", "node"]).stdout)

    def partitions(self) -> list[PartitionInfo]:
        return parsers.parse_scontrol_partitions(self._run(["scontrol", "-o", "show", "partition"]).stdout)

    def controllers(self) -> list[Controller]:
        # Exits 1 when a controller is down; the text still says which.
        r = self._run(["scontrol", "ping"], ok=(0, 1))
        found = parsers.parse_scontrol_ping(r.stdout)
        if not found:
            raise CommandError("scontrol ping", r.returncode, r.stdout, r.stderr, getattr(self.runner, "host", None))
        return found

    def read_file(self, path: str, offset: int = 0) -> str:
        r = self.runner(["tail", "-c", f"+{int(offset) + 1}", "--", path], None)
        if r.returncode != 0:
            if "No such file" in (r.stderr or ""):
                return ""
            raise CommandError(f"tail -c +{offset + 1} -- {path}", r.returncode, r.stdout, r.stderr,
                               getattr(self.runner, "host", None))
        return r.stdout
