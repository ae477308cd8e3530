"""Fan-out through the jump host at scale: many compute connections tunnelled through one gateway connection.

Closing a tunnelled connection while others were still opening through the same gateway killed the gateway now
and then (from about 32 parallel hosts on); ClusterSSH.run_all now closes its connections once every host is
done. This test runs rounds of a quick command on 40 computes (without the fix, most of them failed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slurmkit.cluster import load_cluster
from slurmkit.remote import ClusterSSH
from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live

COMPUTES = 40


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("fanout"), computes=COMPUTES, prefix="f") as c:
        yield c


def test_every_compute_answers_in_every_round_through_one_gateway(wide):
    cluster = load_cluster(wide.file)
    computes = [h for h in cluster.hosts() if h.role == "compute"]
    assert len(computes) == COMPUTES
    with ClusterSSH(cluster, Path(wide.file).parent) as ssh:
        for rnd in range(3):
            # a quick command: the first hosts are done while the others are still connecting through the gateway
            group = ssh.run_all(computes, lambda c: c.run("hostname").stdout.strip())
            failed = {h: repr(r.error)[:200] for h, r in group.failed.items()}
            assert not failed, f"round {rnd}: {len(failed)} of {COMPUTES} failed: {failed}"
            assert {r.value for r in group.results.values()} == {h.name for h in computes}
