"""slurmkit.bench.run: engine command lines, job scripts, mode planning (pure), and the orchestration through a
scripted fake Slurm backend (pairs-mode narrowing, failed jobs, submission errors)."""

from __future__ import annotations

import json
import math
import re

import pytest

from slurmkit.bench import run as br
from slurmkit.bench.parse import parse_text
from slurmkit.errors import SlurmkitError
from slurmkit.slurm.parsers import JobInfo
from tests.conftest import FIXTURES

NCCL = FIXTURES / "nccl-tests"


# ---------------------------------------------------------------------------------------------- engines


def test_nccl_tests_command_is_the_binary_with_the_sweep_flags():
    spec = br.BenchSpec(engine="nccl-tests", nccl_tests_dir="/opt/nt/build/", min_bytes="8", max_bytes="8G",
                        step_factor=2, iters=20, warmup=5, check=1)
    assert br.engine_command(spec) == ["/opt/nt/build/all_reduce_perf", "-b", "8", "-e", "8G", "-f", "2", "-g", "1",
                                       "-c", "1", "-n", "20", "-w", "5"]
    assert br.engine_command(br.BenchSpec(op="all_gather", check=0))[0] == "/opt/nccl-tests/build/all_gather_perf"


def test_torch_command_runs_the_engine_module_with_the_same_sweep_and_gloo_on_cpu_nodes():
    spec = br.BenchSpec(engine="torch", python="/venv/bin/python", min_bytes="1M", max_bytes="16M", step_factor=4,
                        iters=3, warmup=1)
    argv = br.engine_command(spec)
    assert argv[:2] == ["bash", "-c"]
    assert argv[3:] == ["slurmkit-bench", "/venv/bin/python", "-m", "slurmkit.bench.torch_engine", "-b", "1M",
                        "-e", "16M", "-f", "4", "-c", "1", "-n", "3", "-w", "1", "--op", "all_reduce",
                        "--backend", "gloo"]
    assert br.engine_command(br.BenchSpec(engine="torch", gpus_per_node=8))[-1] == "nccl"


def test_sweep_defaults_depend_on_gpus():
    assert br.BenchSpec(engine="torch").sweep == {"min_bytes": "1M", "max_bytes": "64M", "step_factor": 4,
                                                  "iters": 5, "warmup": 2, "check": 1}
    assert br.BenchSpec(engine="nccl-tests").sweep["max_bytes"] == "8G"
    assert br.BenchSpec(engine="torch", gpus_per_node=8, iters=7).sweep["iters"] == 7


def test_bad_specs_are_refused_with_every_problem():
    with pytest.raises(SlurmkitError) as exc:
        br.BenchSpec(engine="torch", launcher="mpirun", mode="ring", check=2)
    msg = str(exc.value)
    assert "srun only" in msg and "mode 'ring'" in msg and "-c must be 0 or 1" in msg


def _launch_line(script: str) -> str:
    return [ln for ln in script.splitlines() if ln.startswith(("srun ", "mpirun "))][-1]


def test_nccl_tests_srun_script_one_rank_per_gpu_with_pmix_and_the_nccl_env():
    spec = br.BenchSpec(engine="nccl-tests", gpus_per_node=8, nccl_env={"NCCL_IB_HCA": "=mlx5_0,mlx5_1"},
                        chdir="/shared", partition="gpu", mpi="pmix_v4")
    req = br.job_request(spec, nnodes=4, name="cluster")
    s = req.script
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --partition=gpu", "#SBATCH --chdir=/shared", "#SBATCH --output=slurmkit-bench-%j.out",
                 "export SLURM_MPI_TYPE=pmix_v4", "export NCCL_IB_HCA==mlx5_0,mlx5_1"):
        assert line in s.splitlines(), line
    assert _launch_line(s) == (
        "srun --ntasks-per-node=8 --kill-on-bad-exit=1 bash -c 'export SLURMKIT_NODE_RANK=$SLURM_NODEID; "
        "exec \"$@\"' slurmkit /opt/nccl-tests/build/all_reduce_perf -b 8 -e 8G -f 2 -g 1 -c 1 -n 20 -w 5")
    assert req.sbatch_args == ("--job-name=slurmkit-cluster",)


