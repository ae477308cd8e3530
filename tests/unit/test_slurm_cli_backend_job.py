"""CliBackend.job(): `scontrol -o show job` first (one command: state and expanded output paths), squeue then
sacct only when the controller no longer knows the job. A fake runner replays outputs captured from Slurm 22.05
(tests/fixtures/slurm-22.05/SOURCES.md: exit statuses as recorded there)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from slurmkit.errors import CommandError
from slurmkit.slurm.cli_backend import CliBackend

FX = Path(__file__).resolve().parents[1] / "fixtures" / "slurm-22.05"


def fx(name: str) -> str:
    return (FX / name).read_text()


UNKNOWN = (1, fx("scontrol-o-show-job-unknown.txt"), fx("scontrol-o-show-job-unknown.stderr"))
NO_DBD = (1, fx("sacct-no-dbd.txt"), fx("sacct-no-dbd.stderr"))
SQUEUE = (0, fx("squeue-json-running-pending.json"), "")


class Replay:
    """Answers each command by its program name, records every argv it ran."""

    def __init__(self, **answers):
        self.answers = answers
        self.ran: list[list[str]] = []

    def __call__(self, argv, stdin=None):
        self.ran.append(list(argv))
        rc, out, err = self.answers[argv[0]]
        return subprocess.CompletedProcess(argv, rc, out, err)


@pytest.mark.parametrize("name,job_id,state,code", [
    ("completed", "1", "COMPLETED", 0), ("failed-exit3", "2", "FAILED", 3), ("running", "3", "RUNNING", 0),
    ("pending", "4", "PENDING", 0), ("cancelled", "3", "CANCELLED", 0),
])
def test_a_job_the_controller_knows_costs_one_command(name, job_id, state, code):
    run = Replay(scontrol=(0, fx(f"scontrol-o-show-job-{name}.txt"), ""))
    j = CliBackend(run).job(job_id)
    assert run.ran == [["scontrol", "-o", "show", "job", job_id]]
    assert (j.job_id, j.state, j.exit_code, j.source) == (job_id, state, code, "scontrol")
    assert j.stdout == f"/tmp/sk-jobs-x2_8y8x6/w/slurm-{job_id}.out" and "%" not in j.stdout


def test_forgotten_job_falls_back_to_squeue_then_sacct_then_unknown():
    run = Replay(scontrol=UNKNOWN, squeue=SQUEUE, sacct=NO_DBD)
    j = CliBackend(run).job("999999")
    assert [a[0] for a in run.ran] == ["scontrol", "squeue", "sacct"]
    assert (j.job_id, j.state, j.source) == ("999999", "UNKNOWN", "none")


def test_squeue_answers_when_scontrol_no_longer_knows_the_job():
    # squeue --json lists job 2 (captured while the controller still knew it); scontrol said Invalid job id.
    run = Replay(scontrol=UNKNOWN, squeue=SQUEUE, sacct=NO_DBD)
    j = CliBackend(run).job("2")
    assert [a[0] for a in run.ran] == ["scontrol", "squeue"]
    assert (j.job_id, j.source) == ("2", "squeue")


def test_scontrol_failing_otherwise_is_an_error_not_unknown():
    # Any failure other than "Invalid job id" is not "nobody knows the job" (the text below is local_runner's own,
    # for a missing program).
    run = Replay(scontrol=(127, "", "scontrol: command not found"))
    with pytest.raises(CommandError) as e:
        CliBackend(run).job("1")
    assert "command not found" in str(e.value)
    assert len(run.ran) == 1
