"""Jobs on a real one-node Slurm 22.05 (tests/live/onenode.py), through the real CLI (`python -m slurmkit`)."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_slurmkit
from tests.live.onenode import one_node_cluster

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def oc():
    with one_node_cluster(port_base=16960) as c:
        work = c.root / "work"
        work.mkdir()
        work.chmod(0o777)
        yield c


def sk(oc, *args, timeout=180):
    env = {**oc.env, "PYTHONPATH": str(ROOT)}
    return run_slurmkit("-c", str(oc.cluster_file), *args, cwd=oc.root / "work", env=env, timeout=timeout)


def submit_wait(oc, *args):
    r = sk(oc, "submit", "--wait", *args)
    m = re.search(r"job (\d+) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    return r, m.group(1), m.group(2)


def test_job_completes_and_logs_show_output(oc):
    r, job_id, state = submit_wait(oc, "--", "echo", "hello from slurmkit")
    assert (r.returncode, state) == (0, "COMPLETED"), r.stdout + r.stderr
    logs = sk(oc, "logs", job_id)
    assert logs.returncode == 0 and "hello from slurmkit" in logs.stdout, logs.stderr
    listed = sk(oc, "jobs", "--json")
    assert any(j["job_id"] == job_id and j["state"] == "COMPLETED" for j in __import__("json").loads(listed.stdout))


def test_exit_1_is_failed_with_exit_code(oc):
    r, job_id, state = submit_wait(oc, "--", "bash", "-c", "echo about to fail; exit 1")
    assert r.returncode == 1 and state == "FAILED" and "exit code 1" in r.stdout, r.stdout


def test_sleeping_job_cancelled_is_cancelled(oc):
    r = sk(oc, "submit", "--", "sleep", "120")
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    deadline = time.monotonic() + 60
    while "RUNNING" not in sk(oc, "jobs").stdout and time.monotonic() < deadline:
        time.sleep(1)
    assert sk(oc, "cancel", job_id).returncode == 0
    from slurmkit.slurm import get_backend, local_runner
    from slurmkit.jobs import wait_job

    info = wait_job(get_backend("cli", local_runner(oc.conf)), job_id, poll=1, timeout=60)
    assert info.state == "CANCELLED"


def test_hostile_name_and_arguments_run_literally(oc):
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    hostile = ["$(touch /tmp/pwned)", "`touch /tmp/pwned`", "a'b\"c; touch /tmp/pwned", "line1\nline2", "${HOME}"]
    name = "n$(touch /tmp/pwned);`x`'\""
    r, job_id, state = submit_wait(oc, "--name", name, "--env", "HOSTILE=$(touch /tmp/pwned)", "--",
                                   "printf", "[%s]\\n", *hostile)
    assert state == "COMPLETED", r.stdout + r.stderr
    out = sk(oc, "logs", job_id).stdout
    for h in hostile:
        assert f"[{h}]" in out, out
    assert not pwned.exists()
    jobs = __import__("json").loads(sk(oc, "jobs", "--json").stdout)
    assert [j["name"] for j in jobs if j["job_id"] == job_id] == [name]


def test_torchrun_ddp_two_processes_loss_falls(oc):
    r, job_id, state = submit_wait(oc, "--launcher", "torchrun", "-N", "1", "--nproc-per-node", "2", "--",
                                   sys.executable, str(ROOT / "examples" / "train_ddp.py"), "--steps", "15")
    out = sk(oc, "logs", job_id).stdout
    assert state == "COMPLETED", r.stdout + out
    for rank in (0, 1):
        losses = [float(x) for x in re.findall(rf"rank {rank}/2 host \S+ step \d+ loss ([0-9]+\.[0-9]{{6}})", out)]
        assert len(losses) == 15, out
        assert losses[-1] < losses[0] / 10, losses
    assert "node_rank 0" in out


def test_status_reports_running_cluster_and_drain(oc):
    r = sk(oc, "status", "--json")
    data = __import__("json").loads(r.stdout)
    assert data["state"] == "RUNNING" and r.returncode == 0, r.stdout
    assert [c["role"] for c in data["controllers"]] == ["primary"] and data["controllers"][0]["up"]
    assert [n["name"] for n in data["nodes"]] == [oc.node]
    oc.harness.run(oc.conf, "scontrol", "update", f"nodename={oc.node}", "state=drain", "reason=live test drain")
    try:
        r = sk(oc, "status")
        assert r.returncode == 1 and "cluster: DEGRADED" in r.stdout and "live test drain" in r.stdout, r.stdout
    finally:
        oc.harness.run(oc.conf, "scontrol", "update", f"nodename={oc.node}", "state=resume")


def test_dry_run_submits_nothing(oc):
    before = sk(oc, "jobs", "--json").stdout
    r = sk(oc, "submit", "--dry-run", "-N", "2", "--launcher", "torchrun", "--", "python", "train.py")
    assert r.returncode == 0 and r.stdout.startswith("# submitted as: sbatch")
    assert "--nnodes=\"$SLURMKIT_NNODES\"" in r.stdout
    assert sk(oc, "jobs", "--json").stdout == before
