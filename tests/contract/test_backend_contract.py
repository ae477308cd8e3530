"""One contract for every Slurm backend, run live against the one-node cluster (tests/live/onenode.py).
A backend that cannot run here is skipped with the reason (pyslurm: none matches Slurm 22.05), never faked."""

from __future__ import annotations

import time

import pytest

from tests.live.onenode import one_node_cluster

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def cluster():
    with one_node_cluster(port_base=16970) as c:
        work = c.root / "work"
        work.mkdir()
        work.chmod(0o777)
        yield c


@pytest.fixture(params=["cli", "pyslurm"])
def backend(request, cluster):
    from slurmkit.slurm import get_backend, local_runner

    b = get_backend(request.param, local_runner(cluster.conf))
    ok, why = b.available()
    if not ok:
        print(f"backend {request.param} unavailable: {why}")
        pytest.skip(f"backend {request.param} unavailable: {why}")
    return b


def script(cluster, body: str) -> str:
    return f"#!/bin/bash\n#SBATCH --output={cluster.root}/work/contract-%j.out\n{body}\n"


def wait(backend, job_id, timeout=90):
    from slurmkit.jobs import wait_job

    return wait_job(backend, job_id, poll=0.5, timeout=timeout)


def test_submit_completes_and_output_is_readable(backend, cluster):
    job_id = backend.submit(script(cluster, "echo contract-ok"), ["--job-name=contract"])
    info = wait(backend, job_id)
    assert (info.state, info.exit_code, info.nodes) == ("COMPLETED", 0, [cluster.node])
    assert backend.read_file(info.stdout).strip() == "contract-ok"
    assert backend.read_file(info.stdout, offset=9).strip() == "ok"


def test_failed_job_has_state_and_exit_code(backend, cluster):
    info = wait(backend, backend.submit(script(cluster, "exit 7")))
    assert (info.state, info.exit_code) == ("FAILED", 7)


def test_cancel(backend, cluster):
    job_id = backend.submit(script(cluster, "sleep 100"))
    backend.cancel(job_id)
    assert wait(backend, job_id).state == "CANCELLED"
    assert job_id in [j.job_id for j in backend.jobs()]


def test_unknown_job(backend):
    assert backend.job("987654").state == "UNKNOWN"


def test_nodes_partitions_controllers(backend, cluster):
    nodes = backend.nodes()
    assert [(n.name, n.cpus, n.memory_mb) for n in nodes] == [(cluster.node, nodes[0].cpus, 4000)]
    assert nodes[0].state in ("IDLE", "MIXED", "ALLOCATED") and nodes[0].cpus >= 1
    assert [(p.name, p.default, p.nodes) for p in backend.partitions()] == [("debug", True, cluster.node)]
    ctl = backend.controllers()
    assert len(ctl) == 1 and ctl[0].primary and ctl[0].up
