"""Multi-node jobs on the local namespace cluster (slurmkit.local): 2-node torchrun DDP, mpirun across nodes,
and --retries with one node made to fail. Skipped until `slurmkit.local` can bring a cluster up here."""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.conftest import ROOT, run_slurmkit

pytestmark = pytest.mark.live

try:  # the local cluster is another engineer's module; the lead enables these tests when it lands
    import slurmkit.local as local  # noqa: F401

    _UP = getattr(local, "up", None) or getattr(getattr(local, "cluster", None), "up", None)
except ImportError:
    local, _UP = None, None

REASON = "needs the local cluster (slurmkit.local)"


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    """A 2-compute local cluster: yields (cluster_file, work_dir, env). Wiring is left to the lead."""
    if local is None or _UP is None:
        pytest.skip(REASON)
    pytest.skip(REASON + ": bootstrap wiring for these tests not done yet (see the jobs report)")


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
    r = sk(lc, "submit", "--wait", "-N", "2", "--launcher", "mpirun", "--", "bash", "-c",
           'echo "mpi rank $OMPI_COMM_WORLD_RANK on $(hostname) node_rank $SLURMKIT_NODE_RANK"')
    job_id = re.search(r"job (\d+) COMPLETED", r.stdout).group(1)
    out = sk(lc, "logs", job_id).stdout
    assert len(set(re.findall(r"^mpi rank \d+ on (\S+)", out, re.M))) == 2, out


def test_retry_excludes_the_failing_node(lc):
    # The job fails on its first node only (srun reports that node), so the retry excludes it and completes.
    cmd = 'if [ "$SLURMKIT_NODE_RANK" = 0 ] && [ ! -e "retry-done" ]; then touch retry-done; exit 3; fi; echo ok'
    r = sk(lc, "submit", "--retries", "1", "-N", "2", "--", "bash", "-c", cmd)
    assert re.search(r"attempt 1: job \d+ FAILED .*blamed (\S+)", r.stdout), r.stdout
    assert re.search(r"attempt 2: job \d+ COMPLETED .*excluded ", r.stdout) and r.returncode == 0, r.stdout


def test_status_json_lists_every_node(lc):
    data = json.loads(sk(lc, "status", "--json").stdout)
    assert data["state"] == "RUNNING" and len(data["nodes"]) >= 2
