"""`slurmkit demo` (what `make demo` runs) end to end, then the cluster it leaves is removed."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.live.localcluster import skip_unless_possible, slurmkit

pytestmark = pytest.mark.live


def test_demo_brings_up_bootstraps_and_runs_a_gpu_job(tmp_path):
    skip_unless_possible()
    name = f"dm{secrets.token_hex(2)}"
    try:
        p = slurmkit("demo", "--name", name, cwd=tmp_path, timeout=600)
        out = p.stdout
        assert "converged" in out
        assert sorted(re.findall(rf"^({name}-node-\d): CUDA_VISIBLE_DEVICES=(\S+)$", out, re.M)) == [
            (f"{name}-node-1", "0,1,2,3,4,5,6,7"), (f"{name}-node-2", "0,1,2,3,4,5,6,7")]
        assert f"Slurmctld(primary) at {name}-head-1 is UP" in out
        assert f"slurmkit local down --name {name}" in out
        # the acceptance bench: torch engine on 2 nodes against the local profile, its report written
        assert re.search(r"^PASS  \S+-cluster-torch: cluster / torch / all_reduce on 2 node\(s\)", out, re.M), out
        report = re.search(r"^  report: (\S+report\.html)$", out, re.M)
        assert report and Path(report.group(1)).is_file(), out
        again = slurmkit("demo", "--name", name, cwd=tmp_path, timeout=600).stdout
        assert "reusing the running local cluster" in again and "0 change(s), converged" in again
    finally:
        slurmkit("local", "down", "--name", name, cwd=tmp_path, check=False)
