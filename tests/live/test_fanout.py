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


def test_a_command_through_the_jump_host_keeps_its_streams_input_exit_code_and_timeout(wide):
    """Conn.run on its own exec channel: both streams bigger than an SSH window (2 MiB) come back whole while the
    other is written too, stdin gets the input and then EOF, the exit code is kept, and a command past its timeout
    raises CommandError naming the timeout while the connection stays usable."""
    from slurmkit.errors import CommandError

    cluster = load_cluster(wide.file)
    node = next(h for h in cluster.hosts() if h.role == "compute")
    size = 3 * 1024 * 1024
    with ClusterSSH(cluster, Path(wide.file).parent) as ssh:
        conn = ssh.connect(node)
        try:
            script = (f"cat; for i in 1 2 3; do head -c {size // 3} /dev/zero | tr '\\0' e >&2; "
                      f"head -c {size // 3} /dev/zero | tr '\\0' o; done; exit 7")
            r = conn.run(script, check=False, input="line one\nline two\n")
            assert r.exit_code == 7
            assert r.stdout.startswith("line one\nline two\n")
            assert len(r.stdout) == len("line one\nline two\n") + size and set(r.stdout[18:]) == {"o"}
            assert len(r.stderr) == size and set(r.stderr) == {"e"}
            with pytest.raises(CommandError) as err:
                conn.run("sleep 30", timeout=0.5)
            assert "timed out after 0.5 s" in str(err.value) and err.value.host == node.name
            assert conn.run("hostname").stdout.strip() == node.name
        finally:
            conn.close()
