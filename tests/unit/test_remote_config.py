"""ClusterSSH's Fabric configs under the fan-out's threads. A fabric Connection writes to the Config it is given
while it is built (``self.inline_ssh_env = ...`` is proxied to ``config._modify``, which empties and re-merges
the config): one Config shared by every thread made a Connection built at that moment read an empty config
(CI: ``AttributeError: No attribute or config key found for 'forward_agent'``, 1 of 40 hosts)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from slurmkit.cluster import parse_cluster
from slurmkit.remote import ClusterSSH

CLUSTER = """
cluster: rc
ssh: {user: root, proxy_jump: root@10.1.0.11}
heads: {names: rc-head-1, addresses: 10.1.0.11}
nodes:
  - names: rc-node-[1-2]
    addresses: 10.2.0.[11-12]
"""


def _ssh(tmp_path: Path) -> ClusterSSH:
    return ClusterSSH(parse_cluster(CLUSTER), tmp_path)


def test_one_config_per_thread_reused_within_it(tmp_path):
    ssh = _ssh(tmp_path)
    mine = ssh._config()
    assert ssh._config() is mine
    theirs = []
    t = threading.Thread(target=lambda: theirs.append(ssh._config()))
    t.start()
    t.join()
    assert theirs and theirs[0] is not mine


def test_connections_built_in_many_threads_at_once_all_see_their_config(tmp_path):
    """Builds Connections (no network: building one does not connect) from 8 threads at once, as run_all does."""
    ssh = _ssh(tmp_path)
    errors: list[BaseException] = []
    built = []
    start = threading.Barrier(8)

    def build():
        start.wait()
        for i in range(150):
            try:
                c = ssh._new_connection(f"10.2.0.{i % 250 + 1}", "root", 22)
                built.append(c.forward_agent)
            except BaseException as exc:  # the race raised AttributeError from inside fabric
                errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(8)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can: the window is a few bytecodes
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, f"{len(errors)} of 1200 connections failed: {errors[0]!r}"[:400]
    assert len(built) == 1200
