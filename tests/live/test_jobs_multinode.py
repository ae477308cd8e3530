"""Multi-node jobs on the local namespace cluster (slurmkit.local): 2-node torchrun DDP, mpirun across nodes,
and --retries with one node made to fail, submitted from this machine through the head over SSH."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.conftest import ROOT, run_slurmkit

pytestmark = pytest.mark.live

from tests.live.localcluster import local_cluster  # noqa: E402


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    """A bootstrapped local cluster of 3 compute nodes: yields (cluster_file, work_dir, env)."""
    work = tmp_path_factory.mktemp("multinode")
    with local_cluster(work, computes=3, prefix="jm") as c:
        c.bootstrap()
        yield c.file, work, None


def sk(lc, *args, timeout=300):
    cluster_file, work, env = lc
    return run_slurmkit("-c", str(cluster_file), *args, cwd=work, env=env, timeout=timeout)


def test_two_node_torchrun_ddp(lc):
    r = sk(lc, "submit", "--wait", "-N", "2", "--launcher", "torchrun", "--", sys.executable,
           str(ROOT / "examples" / "train_ddp.py"))
    job_id = re.search(r"job (\d+) COMPLETED", r.stdout).group(1)
    out = sk(lc, "logs", job_id).stdout
    hosts = set(re.findall(r"^rank \d/2 host (\S+) step 0 ", out, re.M))
    assert len(hosts) == 2, out
    for rank in (0, 1):
        losses = [float(x) for x in re.findall(rf"^rank {rank}/2 host \S+ step \d+ loss ([0-9.]+)$", out, re.M)]
        assert losses and losses[-1] < losses[0] / 10


def test_two_node_mpirun_prints_each_host(lc):
    import shutil
    import subprocess

    import yaml

    if shutil.which("mpicc") is None:
        pytest.skip("mpicc not installed (apt-get install libopenmpi-dev; make setup does)")
    cluster_file, work, env = lc
    shared = yaml.safe_load(cluster_file.read_text())["shared_dir"]
    binary = f"{shared}/mpi_hello"
    subprocess.run(["mpicc", "-o", binary, str(ROOT / "examples" / "mpi_hello.c")], check=True)
    # Jobs on the local cluster run as root, which Open MPI refuses unless told twice.
    r = sk(lc, "submit", "--wait", "-N", "2", "--launcher", "mpirun", "--env", "OMPI_ALLOW_RUN_AS_ROOT=1",
           "--env", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "--", binary)
    job_id = re.search(r"job (\d+) COMPLETED", r.stdout).group(1)
    out = sk(lc, "logs", job_id).stdout
    ranks = sorted(re.findall(r"^mpi rank (\d)/2 on (\S+) allreduce 1$", out, re.M))
    assert [r for r, _ in ranks] == ["0", "1"], out
    assert len({h for _, h in ranks}) == 2, out


def test_retry_excludes_the_failing_node(lc):
    # The job fails on its first node only (srun reports that node), so the retry excludes it and completes.
    cmd = 'if [ "$SLURMKIT_NODE_RANK" = 0 ] && [ ! -e "retry-done" ]; then touch retry-done; exit 3; fi; echo ok'
    r = sk(lc, "submit", "--retries", "1", "-N", "2", "--", "bash", "-c", cmd)
    assert re.search(r"attempt 1: job \d+ FAILED .*blamed (\S+)", r.stdout), r.stdout
    assert re.search(r"attempt 2: job \d+ COMPLETED .*excluded ", r.stdout) and r.returncode == 0, r.stdout


def test_status_json_lists_every_node(lc):
    data = json.loads(sk(lc, "status", "--json").stdout)
    assert data["state"] == "RUNNING" and len(data["nodes"]) >= 2