def test_nccl_tests_mpirun_script_uses_the_hostfile_and_exports_nccl_variables():
    spec = br.BenchSpec(engine="nccl-tests", launcher="mpirun", gpus_per_node=8,
                        nccl_env={"NCCL_IB_HCA": "=mlx5_0"})
    s = br.job_request(spec, nodes=("gpu-1", "gpu-2"), name="cluster").script
    line = _launch_line(s)
    assert line.startswith('mpirun --hostfile "$SLURMKIT_HOSTFILE" -np $(( SLURMKIT_NNODES * 8 )) ')
    assert " -x NCCL_IB_HCA " in line and line.endswith("all_reduce_perf -b 8 -e 8G -f 2 -g 1 -c 1 -n 20 -w 5")
    assert "SLURM_MPI_TYPE" not in s and "#SBATCH --ntasks-per-node=8" in s


def test_pinned_jobs_carry_a_folded_nodelist():
    req = br.job_request(br.BenchSpec(engine="torch"), nodes=("n-3", "n-1"), name="r0-n-3-n-1")
    assert req.sbatch_args == ("--job-name=slurmkit-r0-n-3-n-1", "--nodelist=n-[1,3]")
    assert "#SBATCH --nodes=2" in req.script and "#SBATCH --ntasks-per-node=1" in req.script
    assert "export MASTER_PORT=29500" in req.script


# ---------------------------------------------------------------------------------------------- planning


def test_plan_cluster_and_nodes_modes():
    nodes = ["n1", "n2", "n3"]
    assert br.plan(br.BenchSpec(mode="cluster", nnodes=2), nodes) == [br.PlannedJob("cluster", (), 2)]
    assert br.plan(br.BenchSpec(mode="cluster"), nodes) == [br.PlannedJob("cluster", (), 3)]
    assert br.plan(br.BenchSpec(mode="cluster", nodes=("n2", "n3")), nodes) == [
        br.PlannedJob("cluster", ("n2", "n3"), 2)]
    assert br.plan(br.BenchSpec(mode="nodes"), nodes) == [br.PlannedJob(f"node-{n}", (n,), 1) for n in nodes]
    with pytest.raises(br.BenchCouldNotRun, match="-N 5: the cluster has 3"):
        br.plan(br.BenchSpec(mode="cluster", nnodes=5), nodes)
    assert br.pair_jobs([("a", "b"), ("c", "d")], 1) == [br.PlannedJob("r1-a-b", ("a", "b"), 2, 1),
                                                         br.PlannedJob("r1-c-d", ("c", "d"), 2, 1)]


def test_judged_busbw_is_the_out_of_place_busbw_at_the_largest_size():
    runs = parse_text((NCCL / "nccl-10-a3mega-2node-h100-rankheader.txt").read_text(), "x")
    assert br.judged_busbw(runs) == 338.82  # 8589934592 row, out-of-place busbw, read from the file
    failed = parse_text((NCCL / "nccl-16-h100-2node-g8-both-fail-multiproc.txt").read_text(), "y")
    assert math.isnan(br.judged_busbw(failed)) and math.isnan(br.judged_busbw([]))


# ---------------------------------------------------------------------------------------------- orchestration


