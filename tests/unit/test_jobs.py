"""JobSpec -> sbatch script (golden files, hostile input), launchers, retry policy (the cluster-state rules:
tests/unit/test_slurm_state.py).

Re-record the golden sbatch scripts after an intended change with:
    SLURMKIT_RECORD_GOLDEN=1 .venv/bin/pytest -q tests/unit/test_jobs.py -k golden
then read `git diff tests/golden/sbatch` before committing.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from slurmkit.jobs import JobSpecError, build_job, decide_retry, run_with_retries
from slurmkit.slurm.parsers import JobInfo, NodeInfo
from tests.conftest import HARDWARE, ROOT

GOLDEN = ROOT / "tests" / "golden" / "sbatch"
CASES = {
    "srun-1node.sh": dict(command=["hostname"]),
    "torchrun-2nodes-cpu.sh": dict(command=["python", "examples/train_ddp.py", "--steps", "30"], nodes=2,
                                   launcher="torchrun", nproc_per_node=2, partition="debug", time="00:10:00"),
    "torchrun-4nodes-8gpu-nccl.sh": dict(command=["python3", "-u", "train.py"], nodes=4, gpus_per_node=8,
                                         launcher="torchrun", nccl_env={"NCCL_IB_HCA": "=mlx5_0,mlx5_1"},
                                         exclude=["node-3", "node-7"], master_port=29555),
    "mpirun-2nodes-8gpu.sh": dict(command=["all_reduce_perf", "-b", "8", "-e", "2G", "-f", "2", "-g", "1"], nodes=2,
                                  gpus_per_node=8, launcher="mpirun", env={"NCCL_IB_HCA": "^mlx5_0"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_sbatch(name):
    text = build_job(**CASES[name]).script
    path = GOLDEN / name
    if os.environ.get("SLURMKIT_RECORD_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file; re-record (see module docstring)"


def test_unknown_parameter_rejected_with_valid_list():
    with pytest.raises(JobSpecError) as exc:
        build_job(command=["x"], gpus=8)
    assert "unknown job parameter(s) gpus" in str(exc.value) and "gpus_per_node" in str(exc.value)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(partition="gpu; rm -rf /"), "partition"), (dict(time="1 hour"), "time"), (dict(nodes=0), "nodes"),
    (dict(env={"BAD-NAME": "x"}), "env"), (dict(env={"SLURMKIT_NODES": "x"}), "env"),
    (dict(exclude=["n1 n2"]), "exclude"), (dict(launcher="pdsh"), "launcher"), (dict(output="a b.out"), "output"),
])
def test_invalid_values_rejected(kwargs, msg):
    with pytest.raises(JobSpecError, match=msg):
        build_job(command=["x"], **kwargs)


HOSTILE = ["$(touch /tmp/pwned)", "`id`", "a'b\"c", "x; touch /tmp/pwned", "l1\nl2", "${HOME}", "--", "*"]


def launch_argv(script: str) -> list[str]:
    # the launch line is last; a quoted argument may span lines (a newline inside it)
    start = max(script.rfind("\nsrun "), script.rfind("\nmpirun "))
    return shlex.split(script[start:])


def test_hostile_command_and_env_are_literal_in_the_script():
    req = build_job(command=["printf", "%s\n", *HOSTILE], name="$(x)\n#SBATCH --nodes=99", env={"V": HOSTILE[0]})
    argv = launch_argv(req.script)
    assert argv[argv.index("slurmkit") + 1:] == ["printf", "%s\n", *HOSTILE]
    export = next(ln for ln in req.script.splitlines() if ln.startswith("export V="))
    assert shlex.split(export) == ["export", f"V={HOSTILE[0]}"]
    # the name is an argv item for sbatch, never an #SBATCH line
    assert req.sbatch_args == ("--job-name=$(x)\n#SBATCH --nodes=99",)
    assert "--nodes=99" not in req.script


def test_srun_launch_body_expands_node_rank_on_the_node_and_keeps_args_literal(tmp_path):
    req = build_job(command=["printf", "[%s]", *HOSTILE])
    argv = launch_argv(req.script)
    body_index = argv.index("-c") + 1
    # what srun would run on node 3: bash -c BODY slurmkit ARGS...
    r = subprocess.run(["bash", "-c", argv[body_index] + '; ', *argv[body_index + 1:]], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], "SLURM_NODEID": "3"}, cwd=tmp_path)
    assert r.stdout == "".join(f"[{h}]" for h in HOSTILE)
    assert not (tmp_path / "pwned").exists()


def test_torchrun_line_gets_rank_from_the_node(tmp_path):
    req = build_job(command=["python", "train.py", "--lr", "$(x)"], nodes=2, launcher="torchrun", nproc_per_node=4)
    argv = launch_argv(req.script)
    i = argv.index("-c") + 1
    body = argv[i].replace("exec ", "printf '<%s>' ", 1)  # print instead of exec'ing torchrun
    env = {"PATH": os.environ["PATH"], "SLURM_NODEID": "1", "SLURMKIT_NNODES": "2", "SLURMKIT_MASTER_ADDR": "10.0.0.1",
           "SLURMKIT_MASTER_PORT": "29500", "SLURM_JOB_ID": "77"}
    out = subprocess.run(["bash", "-c", body, *argv[i + 1:]], capture_output=True, text=True, env=env).stdout
    assert out == ("<python><-m><torch.distributed.run><--nnodes=2><--node_rank=1><--nproc_per_node=4>"
                   "<--rdzv_backend=static><--rdzv_endpoint=10.0.0.1:29500><--rdzv_id=77><train.py><--lr><$(x)>")


@pytest.mark.parametrize("command, prefix", [
    (["/opt/venv/bin/python3.11", "t.py"], ["/opt/venv/bin/python3.11", "-m", "torch.distributed.run"]),
    (["t.py", "--x"], ["torchrun"]), (["./train"], ["torchrun"]),
])
def test_torchrun_program_split(command, prefix):
    from slurmkit.jobs import TorchrunLauncher

    got_prefix, rest = TorchrunLauncher().split(command)
    assert got_prefix == prefix
    assert rest == (["--no-python", "./train"] if command == ["./train"] else command[len(prefix) - 2:] if len(prefix) == 3 else command)


def test_mpirun_gets_hostfile_and_slots():
    s = build_job(command=["a.out"], nodes=2, gpus_per_node=8, launcher="mpirun").script
    assert 'mpirun --hostfile "$SLURMKIT_HOSTFILE" -np $(( SLURMKIT_NNODES * 8 ))' in s
    assert "sed 's/$/ slots=8/'" in s
    assert "sed 's/$/ slots=1/'" in build_job(command=["a.out"], launcher="mpirun").script


def test_every_documented_variable_is_exported():
    from slurmkit.jobs import ENV_VARS

    s = build_job(command=["x"]).script
    for var in ENV_VARS:
        assert f"export {var}" in s or f"export SLURMKIT_NODE_NAMES SLURMKIT_NODES" in s and var in ("SLURMKIT_NODES", "SLURMKIT_NODE_NAMES")


# ---------------------------------------------------------------------------------------------------------
# Retry policy

def info(state, nodes=("n1", "n2"), **kw):
    return JobInfo(job_id="1", state=state, nodes=list(nodes), **kw)


def test_decide_retry_node_fail_blames_down_nodes():
    d = decide_retry(info("NODE_FAIL"), down_nodes=["n2", "n9"])
    assert (d.retry, d.blamed) == (True, ("n2",))
    assert decide_retry(info("NODE_FAIL"), down_nodes=[]).blamed == ("n1", "n2")


def test_decide_retry_failed_on_one_node_only():
    log = "srun: error: n2: task 1: Exited with exit code 1\n"
    assert decide_retry(info("FAILED"), log).blamed == ("n2",)
    both = log + "srun: error: n1: task 0: Exited with exit code 1\n"
    assert decide_retry(info("FAILED"), both).retry is False
    assert decide_retry(info("FAILED", nodes=["n1"]), "srun: error: n1: task 0: Exited with exit code 1\n").retry is False


@pytest.mark.parametrize("state", ["COMPLETED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"])
def test_decide_retry_no_retry_for_other_endings(state):
    assert decide_retry(info(state)).retry is False


class ScriptedBackend:
    """A fake backend whose jobs end as scripted: each submit takes the next (state, nodes)."""

    def __init__(self, outcomes, down=(), up=()):
        self.outcomes = list(outcomes)
        self.submitted: list[tuple[str, tuple]] = []
        self.down = down
        self.up = up
        self.infos = {}

    def submit(self, script, args):
        job_id = str(len(self.submitted) + 1)
        self.submitted.append((script, tuple(args)))
        state, nodes = self.outcomes.pop(0)
        self.infos[job_id] = JobInfo(job_id=job_id, state=state, nodes=list(nodes), stdout=f"/o/{job_id}")
        return job_id

    def job(self, job_id):
        return self.infos[job_id]

    def read_file(self, path, offset=0):
        return ""

    def nodes(self):
        return ([NodeInfo(n, "DOWN", ("NOT_RESPONDING",)) for n in self.down] + [NodeInfo(n, "IDLE") for n in self.up]
                + list(getattr(self, "nodes_extra", [])))


def test_run_with_retries_excludes_failed_node_and_completes():
    b = ScriptedBackend([("NODE_FAIL", ["n1", "n2"]), ("COMPLETED", ["n1", "n3"])], down=["n2"], up=["n1", "n3"])
    seen = []
    attempts = run_with_retries(b, dict(command=["x"], nodes=2), retries=2, report=seen.append, sleep=lambda s: None)
    assert [(a.state, a.excluded, a.blamed) for a in attempts] == [("NODE_FAIL", [], ["n2"]), ("COMPLETED", ["n2"], [])]
    assert seen == attempts
    assert "#SBATCH --exclude=n2" in b.submitted[1][0] and "--exclude" not in b.submitted[0][0]
    # slurmkit retries itself, so Slurm must not requeue the job on a node failure
    assert all("#SBATCH --no-requeue" in script for script, _ in b.submitted)


def test_run_with_retries_stops_after_k():
    b = ScriptedBackend([("NODE_FAIL", ["n1", "n2"]), ("NODE_FAIL", ["n3", "n4"]), ("COMPLETED", ["n5", "n6"])],
                        down=["n1", "n3"], up=["n2", "n4", "n5", "n6"])
    attempts = run_with_retries(b, dict(command=["x"], nodes=2), retries=1, sleep=lambda s: None)
    assert [(a.state, a.excluded) for a in attempts] == [("NODE_FAIL", []), ("NODE_FAIL", ["n1"])]
    assert len(b.submitted) == 2


def test_run_with_retries_stops_when_too_few_usable_nodes_are_left():
    # A 2-node job on a 3-node cluster: n2 crashed (down) and is blamed; n1 and n3 remain, one of them drained.
    b = ScriptedBackend([("NODE_FAIL", ["n1", "n2"]), ("COMPLETED", ["n1", "n3"])], down=["n2"], up=["n1"])
    b.nodes_extra = [NodeInfo("n3", "IDLE", ("DRAIN",))]
    seen = []
    attempts = run_with_retries(b, dict(command=["x"], nodes=2), retries=2, report=seen.append, sleep=lambda s: None)
    assert len(b.submitted) == 1 and len(attempts) == 1
    assert attempts[0].note == "no retry: 1 usable node(s) left (n1) for a 2-node job once n2 are excluded"


def test_run_with_retries_no_retry_on_program_failure():
    b = ScriptedBackend([("FAILED", ["n1", "n2"]), ("COMPLETED", ["n1", "n2"])])
    attempts = run_with_retries(b, dict(command=["x"], nodes=2), retries=3, sleep=lambda s: None)
    assert [a.state for a in attempts] == ["FAILED"]


def test_dry_run_cli_prints_script_without_cluster(cli, tmp_path):
    r = cli("submit", "--dry-run", "-N", "2", "--launcher", "mpirun", "--", "echo", "$(id)", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# submitted as: sbatch --parsable --job-name=slurmkit < script\n#!/bin/bash\n")
    assert launch_argv(r.stdout)[-2:] == ["echo", "$(id)"]


def test_remote_backend_names_the_unreachable_head(cli, tmp_path):
    # Away from the cluster, Slurm commands go over SSH to a head; a head that refuses is a one-line error.
    (tmp_path / "cluster.yaml").write_text(
        "cluster: far\nssh: {user: u, port: 1, connect_timeout: 5}\nheads: {names: far-head-1, addresses: 127.0.0.1}\n"
        "nodes:\n  - {names: 'far-node-[1-2]'}\n")
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    r = subprocess.run([__import__("sys").executable, "-m", "slurmkit", "jobs"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "unreachable" in r.stderr and "far-head-1" in r.stderr


def _cached_cluster(tmp_path, partitions: str) -> None:
    """A cluster file with facts cached as `discover` writes them, from outputs captured in the local cluster
    'cap1' (tests/fixtures/hardware/SOURCES.md): node-1/node-2 hold their address on eth0, the head's capture
    holds 10.167.187.1 on eth1."""
    import json as _json

    from slurmkit.discovery import CommandOutput, facts_record
    from slurmkit.hardware import write_facts

    fx = HARDWARE
    (tmp_path / "cluster.yaml").write_text(
        "cluster: c\nssh: {user: root}\nheads: {names: head-1, addresses: 10.167.186.11}\nnodes:\n"
        "  - {names: 'cpu-[1-2]', addresses: '10.167.187.[11-12]'}\n  - {names: gpu-1, addresses: 10.167.187.1}\n"
        + partitions)
    for host, addr in (("cpu-1", "ip-addr-03-localcluster-node-eth0-only.txt"),
                       ("cpu-2", "ip-addr-04-localcluster-node2-eth0-only.txt"),
                       ("gpu-1", "ip-addr-02-localcluster-head-eth0-mgmt-eth1-private.txt")):
        rec = facts_record(host, {"ip_addr": "ip -o -4 addr show"},
                           {"ip_addr": CommandOutput((fx / addr).read_text(), "", 0)})
        write_facts(tmp_path / "cluster.yaml", host, _json.loads(_json.dumps(rec)))


PARTS = "partitions:\n  - {name: cpu, nodes: 'cpu-[1-2]', default: true}\n  - {name: all}\n"


def test_dry_run_exports_the_discovered_nccl_env(cli, tmp_path):
    _cached_cluster(tmp_path, PARTS)
    r = cli("submit", "--dry-run", "-N", "2", "--", "hostname", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("# NCCL env from discovered facts of partition cpu: NCCL_SOCKET_IFNAME==eth0\n")
    assert "\nexport NCCL_SOCKET_IFNAME==eth0\n" in r.stdout
    # --env wins over it; --no-nccl-env drops it
    r = cli("submit", "--dry-run", "-e", "NCCL_SOCKET_IFNAME=ib0", "--", "hostname", cwd=tmp_path)
    assert "\nexport NCCL_SOCKET_IFNAME=ib0\n" in r.stdout and "NCCL_SOCKET_IFNAME==eth0\n" not in r.stdout.split("\n", 1)[1]
    r = cli("submit", "--dry-run", "--no-nccl-env", "--", "hostname", cwd=tmp_path)
    assert r.returncode == 0 and "NCCL_" not in r.stdout


def test_dry_run_partition_with_different_nccl_envs_exports_none_and_says_so(cli, tmp_path):
    _cached_cluster(tmp_path, PARTS)
    r = cli("submit", "--dry-run", "-p", "all", "--", "hostname", cwd=tmp_path)
    assert r.returncode == 0 and "NCCL_" not in r.stdout
    (line,) = r.stderr.splitlines()
    assert line.startswith("warning: NCCL env not exported: partition all spans nodes with different NCCL envs")


# ---------------------------------------------------------------------------------------------------------
# `slurmkit status`: its four reads run at once (one round trip through the head), errors as when in sequence.

_SLURM_FX = ROOT / "tests" / "fixtures" / "slurm-22.05"
_STATUS_ANSWERS = {  # outputs captured from Slurm 22.05 (tests/fixtures/slurm-22.05/SOURCES.md)
    ("scontrol", "ping"): (0, "scontrol-ping.txt"),
    ("scontrol", "-o", "show", "node"): (0, "scontrol-o-show-node-alloc.txt"),
    ("scontrol", "-o", "show", "partition"): (0, "scontrol-o-show-partition.txt"),
    ("squeue", "--json"): (0, "squeue-json-running-pending.json"),
}


class _StatusRunner:
    """Replays the captured outputs; ``failing`` argvs exit 127 as local_runner reports a missing program. With
    ``together``, every call waits until all four have started: reads one after another would never get there."""

    def __init__(self, failing=(), together=False, answers=None):
        import threading

        self.failing = set(failing)
        self.answers = answers or _STATUS_ANSWERS
        self.barrier = threading.Barrier(4, timeout=120) if together else None

    def __call__(self, argv, stdin=None):
        if self.barrier is not None:
            self.barrier.wait()
        key = tuple(argv)
        if key in self.failing:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
        rc, name = self.answers[key]
        return subprocess.CompletedProcess(argv, rc, (_SLURM_FX / name).read_text(), "")


def _status(monkeypatch, runner, *args):
    from click.testing import CliRunner

    from slurmkit.cli import jobs as cli_jobs
    from slurmkit.slurm.cli_backend import CliBackend

    monkeypatch.setattr(cli_jobs, "backend_for", lambda ctx: CliBackend(runner))
    return CliRunner().invoke(cli_jobs.status, list(args))


def test_status_runs_its_four_reads_at_once(monkeypatch):
    r = _status(monkeypatch, _StatusRunner(together=True))
    lines = r.stdout.splitlines()
    assert lines[0] == "cluster: RUNNING" and r.exit_code == 0, r.output
    assert lines[lines.index("controllers:") + 1].split() == ["vm", "primary", "UP"]
    assert lines[lines.index("partitions:") + 1].split() == ["debug*", "UP", "nodes=sk-one"]
    assert lines[lines.index("running jobs: 1") + 1].split()[:2] == ["3", "sk-one"]


def test_status_json_matches_the_records_of_each_read(monkeypatch):
    import json as _json

    from slurmkit.slurm import parsers

    r = _status(monkeypatch, _StatusRunner(together=True), "--json")
    out = _json.loads(r.stdout)
    assert [n["name"] for n in out["nodes"]] == [
        n.name for n in parsers.parse_scontrol_nodes((_SLURM_FX / "scontrol-o-show-node-alloc.txt").read_text())]
    assert [j["job_id"] for j in out["jobs"]] == ["3"]
    assert out["controllers"] == [{"host": "vm", "role": "primary", "up": True}]


def test_status_raises_the_first_failing_read_in_order_when_a_controller_answers(monkeypatch):
    from slurmkit.errors import CommandError

    # nodes (read second) and jobs (read last) both fail: the nodes error is the one raised, as in sequence.
    runner = _StatusRunner(failing=[("scontrol", "-o", "show", "node"), ("squeue", "--json")], together=True)
    r = _status(monkeypatch, runner)
    assert isinstance(r.exception, CommandError), r.output
    assert r.exception.command == "scontrol -o show node"


def test_status_without_controller_warns_and_reports_failed(monkeypatch):
    runner = _StatusRunner(failing=[("scontrol", "ping"), ("scontrol", "-o", "show", "partition")], together=True)
    r = _status(monkeypatch, runner)
    assert r.exit_code == 1, r.output
    assert r.stdout.splitlines()[:3] == ["cluster: FAILED", "  - no slurmctld answers", "  - no compute nodes"]
    assert r.stderr.startswith("warning: `scontrol -o show partition` failed with exit code 127")
    assert "nodes:\npartitions:\nrunning jobs: 0" in r.stdout


# `slurmkit status` marks slurmkit's drains. The node text is the real drained line captured from Slurm 22.05.8
# (scontrol-o-show-node-drain.txt, State=IDLE+DRAIN); for slurmkit's drains only its Reason= value is substituted.
@pytest.mark.parametrize("reason, by, shown", [
    ("slurmkit:gpu-count 7/8 GPUs", "slurmkit:health", "drained by slurmkit: gpu-count 7/8 GPUs"),
    ("slurmkit:bench busbw 12.1 < 40 GB/s", "slurmkit:bench", "drained by slurmkit: bench busbw 12.1 < 40 GB/s"),
    (None, None, "reason: fixture: drained by hand [root@2026-11-21T23:10:35]"),  # as captured: an admin's drain
])
def test_status_marks_nodes_drained_by_slurmkit(monkeypatch, tmp_path, reason, by, shown):
    import json as _json

    text = (_SLURM_FX / "scontrol-o-show-node-drain.txt").read_text()
    if reason is not None:
        text = text.partition("Reason=")[0] + f"Reason={reason} [root@2026-11-21T23:10:35]\n"
    (tmp_path / "nodes.txt").write_text(text)
    answers = {**_STATUS_ANSWERS, ("scontrol", "-o", "show", "node"): (0, str(tmp_path / "nodes.txt"))}
    r = _status(monkeypatch, _StatusRunner(answers=answers))
    lines = r.stdout.splitlines()
    assert lines[0] == "cluster: DEGRADED" and r.exit_code == 1, r.output  # the cluster state rules as before
    node_line = lines[lines.index("nodes:") + 1]
    assert node_line.split()[:2] == ["sk-one", "IDLE+DRAIN"] and node_line.endswith("  " + shown)
    out = _json.loads(_status(monkeypatch, _StatusRunner(answers=answers), "--json").stdout)
    assert out["state"] == "DEGRADED" and [(n["name"], n["drained_by"]) for n in out["nodes"]] == [("sk-one", by)]


def test_status_json_drained_by_is_null_for_an_undrained_node(monkeypatch):
    import json as _json

    out = _json.loads(_status(monkeypatch, _StatusRunner(), "--json").stdout)
    assert [n["drained_by"] for n in out["nodes"]] == [None]
