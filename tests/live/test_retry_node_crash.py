"""--retries when a node crashes mid-job: every process of one compute node is killed while a 2-node job runs;
the job fails on that node, slurmkit blames it (not the node whose task was killed as a consequence), and the
resubmitted job, excluding it, completes on the others."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest

from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live


def test_retry_excludes_a_crashed_node_and_completes(tmp_path):
    with local_cluster(tmp_path, computes=3, prefix="rc") as lc:
        lc.edit(lambda s: s.update(slurm_conf={"SlurmdTimeout": 5}))
        lc.bootstrap()
        proc = subprocess.Popen(
            [sys.executable, "-m", "slurmkit", "-c", str(lc.file), "submit", "--retries", "1", "-N", "2", "--",
             "bash", "-c", "sleep 20; echo done on $(hostname)"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lc.wait_for("squeue -h -o %T", lambda s: s.strip() == "RUNNING", "the job running", timeout=60)
            time.sleep(2)  # the step is launched on both nodes
            from slurmkit import hostlist
            from slurmkit.local import netns

            first = hostlist.expand(lc.head("squeue -h -o %N").stdout.strip())
            crashed = first[1]  # not the batch host: its tasks die with the node, the batch script lives on
            others = [n for n in (f"{lc.name}-node-{i}" for i in (1, 2, 3)) if n != crashed]
            assert netns.kill_node_processes(re.compile(re.escape(crashed))) > 0
            out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out + err
        lines = out.strip().splitlines()
        assert re.match(rf"attempt 1: job \d+ (FAILED|NODE_FAIL).*; blamed {crashed}$", lines[0]), out
        assert re.match(rf"attempt 2: job \d+ COMPLETED exit code 0 on {others[0]},{others[1]}; excluded {crashed}$",
                        lines[1]), out