def _log(nodes, busbw, sizes=(1 << 20, 4 << 20, 16 << 20)):
    """A torch-engine style log (the engine's own formatting functions) with the given busbw at every size."""
    from slurmkit.bench import torch_engine as te

    lines = ["# torch version 2.13.0+cpu", "# Collective test starting: all_reduce_perf", "#", "# Using devices"]
    lines += [te.rank_line(i, 100 + i, n, 0, "cpu", "cpu") for i, n in enumerate(nodes)]
    lines += ["#", *te.header_lines()]
    for size in sizes:
        algbw = busbw  # 2 ranks: factor 1
        t = size / (algbw * 1e9) * 1e6
        lines.append(te.format_row_start(size, size // 4, "float", "sum", -1)
                     + te.format_result(t, algbw, busbw, 0) + te.format_result(t, algbw, busbw, 0))
    lines += ["# Out of bounds values : 0 OK", f"# Avg bus bandwidth    : {busbw:g} ", "#",
              "# Collective test concluded: all_reduce_perf", "#", ""]
    return "\n".join(lines)


def _base_log(nodes, busbw=1.5):
    """A baseline step's log: as many ranks as the job, all on its first node."""
    return _log([nodes[0]] * len(nodes), busbw)


class FakeSlurm:
    """Submits by recording the request; each job ends at once with a log from ``make_log(nodes)``, preceded by
    ``make_baseline(nodes)`` when the script has a baseline step (as the real script prints it: marker lines)."""

    def __init__(self, all_nodes, make_log, fail_submit_at=None, states=None, make_baseline=_base_log,
                 make_baseline_after=None):
        self.all_nodes, self.make_log, self.make_baseline = all_nodes, make_log, make_baseline
        self.make_baseline_after = make_baseline_after or make_baseline
        self.fail_submit_at, self.states = fail_submit_at, states or {}
        self.scripts: dict[str, str] = {}
        self.submitted: list[tuple[str, list[str]]] = []
        self.cancelled: list[str] = []
        self.polls = 0

    def available(self):
        return True, "slurm 22.05.8"

    def submit(self, script, sbatch_args=()):
        if self.fail_submit_at is not None and len(self.submitted) == self.fail_submit_at:
            raise SlurmkitError("sbatch: error: Batch job submission failed: Invalid node name specified")
        m = [a for a in sbatch_args if a.startswith("--nodelist=")]
        n = int(re.search(r"#SBATCH --nodes=(\d+)", script).group(1))
        if m:
            from slurmkit.hostlist import expand

            nodes = expand(m[0].split("=", 1)[1])
        else:
            nodes = self.all_nodes[:n]
        job_id = str(100 + len(self.submitted))
        self.submitted.append((job_id, nodes))
        self.scripts[job_id] = script
        return job_id

    def job(self, job_id):
        self.polls += 1
        nodes = dict(self.submitted)[job_id]
        state, code = self.states.get(tuple(nodes), ("COMPLETED", 0))
        return JobInfo(job_id, state, nodes=list(nodes), exit_code=code, stdout=f"/shared/slurmkit-bench-{job_id}.out")

    def read_file(self, path, offset=0):
        job_id = re.search(r"-(\d+)\.out$", path).group(1)
        nodes = dict(self.submitted)[job_id]
        text = f"slurmkit: job {job_id} on {','.join(nodes)}\n"
        if br.STEP_MARKER in self.scripts[job_id]:
            return (text + br.STEP_MARKER + "baseline one-node\n" + self.make_baseline(nodes)
                    + br.STEP_MARKER + "measured\n" + self.make_log(nodes)
                    + br.STEP_MARKER + "baseline one-node after\n" + self.make_baseline_after(nodes))
        return text + self.make_log(nodes)

    def cancel(self, job_id):
        self.cancelled.append(job_id)


NODES = ["n1", "n2", "n3", "n4", "n5", "n6"]


def test_pairs_mode_names_the_slow_node_and_counts_rounds(tmp_path):
    fake = FakeSlurm(NODES, lambda nodes: _log(nodes, 0.01 if "n4" in nodes else 1.2))
    result = br.run_bench(br.BenchSpec(engine="torch", mode="pairs"), fake, tmp_path, candidates=NODES,
                          profile="local", sleep=lambda s: None)
    assert [c["node"] for c in result.culprits] == ["n4"]
    assert result.exit_code == 1 and result.rounds == 2
    # two rounds of three disjoint pairs, submitted round by round, every pair pinned to its two nodes
    assert len(fake.submitted) == 6 and all(len(nodes) == 2 for _, nodes in fake.submitted)
    for rnd in (fake.submitted[:3], fake.submitted[3:]):
        assert sorted(n for _, nodes in rnd for n in nodes) == NODES
    meta = json.loads((result.run_dir / "meta.json").read_text())
    assert meta["mode"] == "pairs" and meta["sweep"]["rounds"] == 2 and meta["culprits"][0]["node"] == "n4"
    assert meta["versions"]["torch"] == "2.13.0+cpu" and meta["versions"]["slurm"] == "22.05.8"
    assert (result.run_dir / "report.html").is_file() and "culprit: n4" in result.summary
    # judged against each pair's own baseline (1.5 GB/s): 0.01 / 1.5, far below the local profile's ratio
    assert meta["culprits"][0]["ratio"] == pytest.approx(0.01 / 1.5)
    assert "busbw 0.01 of the same-run baseline" in meta["culprits"][0]["message"]


def test_pairs_mode_narrows_when_two_rounds_cannot_tell(tmp_path):
    # 4 nodes, circle method: round 1 (n1,n4) (n2,n3); round 2 (n1,n3) (n4,n2). With n1 AND n4 slow, only n2 and
    # n3 are cleared and n1, n4 have one cleared witness each: a narrowing round (n1,n2) (n4,n3) names both.
    nodes = ["n1", "n2", "n3", "n4"]
    fake = FakeSlurm(nodes, lambda ns: _log(ns, 0.01 if {"n1", "n4"} & set(ns) else 1.2))
    result = br.run_bench(br.BenchSpec(engine="torch", mode="pairs"), fake, tmp_path, candidates=nodes,
                          expect_gbps=0.5, sleep=lambda s: None)
    assert sorted(c["node"] for c in result.culprits) == ["n1", "n4"]
    assert result.rounds == 3
    assert [sorted(ns) for _, ns in fake.submitted[4:]] == [["n1", "n2"], ["n3", "n4"]]


def test_cluster_mode_passes_and_a_failed_job_fails_the_verdict(tmp_path):
    fake = FakeSlurm(NODES, lambda ns: _log(ns, 1.2))
    ok = br.run_bench(br.BenchSpec(engine="torch", nnodes=2), fake, tmp_path, candidates=NODES, profile="local",
                      sleep=lambda s: None)
    assert ok.exit_code == 0 and fake.submitted == [("100", ["n1", "n2"])]

    bad = FakeSlurm(NODES, lambda ns: "", states={("n1", "n2"): ("FAILED", 1)}, make_baseline=lambda ns: "")
    res = br.run_bench(br.BenchSpec(engine="torch", nnodes=2), bad, tmp_path, candidates=NODES, profile="local",
                       sleep=lambda s: None)
    assert res.exit_code == 1
    assert "job 100 (cluster on n1,n2) ended FAILED, exit code 1" in res.verdict.reasons


def test_nodes_mode_submits_every_node_at_once_and_names_the_outlier(tmp_path):
    fake = FakeSlurm(NODES, lambda ns: _log(ns, 0.3 if ns == ["n2"] else 1.0))
    res = br.run_bench(br.BenchSpec(engine="torch", mode="nodes", nodes=("n1", "n2", "n3")), fake, tmp_path,
                       sleep=lambda s: None)
    assert [nodes for _, nodes in fake.submitted] == [["n1"], ["n2"], ["n3"]]
    assert [c["node"] for c in res.culprits] == ["n2"] and res.exit_code == 1


def test_a_job_that_cannot_be_submitted_cancels_the_batch_and_cannot_run(tmp_path):
    fake = FakeSlurm(NODES, lambda ns: _log(ns, 1.0), fail_submit_at=2)
    with pytest.raises(br.BenchCouldNotRun) as exc:
        br.run_bench(br.BenchSpec(engine="torch", mode="nodes"), fake, tmp_path, candidates=NODES,
                     sleep=lambda s: None)
    assert exc.value.exit_code == 2 and "Invalid node name" in str(exc.value)
    assert fake.cancelled == ["100", "101"]


def test_pairs_mode_without_a_threshold_cannot_run(tmp_path):
    with pytest.raises(br.BenchCouldNotRun, match="--profile NAME or --expect"):
        br.run_bench(br.BenchSpec(engine="torch", mode="pairs"), FakeSlurm(NODES, str), tmp_path, candidates=NODES)


def test_cli_bench_group_still_has_parse_and_report_and_documents_the_engines():
    from click.testing import CliRunner

    from slurmkit.cli.bench import bench

    out = CliRunner().invoke(bench, ["--help"]).output
    assert "tested by script generation" in out and "--mode" in out and "parse" in out and "report" in out
    assert CliRunner().invoke(bench, ["report", "--help"]).exit_code == 0


def test_nccl_env_from_cached_facts_only_when_the_nodes_agree():
    # Cache records built from interfaces captured on a local cluster (tests/fixtures/hardware/SOURCES.md).
    from tests.unit.test_discovery import HEAD, NODE1, NODE2, cap1, two_groups

    c = two_groups()
    agree = {"cpu-1": cap1("cpu-1", NODE1), "cpu-2": cap1("cpu-2", NODE2)}
    assert br.nccl_env_from_facts(c, agree, ["cpu-1", "cpu-2"]) == ({"NCCL_SOCKET_IFNAME": "=eth0"}, None)
    # gpu-1's address is on its eth1: the two nodes name different interfaces, so nothing is set for both.
    differ = {"cpu-1": cap1("cpu-1", NODE1), "gpu-1": cap1("gpu-1", HEAD)}
    assert br.nccl_env_from_facts(c, differ, ["cpu-1", "gpu-1"]) == ({}, None)
    assert br.nccl_env_from_facts(c, {}, ["cpu-1"]) == ({}, None)


# ---------------------------------------------------------------------------------------------- same-run baseline


def test_a_baseline_job_runs_the_same_bench_on_its_first_node_before_the_measured_step():
    spec = br.BenchSpec(engine="torch", python="/venv/bin/python", baseline="one-node", master_port=29600)
    script = br.job_request(spec, nnodes=3, name="cluster").script
    lines = script.rstrip("\n").splitlines()
    base = ('MASTER_PORT=29601 srun --nodes=1 --ntasks=3 --ntasks-per-node=3 --overcommit --kill-on-bad-exit=1 '
            '--nodelist="${SLURMKIT_NODE_NAMES%%,*}" ' + " ".join(__import__("shlex").quote(a)
                                                                 for a in br.engine_command(spec)))
    assert lines[-6:-3] == ["echo '# slurmkit bench step: baseline one-node'", base,
                            "echo '# slurmkit bench step: measured'"]
    assert lines[-3].startswith("srun --ntasks-per-node=1 ")
    # the same baseline again after the measured step: the two bracket it
    assert lines[-2:] == ["echo '# slurmkit bench step: baseline one-node after'", base]
    # a single-node job has no network to isolate: no baseline step
    assert br.STEP_MARKER not in br.job_request(spec, nodes=("n1",), name="node-n1").script
    # with GPUs the baseline is one node's GPUs
    gpu = br.BenchSpec(engine="nccl-tests", gpus_per_node=8, baseline="one-node")
    line = br.baseline_line(gpu, 4)
    assert "--ntasks=8 --ntasks-per-node=8 --gpus-per-node=8 " in line and not line.startswith("MASTER_PORT")
    with pytest.raises(SlurmkitError, match="baseline 'loopback' is not one of one-node"):
        br.BenchSpec(baseline="loopback")


def test_split_steps_cuts_a_log_at_the_step_markers():
    log = ("slurmkit: job 7 on n1,n2\n" + br.STEP_MARKER + "baseline one-node\nB1\nB2\n"
           + br.STEP_MARKER + "measured\nM1\n" + br.STEP_MARKER + "baseline one-node after\nB3\n")
    assert br.split_steps(log) == ("B1\nB2\nB3\n", "slurmkit: job 7 on n1,n2\nM1\n")
    assert br.split_steps("M only\n") == (None, "M only\n")


def _cluster(tmp_path, measured, baseline, **kw):
    fake = FakeSlurm(NODES, lambda ns: _log(ns, measured), make_baseline=lambda ns: _base_log(ns, baseline))
    res = br.run_bench(br.BenchSpec(engine="torch", nnodes=2), fake, tmp_path, candidates=NODES,
                       sleep=lambda s: None, **kw)
    return fake, res


def test_the_local_profile_judges_the_ratio_to_the_same_run_baseline_and_saves_it(tmp_path):
    fake, ok = _cluster(tmp_path / "a", 0.22, 0.36, profile="local")
    assert br.STEP_MARKER in fake.scripts["100"]
    v = ok.verdict
    assert ok.exit_code == 0 and v.ratio == pytest.approx(0.22 / 0.36) and v.baseline_gbps == pytest.approx(0.36)
    assert v.summary() == ("PASS [local]: busbw 0.22 GB/s = 0.61 of the same-run baseline 0.36 GB/s, "
                           "needs >= 0.3 (out-of-place average at >= 16 MiB)")
    meta = json.loads((ok.run_dir / "meta.json").read_text())
    assert {k: meta["verdict"][k] for k in ("baseline_measure", "min_ratio", "expect_gbps")} == {
        "baseline_measure": "one-node", "min_ratio": 0.3, "expect_gbps": None}
    assert meta["verdict"]["ratio"] == pytest.approx(0.22 / 0.36) and meta["sweep"]["baseline"]["ranks"] == 2
    assert sorted(p.name for p in (ok.run_dir / "logs").iterdir()) == ["cluster-100-baseline.log", "cluster-100.log"]
    assert "of the same-run baseline" in (ok.run_dir / "report.html").read_text()

    _, bad = _cluster(tmp_path / "b", 0.05, 0.36, profile="local")
    assert bad.exit_code == 1
    assert bad.verdict.reasons == ["logs/cluster.log #0 (all_reduce): busbw 0.05 GB/s = 0.14 of the same-run "
                                   "baseline 0.36 GB/s, needs >= 0.3 (out-of-place, average over 1 size(s) >= 16 MiB)"]


def test_the_lower_of_the_baselines_before_and_after_the_measured_step_is_the_one_judged(tmp_path):
    # the machine got busy during the job: 0.36 before, 0.18 after; healthy links measured 0.10 in between
    for before, after in ((0.36, 0.18), (0.18, 0.36)):
        fake = FakeSlurm(NODES, lambda ns: _log(ns, 0.10), make_baseline=lambda ns, b=before: _base_log(ns, b),
                         make_baseline_after=lambda ns, a=after: _base_log(ns, a))
        res = br.run_bench(br.BenchSpec(engine="torch", nnodes=2), fake, tmp_path / f"{before}", candidates=NODES,
                           sleep=lambda s: None, profile="local")
        assert res.exit_code == 0, res.verdict.reasons
        assert res.verdict.baseline_gbps == pytest.approx(0.18) and res.verdict.ratio == pytest.approx(0.10 / 0.18)
    # a link at 0.05 stays far below either: 0.05/0.18 = 0.28 < 0.3
    fake = FakeSlurm(NODES, lambda ns: _log(ns, 0.05), make_baseline=lambda ns: _base_log(ns, 0.36),
                     make_baseline_after=lambda ns: _base_log(ns, 0.18))
    res = br.run_bench(br.BenchSpec(engine="torch", nnodes=2), fake, tmp_path / "slow", candidates=NODES,
                       sleep=lambda s: None, profile="local")
    assert res.exit_code == 1 and "= 0.28 of the same-run baseline 0.18 GB/s" in res.verdict.reasons[0]


def test_pair_ratio_takes_the_lower_bracketing_baseline():
    nodes = ["n1", "n2"]
    log = ("slurmkit: job 7 on n1,n2\n" + br.STEP_MARKER + "baseline one-node\n" + _base_log(nodes, 1.2)
           + br.STEP_MARKER + "measured\n" + _log(nodes, 0.3) + br.STEP_MARKER + "baseline one-node after\n"
           + _base_log(nodes, 0.6))
    outcome = br.JobOutcome(planned=br.PlannedJob("r0-n1-n2", ("n1", "n2"), 2), job_id="7", state="COMPLETED",
                            exit_code=0, nodes=nodes, log=log)
    assert br.pair_ratio(outcome) == pytest.approx(0.3 / 0.6)


def test_a_slower_machine_gets_the_same_verdict(tmp_path):
    # the same cluster on a machine ten times slower (or ten times busier): both figures scale, the ratio does not
    # (logs print busbw with two decimals, as nccl-tests: the figures stay where that is exact)
    for scale in (1.0, 0.1):
        _, res = _cluster(tmp_path / str(scale), 6.0 * scale, 8.0 * scale, profile="local")
        assert res.exit_code == 0 and res.verdict.ratio == pytest.approx(0.75), scale
        _, res = _cluster(tmp_path / f"slow-link-{scale}", 0.8 * scale, 8.0 * scale, profile="local")
        assert res.exit_code == 1 and res.verdict.ratio == pytest.approx(0.1), scale


def test_a_job_without_its_baseline_fails_naming_it(tmp_path):
    _, res = _cluster(tmp_path, 0.4, 0.5, profile="local")
    assert res.passed
    fake = FakeSlurm(NODES, lambda ns: _log(ns, 0.4), make_baseline=lambda ns: "step failed\n")
    res = br.run_bench(br.BenchSpec(engine="torch", nnodes=2), fake, tmp_path, candidates=NODES,
                       profile="local", sleep=lambda s: None)
    assert res.exit_code == 1
    assert any("no same-run baseline" in r for r in res.verdict.reasons), res.verdict.reasons


def test_expect_replaces_the_baseline_and_nodes_mode_runs_none(tmp_path):
    fake, res = _cluster(tmp_path / "a", 0.4, 0.5, profile="local", expect_gbps=0.3)
    assert br.STEP_MARKER not in fake.scripts["100"] and res.passed and res.verdict.ratio is None
    assert res.verdict.expect_gbps == 0.3
    fake = FakeSlurm(NODES, lambda ns: _log(ns, 1.0))
    res = br.run_bench(br.BenchSpec(engine="torch", mode="nodes", nodes=("n1", "n2")), fake, tmp_path / "b",
                       profile="local", sleep=lambda s: None)
    assert not any(br.STEP_MARKER in s for s in fake.scripts.values())
    assert res.passed and res.verdict.min_ratio is None, res.verdict.reasons


def test_pairs_by_ratio_do_not_blame_a_uniformly_slow_machine(tmp_path):
    # every pair at 0.02 GB/s (a slow, busy machine), each job's own baseline at 0.025: nothing is slow
    fake = FakeSlurm(NODES, lambda ns: _log(ns, 0.02), make_baseline=lambda ns: _base_log(ns, 0.025))
    res = br.run_bench(br.BenchSpec(engine="torch", mode="pairs"), fake, tmp_path, candidates=NODES,
                       profile="local", sleep=lambda s: None)
    assert res.culprits == [] and res.exit_code == 0 and res.rounds == 2, res.verdict.reasons


def test_cli_min_size_is_checked_before_anything_runs():
    from click.testing import CliRunner

    from slurmkit.cli.bench import bench

    res = CliRunner().invoke(bench, ["--engine", "torch", "--min-size", "lots"])
    assert res.exit_code == 2 and "--min-size" in res.output and "invalid size 'lots'" in res.output
    assert "same-run baseline" in CliRunner().invoke(bench, ["--help"]).output
