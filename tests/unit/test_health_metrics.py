"""slurmkit exporter's metrics (slurmkit.health.metrics) over the real CLI backend fed real captured Slurm 22.05
outputs (tests/fixtures/slurm-22.05), a real health state file and a real saved bench run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from slurmkit.health.metrics import Collector, Sources, bench_figures, gres_gpus, tres_gpus
from slurmkit.health.policy import NodeState, Store
from slurmkit.slurm import commands, parsers
from slurmkit.slurm.cli_backend import CliBackend

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "slurm-22.05"


class FixtureRunner:
    """Answers Slurm's commands with captured outputs (one node file each, concatenated: one record a line)."""

    def __init__(self, node_files, jobs_file="squeue-json-running-pending.json"):
        self.nodes = "".join((FIX / f).read_text() for f in node_files)
        self.jobs = (FIX / jobs_file).read_text()

    def __call__(self, argv, stdin=None):
        if tuple(argv) == commands.SHOW_NODES:
            return subprocess.CompletedProcess(argv, 0, self.nodes, "")
        if tuple(argv) == commands.JOBS:
            return subprocess.CompletedProcess(argv, 0, self.jobs, "")
        return subprocess.CompletedProcess(argv, 1, "", f"not captured: {argv}")


def sources(runner, health=None, bench=None):
    backend = CliBackend(runner)

    def nodes():
        text = commands.run(backend.runner, list(commands.SHOW_NODES)).stdout
        alloc = {r["NodeName"]: r.get("AllocTRES") for r in parsers.parse_scontrol_records(text, last_key="Reason")}
        return parsers.parse_scontrol_nodes(text), alloc

    return Sources(nodes=nodes, jobs=backend.jobs, health=health or (lambda: {}), bench=bench or (lambda: None))


def scrape(src) -> dict:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(src))
    out = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_nodes_by_state_from_captured_scontrol():
    # the captured records are one node (sk-one) at different times: here, as if three nodes
    files = ["scontrol-o-show-node-alloc.txt", "scontrol-o-show-node-drain.txt", "scontrol-o-show-node-down.txt"]
    runner = FixtureRunner(files)
    nodes = parsers.parse_scontrol_nodes(runner.nodes)
    assert [n.state for n in nodes][:1] == ["MIXED"]
    m = scrape(sources(runner))
    assert m[("slurmkit_nodes", (("state", "mixed"),))] == 1
    # State=IDLE+DRAIN and State=DOWN+DRAIN: both drained (Slurm places no job there)
    assert m[("slurmkit_nodes", (("state", "drained"),))] == 2
    assert ("slurmkit_nodes", (("state", "down"),)) not in m
    assert m[("slurmkit_scrape_ok", (("source", "slurm_nodes"),))] == 1
    # Gres=(null): no GPU in any state
    assert all(m[("slurmkit_gpus", (("state", s),))] == 0 for s in ("allocated", "idle", "drained"))
    # "fixture: drained by hand" is not slurmkit's
    assert not [k for k in m if k[0] == "slurmkit_node_drained_by_slurmkit"]


def test_jobs_by_state_and_partition_from_captured_squeue():
    m = scrape(sources(FixtureRunner(["scontrol-o-show-node-alloc.txt"])))
    jobs = parsers.parse_squeue_json((FIX / "squeue-json-running-pending.json").read_text())
    want = {}
    for j in jobs:
        key = ("slurmkit_jobs", (("partition", j.partition), ("state", j.state.lower())))
        want[key] = want.get(key, 0) + 1
    assert want and {k: v for k, v in m.items() if k[0] == "slurmkit_jobs"} == want
    assert not any("job_id" in dict(k[1]) or "user" in dict(k[1]) for k in m)  # bounded labels


def test_gpu_counts_from_gres_and_alloc_tres():
    # Gres values as written in the captured slurm.conf files (tests/fixtures/slurm-conf)
    assert gres_gpus("gpu:v100:4") == 4 and gres_gpus("gpu:gtx970:1,gpu:gtx1060:1") == 2
    assert gres_gpus("(null)") == 0 and gres_gpus("") == 0
    assert tres_gpus("cpu=1,mem=500M") == 0 and tres_gpus(None) is None


def test_health_check_results_per_node(tmp_path):
    store = Store(tmp_path / "health")
    store.save({"n1": NodeState(0, 3, [], {"gpu-count": True, "munge": True}),
                "n2": NodeState(1, 0, [{"id": "gpu-count", "ok": False, "message": "7/8"}],
                                {"gpu-count": False, "munge": True})})
    m = scrape(sources(FixtureRunner(["scontrol-o-show-node-alloc.txt"]), health=store.load))
    assert m[("slurmkit_health_check_ok", (("check", "gpu-count"), ("node", "n2")))] == 0
    assert m[("slurmkit_health_check_ok", (("check", "gpu-count"), ("node", "n1")))] == 1
    assert m[("slurmkit_health_failing_checks", (("node", "n2"),))] == 1


def test_a_source_that_fails_is_said_and_the_others_still_served():
    def broken():
        raise OSError("head unreachable")

    src = sources(FixtureRunner(["scontrol-o-show-node-alloc.txt"]), health=broken)
    m = scrape(src)
    assert m[("slurmkit_scrape_ok", (("source", "health"),))] == 0
    assert m[("slurmkit_scrape_ok", (("source", "slurm_jobs"),))] == 1 and src.errors == ["health: head unreachable"]


def test_bench_busbw_per_node_set_from_a_saved_pairs_run(tmp_path):
    from slurmkit.bench.results import RunLog, save_run
    from slurmkit.bench.verdict import judge
    from slurmkit.bench.parse import parse_text

    logs_dir = Path(__file__).resolve().parent.parent / "fixtures" / "nccl-tests"
    text = (logs_dir / "nccl-10-a3mega-2node-h100-rankheader.txt").read_text()
    # as run_bench saves a pairs run: the verdict over logs/<label>.log, the log saved as <label>-<job id>.log
    runs = parse_text(text, "logs/r0-a-b.log")
    verdict = judge(runs, expect_gbps=0.001)
    run_dir = save_run(tmp_path, [RunLog(text=text, name="r0-a-b-17.log", nodes=["a", "b"])], mode="pairs",
                       engine="nccl-tests", op="all_reduce", nodes=["a", "b"],
                       sweep={"jobs": [{"job_id": "17", "label": "r0-a-b", "round": 0}]}, verdict=verdict)
    meta = json.loads((run_dir / "meta.json").read_text())
    figures = bench_figures(meta)
    assert verdict.runs[0].busbw_gbps > 0
    assert [f[0] for f in figures] == ["a,b"] and figures[0][1] == verdict.runs[0].busbw_gbps
    from slurmkit.health.metrics import latest_bench_meta

    m = scrape(sources(FixtureRunner(["scontrol-o-show-node-alloc.txt"]), bench=lambda: latest_bench_meta(tmp_path)))
    assert m[("slurmkit_bench_busbw_gbps", (("mode", "pairs"), ("node_set", "a,b")))] == verdict.runs[0].busbw_gbps
    assert m[("slurmkit_bench_passed", ())] == (1 if verdict.passed else 0)
