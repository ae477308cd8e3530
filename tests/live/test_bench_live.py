"""`slurmkit bench` on the local namespace cluster: the torch engine (gloo) through real Slurm, the verdict against
the same-run baseline (nothing here depends on how fast the machine is), the saved run and its report, and pairs
mode naming a node whose link is slowed with `tc` (a tbf rate limit), each pair judged against its own baseline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.live.localcluster import local_cluster

pytestmark = pytest.mark.live

SWEEP = ("-b", "1M", "-e", "16M", "-f", "4", "-n", "3", "-w", "1")


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    with local_cluster(work, computes=4, prefix="bn") as c:
        c.bootstrap()
        yield c


def bench(lc, *args, timeout=400):
    return lc.cli("bench", "--engine", "torch", *SWEEP, *args, check=False, timeout=timeout)


def record(what: str, data) -> None:
    """Figures of a run, for the commit message and the README (appended to $SLURMKIT_BENCH_FIGURES)."""
    path = os.environ.get("SLURMKIT_BENCH_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": what, **data}) + "\n")


def test_cluster_mode_passes_the_local_profile_and_saves_the_run(lc):
    p = bench(lc, "--mode", "cluster", "-N", "3", "--profile", "local", "--json")
    out = json.loads(p.stdout) if p.stdout.startswith("{") else {}
    v = out.get("verdict", {})
    record("cluster", {k: v.get(k) for k in ("baseline_gbps", "measured_gbps", "ratio", "min_ratio", "passed")})
    assert p.returncode == 0, p.stdout + p.stderr
    assert out["passed"] and v["profile"] == "local"
    # judged against the baseline of the same job: a ratio, no fixed GB/s
    assert v["expect_gbps"] is None and v["baseline_measure"] == "one-node"
    assert v["ratio"] == pytest.approx(v["measured_gbps"] / v["baseline_gbps"]) and v["ratio"] >= v["min_ratio"]
    assert f"= {v['ratio']:.2f} of the same-run baseline {v['baseline_gbps']:.2f} GB/s, needs >= " in v["summary"]
    assert len(out["jobs"]) == 1 and out["jobs"][0]["state"] == "COMPLETED" and len(out["jobs"][0]["nodes"]) == 3
    run_dir = Path(out["run_dir"])
    assert run_dir.parent == lc.file.parent / ".slurmkit" / "bench"
    assert (run_dir / "rows.parquet").is_file() and (run_dir / "report.html").is_file()
    logs = sorted((run_dir / "logs").glob("*.log"), key=lambda lg: lg.name.endswith("-baseline.log"))
    assert [lg.name.endswith("-baseline.log") for lg in logs] == [False, True], logs
    measured, baseline = (lg.read_text() for lg in logs)
    assert "# Collective test starting: all_reduce_perf" in measured and "all_reduce_perf" in baseline
    # the measured step on 3 nodes, the baseline's 3 ranks all on the job's first node
    first = out["jobs"][0]["nodes"][0]
    assert len({line.split(" on ")[1].split()[0] for line in measured.splitlines() if "#  Rank" in line}) == 3
    assert {line.split(" on ")[1].split()[0] for line in baseline.splitlines() if "#  Rank" in line} == {first}
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["engine"] == "torch" and meta["mode"] == "cluster" and len(meta["nodes"]) == 3
    assert meta["versions"]["torch"] and meta["versions"]["slurm"].startswith("22.05")
    assert meta["verdict"]["ratio"] == pytest.approx(v["ratio"]) and meta["sweep"]["baseline"]["ranks"] == 3
    import pandas as pd

    rows = pd.read_parquet(run_dir / "rows.parquet")
    # -b 1M -e 16M -f 4: 1M, 4M, 16M, on 3 ranks (one per node), for the measured step and for each of the two
    # baselines (before and after it) in the baseline log
    for name, runs in ((logs[0].name, 1), (logs[1].name, 2)):
        mine = rows[rows["log"] == name]
        assert sorted(mine["size_bytes"]) == sorted([1 << 20, 4 << 20, 16 << 20] * runs), name
        assert set(mine["nranks"]) == {3} and (mine["oop_wrong"] == 0).all()
    again = lc.cli("bench", "report", str(run_dir), check=False)
    assert again.returncode == 0 and "PASS" in again.stdout, again.stdout + again.stderr
    assert "of the same-run baseline" in again.stdout
    assert "same-run baseline" in (run_dir / "report.html").read_text()


def test_an_impossible_expectation_fails_naming_the_bandwidth(lc):
    p = bench(lc, "--mode", "cluster", "-N", "2", "--expect", "10000")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL" in p.stdout and "busbw" in p.stdout and "expected 10000 GB/s" in p.stdout, p.stdout
    assert "results: " in p.stdout


def test_pairs_mode_names_the_node_with_a_slow_link(lc):
    node = lc.spec["nodes"][0]["names"]
    from slurmkit.hostlist import expand

    names = expand(node)
    slow = names[2]
    links = lc.on(slow, "ip -o link show").stdout
    dev = "eth0" if " eth0" in links or " eth0@" in links else None
    if dev is None:
        pytest.skip(f"no eth0 inside {slow}: {links}")
    r = lc.on(slow, f"tc qdisc replace dev {dev} root tbf rate 100mbit burst 32kbit latency 400ms", check=False)
    if r.returncode != 0:
        pytest.skip(f"tc tbf unavailable in the node: {r.stderr.strip()}")
    # Smaller sizes than the other tests (a 100 Mbit/s link is slow to fill), judged at the largest: each pair's
    # busbw over the baseline its own job measured on its first node (loopback, which tc leaves alone).
    # --drain: the node it names is drained with the evidence; the passing bench after the fix resumes it.
    pairs = ("--mode", "pairs", "--profile", "local", "--json", "-e", "4M", "--min-size", "4M", "--drain")
    try:
        p = bench(lc, *pairs, timeout=600)
    finally:
        lc.on(slow, f"tc qdisc del dev {dev} root", check=False)
    try:
        _pairs_then_resumed(lc, p, pairs, slow, names)
    finally:
        if "DRAIN" in slurm_node(lc, slow)[0]:  # leave the cluster in service for whatever runs next
            lc.head(f"scontrol update nodename={slow} state=resume", check=False)


def slurm_node(lc, node: str) -> tuple[str, str]:
    """(State, Reason) of the node as slurmctld has them."""
    text = lc.head(f"scontrol show node {node}").stdout
    state = text.split("State=", 1)[1].split()[0]
    reason = text.split("Reason=", 1)[1].split(" [", 1)[0].strip() if "Reason=" in text else ""
    return state, reason


def _pairs_then_resumed(lc, p, pairs, slow, names):
    assert p.returncode == 1, p.stdout + p.stderr
    out = json.loads(p.stdout)
    record("pairs-limited", {"culprits": out["culprits"], "ratios": _pair_ratios(out)})
    assert [c.get("node") for c in out["culprits"]] == [slow], out["culprits"]
    assert out["rounds"] == 2 and len(out["jobs"]) == 4
    assert all(j["state"] == "COMPLETED" for j in out["jobs"])
    assert "pairs round 1:" in p.stderr and "pairs: 2 round(s)" in p.stderr
    assert any("of the same-run baseline" in r and slow in r for r in out["verdict"]["reasons"]), out["verdict"]
    # drained, and only it, with the evidence as its reason
    culprit = out["culprits"][0]
    reason = f"slurmkit:bench busbw {culprit['ratio']:.3g} < {culprit['threshold']:g} of the same-run baseline"
    assert out["drain"]["drained"] == {slow: reason} and out["drain"]["rechecked"] == [], out["drain"]
    state, got = slurm_node(lc, slow)
    assert "DRAIN" in state and got == reason, (state, got)
    for other in names:
        if other != slow:
            assert "DRAIN" not in slurm_node(lc, other)[0], other

    # the limit removed: every pair is fast again; the drained node is re-checked and resumed
    p = bench(lc, *pairs, timeout=600)
    out = json.loads(p.stdout)
    record("pairs-healthy", {"ratios": _pair_ratios(out)})
    assert p.returncode == 0 and out["culprits"] == [], p.stdout + p.stderr
    assert out["drain"]["rechecked"] == [slow] and out["drain"]["resumed"] == [slow], out["drain"]
    assert out["drain"]["drained"] == {} and f"{slow} resumed for the re-check" in p.stderr
    assert all("DRAIN" not in slurm_node(lc, n)[0] for n in names)


def _pair_ratios(out) -> list:
    return [[rj["source"], rj["busbw_gbps"], rj["baseline_gbps"], rj["ratio"]] for rj in out["verdict"]["runs"]]
