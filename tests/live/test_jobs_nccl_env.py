"""The NCCL environment from `discover` exported into jobs, on a real local cluster: submitted from this machine
through the head over SSH, as a user away from the cluster would."""

from __future__ import annotations

import json
import re

import pytest

from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("jobsnccl"), computes=2, prefix="jn") as c:
        c.bootstrap()
        c.cli("discover")
        yield c


def node_ifname(lc) -> str:
    """The interface holding each compute node's cluster-file address, per `ip -o -4 addr` inside the node."""
    from slurmkit import hostlist

    found = set()
    for i, address in enumerate(hostlist.expand(lc.spec["nodes"][0]["addresses"]), start=1):
        out = lc.on(f"{lc.name}-node-{i}", f"ip -o -4 addr show | awk -v a={address} '{{split($4, p, \"/\"); if (p[1] == a) print $2}}'")
        found.update(out.stdout.split())
    assert len(found) == 1, found
    return found.pop()


def test_dry_run_shows_the_socket_ifname_export(lc):
    ifname = node_ifname(lc)
    r = lc.cli("submit", "--dry-run", "-N", "2", "--", "hostname")
    assert r.stderr == ""
    assert f"\nexport NCCL_SOCKET_IFNAME=={ifname}\n" in r.stdout
    assert f"partition debug: NCCL_SOCKET_IFNAME=={ifname}" in r.stdout.splitlines()[0]
    assert "NCCL_" not in lc.cli("submit", "--dry-run", "--no-nccl-env", "--", "hostname").stdout


def test_job_sees_the_socket_ifname(lc):
    ifname = node_ifname(lc)
    r = lc.cli("submit", "--wait", "-N", "2", "--", "bash", "-c", 'echo "ifname=$NCCL_SOCKET_IFNAME on $(hostname)"')
    job_id = re.search(r"job (\d+) COMPLETED", r.stdout).group(1)
    out = lc.cli("logs", job_id).stdout
    assert sorted(re.findall(r"^ifname=(\S*) on (\S+)$", out, re.M)) == [
        (f"={ifname}", f"{lc.name}-node-1"), (f"={ifname}", f"{lc.name}-node-2")], out


def test_nodes_naming_different_interfaces_export_none(lc):
    # node-2's cached facts edited to name its interface ens9 (a simulation of differently named NICs):
    # the group no longer agrees, so the job gets no NCCL_SOCKET_IFNAME
    cache = lc.file.parent / ".slurmkit" / "facts" / f"{lc.name}-node-2.json"
    saved = cache.read_text()
    record = json.loads(saved)
    record["facts"]["ipv4"] = [a if a["ifname"] == "lo" else {**a, "ifname": "ens9"} for a in record["facts"]["ipv4"]]
    cache.write_text(json.dumps(record))
    try:
        r = lc.cli("submit", "--dry-run", "-N", "2", "--", "hostname")
    finally:
        cache.write_text(saved)
    assert r.returncode == 0 and "NCCL_SOCKET_IFNAME" not in r.stdout
    assert "NCCL_SOCKET_IFNAME" in lc.cli("submit", "--dry-run", "-N", "2", "--", "hostname").stdout
