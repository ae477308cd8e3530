"""Live: `slurmkit health` on a real local cluster (1 head + 2 computes, 8 simulated GPUs each), bootstrapped.

The nodes replay the real captures of tests/live/test_discover_replay.py (topo-05's matrix, ibstat-04) so that
discovery finds rail HCAs; the faults are each injected on ONE node, in that node's own mount namespace or
replay:
- a GPU gone: a tmpfs over the cluster's simulated GPU directory in that node holding nvidia0-6 only (the same
  character devices, major 241), so that node sees 7 of its 8 GPU files;
- rail ports down: that node replays ibstat-02, the real capture of an H100 host with three ports Down/Disabled
  (two of them are rail HCAs discovery found here: mlx5_7, mlx5_8);
- the shared dir not mounted: an empty tmpfs over shared_dir in that node (what a node whose share did not mount
  sees: an empty directory, without the token the head wrote there).
Undoing a fault (umount, the first replay again) resumes the node after --resume-after clean runs; an admin's
drain stays whatever the checks say. Every run's actions are counted: a clean run drains nothing. While the GPU
fault holds its node drained, `slurmkit status --json` names it drained by slurmkit:health and `slurmkit
support-bundle` holds the Severity 2 finding for it, with its last health result from the kept history.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from tests.conftest import hardware_fixture
from tests.live.localcluster import local_cluster
from tests.live.replay import replay

TOPO = hardware_fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt")
IBSTAT = hardware_fixture("ibstat-04-h100-8cx7-plus-bf3-9hca.txt")
IBSTAT_PORTS_DOWN = hardware_fixture("ibstat-02-h100-12hca-3ports-down-disabled.txt")
GPU_MAJOR = 241  # slurmkit.local.cluster.GPU_MAJOR


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    root = tmp_path_factory.mktemp("health")
    with local_cluster(root, computes=2, gpus=8, prefix="se") as c:
        c.replay_root = root / "replayed"
        for n in nodes(c):
            replay(c, n, c.replay_root / n, {"nvidia-smi topo -m": TOPO, "ibstat": IBSTAT})
        c.cli("discover", "--json")
        c.bootstrap()
        c.actions = []  # every (node, action) of every run
        yield c


def nodes(c) -> list[str]:
    return [f"{c.name}-node-1", f"{c.name}-node-2"]


def health(c, *args: str) -> tuple[int, dict]:
    """One `slurmkit health --json` run (through the command table when health is registered there, else the
    click command itself); its exit code and report."""
    from slurmkit.cli import COMMANDS

    if "health" in COMMANDS:
        p = c.cli("health", "--json", *args, check=False)
    else:
        code = ("from slurmkit.cli.health import health; "
                f"health([{', '.join(repr(a) for a in ('--json', *args))}], obj={{'cluster_file': {str(c.file)!r}}})")
        p = subprocess.run([sys.executable, "-c", code], cwd=c.cwd, capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"health printed no JSON (exit {p.returncode})\n{p.stdout}\n{p.stderr}") from None
    assert p.returncode in (0, 1), p.stderr
    c.actions += [(n, row["action"]) for n, row in report["nodes"].items() if row["action"] != "none"]
    return p.returncode, report


def slurm_node(c, node: str) -> tuple[str, str]:
    """(State, Reason) of the node as slurmctld has them."""
    text = c.head(f"scontrol show node {node}").stdout
    state = text.split("State=", 1)[1].split()[0]
    reason = text.split("Reason=", 1)[1].split(" [", 1)[0].strip() if "Reason=" in text else ""
    return state, reason


def drained(c, node: str) -> bool:
    return "DRAIN" in slurm_node(c, node)[0]


def test_clean_runs_drain_nothing(lc):
    before = len(lc.actions)
    for _ in range(3):
        code, report = health(lc)
        assert code == 0, json.dumps(report, indent=1)
        for n in nodes(lc):
            row = report["nodes"][n]
            assert row["ok"] is True and row["action"] == "none"
            ids = {ch["id"]: ch for ch in row["checks"]}
            assert ids["gpu-count"]["message"] == "8/8" and not ids["gpu-count"]["skipped"]
            assert ids["ib-port"]["message"] == "5/5 rail ports Active"  # mlx5_0,1,6,7,8 as discovered
            assert ids["mount"]["ok"] and not ids["mount"]["skipped"]
            assert ids["munge"]["ok"] and ids["memory"]["ok"] and ids["spool"]["ok"]
    assert lc.actions[before:] == []  # 3 runs x 2 nodes: 0 drains, 0 resumes
    assert not any(drained(lc, n) for n in nodes(lc))


def _resumes_after_two_clean_runs(lc, node: str) -> None:
    code, report = health(lc)
    assert code == 0 and report["nodes"][node]["action"] == "none"
    assert report["nodes"][node]["why"] == "1/2 clean runs" and drained(lc, node)
    code, report = health(lc)
    assert code == 0 and report["nodes"][node]["action"] == "resumed"
    assert not drained(lc, node)


def test_gpu_gone_drains_that_node_then_resumes(lc):
    bad, good = nodes(lc)
    gpu_dir = f"/dev/slurmkit/{lc.name}"
    mknods = "; ".join(f"mknod -m 666 {gpu_dir}/nvidia{k} c {GPU_MAJOR} {k}" for k in range(7))
    lc.on(bad, f"mount -t tmpfs -o size=64k,mode=755 tmpfs {gpu_dir} && {mknods}")
    try:
        assert lc.on(bad, f"ls {gpu_dir}").stdout.split() == [f"nvidia{k}" for k in range(7)]
        assert len(lc.on(good, f"ls {gpu_dir}").stdout.split()) == 8  # the other node keeps its 8
        code, report = health(lc, "--no-drain")  # reported, not acted on
        assert code == 1 and report["nodes"][bad]["why"] == "would drain (--no-drain)" and not drained(lc, bad)
        code, report = health(lc)
        assert code == 1 and report["failed"] == [bad]
        reason = f"slurmkit:gpu-count 7/8 (missing {gpu_dir}/nvidia7)"
        assert report["nodes"][bad]["action"] == "drained"
        assert slurm_node(lc, bad)[1] == reason and drained(lc, bad)
        assert report["nodes"][good]["action"] == "none" and not drained(lc, good)
        _status_and_bundle_name_the_drain(lc, bad, good, "gpu-count", f"gpu-count 7/8 (missing {gpu_dir}/nvidia7)")
    finally:
        lc.on(bad, f"umount {gpu_dir}")
    _resumes_after_two_clean_runs(lc, bad)


def _status_and_bundle_name_the_drain(lc, bad: str, good: str, check: str, detail: str) -> None:
    """`slurmkit status --json` names ``bad`` drained by slurmkit:health (``good`` by no one), the text status
    marks it, and `slurmkit support-bundle` holds the Severity 2 finding with the check, the reason's evidence and
    the node's last health result from the history."""
    p = lc.cli("status", "--json", check=False)
    assert p.returncode == 1, p.stderr  # DEGRADED, as for any drained node
    st = json.loads(p.stdout)
    assert st["state"] == "DEGRADED"
    by = {n["name"]: n["drained_by"] for n in st["nodes"]}
    assert by[bad] == "slurmkit:health" and by[good] is None, by
    text = lc.cli("status", check=False).stdout
    (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [bad]]
    assert line.endswith(f"drained by slurmkit: {detail}"), text
    out = lc.cwd / "bundle.tar.gz"
    p = lc.cli("support-bundle", "--json", "-o", str(out), check=False, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    summary = json.loads(p.stdout)
    (f,) = [f for f in summary["findings"] if f["title"] == "1 node(s) drained by slurmkit"]
    assert f["severity"] == 2 and f["hosts"] == [bad], summary
    assert f["evidence"][0].startswith(f"{bad}: drained by slurmkit (health check {check}): {detail} ("), f
    assert f["evidence"][1].startswith(f"{bad}: last health run ") and f["evidence"][1].endswith(f"failing {detail}"), f
    assert summary["severity"] == 2 and out.is_file()


def test_rail_ports_down_drains_that_node_then_resumes(lc):
    bad, good = nodes(lc)
    replay(lc, bad, lc.replay_root / f"{bad}-down", {"nvidia-smi topo -m": TOPO, "ibstat": IBSTAT_PORTS_DOWN})
    try:
        code, report = health(lc)
        assert code == 1 and report["failed"] == [bad]
        assert slurm_node(lc, bad)[1] == "slurmkit:ib-port mlx5_7 port 1 Down; mlx5_8 port 1 Down +1"
        assert [c["id"] for c in report["nodes"][bad]["failing"]] == ["ib-port", "ib-rate"]  # mlx5_1 at 100
        assert not drained(lc, good)
    finally:
        replay(lc, bad, lc.replay_root / bad, {"nvidia-smi topo -m": TOPO, "ibstat": IBSTAT})
    _resumes_after_two_clean_runs(lc, bad)


def test_shared_dir_not_mounted_drains_that_node_then_resumes(lc):
    shared = lc.spec["shared_dir"]
    good, bad = nodes(lc)
    lc.on(bad, f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(shared)}")
    try:
        code, report = health(lc)
        assert code == 1 and report["failed"] == [bad]
        assert slurm_node(lc, bad)[1] == f"slurmkit:mount {shared} not the shared dir (no head token: not mounted?)"
        assert not drained(lc, good)
    finally:
        lc.on(bad, f"umount {shlex.quote(shared)}")
    _resumes_after_two_clean_runs(lc, bad)


def test_admin_drain_survives_clean_runs(lc):
    n1, n2 = nodes(lc)
    lc.head(f"scontrol update nodename={n2} state=drain reason=maintenance")
    try:
        for _ in range(3):
            code, report = health(lc)
            assert code == 0
            assert report["nodes"][n2]["action"] == "none" and report["nodes"][n2]["why"] == "admin drain kept"
            assert slurm_node(lc, n2)[1] == "maintenance" and drained(lc, n2)
    finally:
        lc.head(f"scontrol update nodename={n2} state=resume")


def test_history_and_action_count(lc):
    # Every action of this module: one drain and one resume per injected fault, nothing else.
    bad1, bad2 = nodes(lc)
    expected = [(bad1, "drained"), (bad1, "resumed")] * 2 + [(bad2, "drained"), (bad2, "resumed")]
    assert lc.actions == expected
    from slurmkit.health.policy import Store
    from slurmkit.cli.health import health_dir

    runs = Store(health_dir(lc.file)).history()
    assert [(n, row["action"]) for r in runs for n, row in r["nodes"].items() if row["action"] != "none"] == expected
