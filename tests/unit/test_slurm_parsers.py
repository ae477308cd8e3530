"""Parsers of Slurm command output, on outputs captured from Slurm 22.05.8 (tests/fixtures/slurm-22.05).
Expected values were read from the fixture files by eye."""

from __future__ import annotations

import pytest

from slurmkit.slurm import parsers as p
from tests.conftest import FIXTURES

F = FIXTURES / "slurm-22.05"


def read(name: str) -> str:
    return (F / name).read_text()


def test_squeue_json_jobs_states_exit_codes_nodes():
    jobs = {j.job_id: j for j in p.parse_squeue_json(read("squeue-json-running-pending.json"))}
    assert sorted(jobs) == ["1", "2", "3", "4"]
    assert (jobs["1"].name, jobs["1"].state, jobs["1"].exit_code, jobs["1"].nodes) == ("ok", "COMPLETED", 0, ["sk-one"])
    # exit_code 768 in 22.05's JSON is the wait status: exit 3
    assert (jobs["2"].state, jobs["2"].exit_code, jobs["2"].reason) == ("FAILED", 3, "NonZeroExitCode")
    assert (jobs["3"].state, jobs["3"].nodes, jobs["3"].partition, jobs["3"].user) == ("RUNNING", ["sk-one"], "debug", "root")
    assert (jobs["4"].state, jobs["4"].reason, jobs["4"].nodes, jobs["4"].node_count) == ("PENDING", "Resources", [], 1)
    assert all(j.source == "squeue" for j in jobs.values())


def test_squeue_json_with_controller_down_raises_despite_exit_0():
    with pytest.raises(p.SlurmOutputError, match="Failed while looking for jobs"):
        p.parse_squeue_json(read("squeue-ctld-down.txt"))


def test_sinfo_json_states_and_flags():
    (mixed,) = p.parse_sinfo_json(read("sinfo-json-mixed.json"))
    assert (mixed.name, mixed.state, mixed.flags, mixed.cpus, mixed.memory_mb, mixed.address, mixed.partitions) == (
        "sk-one", "MIXED", (), 2, 4000, "127.0.0.1", ("debug",))
    (drain,) = p.parse_sinfo_json(read("sinfo-json-drain.json"))
    assert (drain.state, drain.flags, drain.reason) == ("IDLE", ("DRAIN",), "fixture: drained by hand")
    (down,) = p.parse_sinfo_json(read("sinfo-json-down.json"))
    assert (down.state, down.flags, down.reason) == ("DOWN", ("DRAIN",), "fixture: down by hand")


def test_scontrol_nodes():
    (n,) = p.parse_scontrol_nodes(read("scontrol-o-show-node-alloc.txt"))
    assert (n.name, n.state, n.flags, n.cpus, n.memory_mb, n.gres, n.address, n.reason) == (
        "sk-one", "MIXED", (), 2, 4000, "", "127.0.0.1", "")
    (d,) = p.parse_scontrol_nodes(read("scontrol-o-show-node-drain.txt"))
    assert (d.state, d.flags) == ("IDLE", ("DRAIN",))
    assert d.reason.startswith("fixture: drained by hand [root@") and d.state_text == "IDLE+DRAIN"
    (dn,) = p.parse_scontrol_nodes(read("scontrol-o-show-node-down.txt"))
    assert (dn.state, dn.flags) == ("DOWN", ("DRAIN",)) and dn.reason.startswith("fixture: down by hand")
    (nr,) = p.parse_scontrol_nodes(read("scontrol-o-show-node-nonresp.txt"))
    assert (nr.state, nr.flags, nr.reason) == ("IDLE", ("NOT_RESPONDING",), "")


def test_scontrol_record_values_with_spaces():
    (rec,) = p.parse_scontrol_records(read("scontrol-o-show-node-alloc.txt"))
    assert rec["OS"] == "Linux 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0"
    assert rec["CfgTRES"] == "cpu=2,mem=4000M,billing=2"


@pytest.mark.parametrize("name, state, code, signal, nodes", [
    ("completed", "COMPLETED", 0, None, ["sk-one"]),
    ("failed-exit3", "FAILED", 3, None, ["sk-one"]),
    ("running", "RUNNING", 0, None, ["sk-one"]),
    ("pending", "PENDING", 0, None, []),
    ("cancelled", "CANCELLED", 0, 15, ["sk-one"]),
])
def test_scontrol_jobs(name, state, code, signal, nodes):
    (j,) = p.parse_scontrol_jobs(read(f"scontrol-o-show-job-{name}.txt"))
    assert (j.state, j.exit_code, j.signal, j.nodes) == (state, code, signal, nodes)
    assert j.stdout.endswith(f"/w/slurm-{j.job_id}.out") and j.stdout == j.stderr
    assert j.source == "scontrol" and j.partition == "debug" and j.user == "root"


def test_scontrol_partition():
    (part,) = p.parse_scontrol_partitions(read("scontrol-o-show-partition.txt"))
    assert (part.name, part.state, part.nodes, part.default, part.max_time, part.total_nodes, part.total_cpus) == (
        "debug", "UP", "sk-one", True, "UNLIMITED", 1, 2)


def test_scontrol_ping_up_and_down():
    assert p.parse_scontrol_ping(read("scontrol-ping.txt")) == [p.Controller("vm", "primary", True)]
    assert p.parse_scontrol_ping(read("scontrol-ping-down.txt")) == [p.Controller("vm", "primary", False)]


# Pure logic on the value shapes of other versions (newer JSON lists, sacct words, sinfo suffixes).
@pytest.mark.parametrize("raw, want", [
    ("RUNNING", "RUNNING"), (["RUNNING"], "RUNNING"), (["PENDING", "REQUEUED"], "PENDING"),
    (["COMPLETING"], "COMPLETING"), ("CANCELLED by 0", "CANCELLED"), ("CD", "COMPLETED"), ("NF", "NODE_FAIL"),
    ("OUT_OF_MEMORY", "OUT_OF_MEMORY"), (None, "UNKNOWN"), ([], "UNKNOWN"),
])
def test_normalise_job_state(raw, want):
    assert p.normalise_job_state(raw) == want


@pytest.mark.parametrize("raw, flags, want", [
    ("IDLE+DRAIN", (), ("IDLE", ("DRAIN",))), ("down*", (), ("DOWN", ("NOT_RESPONDING",))),
    (["IDLE", "DRAIN"], (), ("IDLE", ("DRAIN",))), ("drain", (), ("IDLE", ("DRAIN",))),
    ("drng", (), ("ALLOCATED", ("DRAIN",))), ("mix", (), ("MIXED", ())), ("idle~", (), ("IDLE", ("POWERED_DOWN",))),
    ("idle", ["DRAIN"], ("IDLE", ("DRAIN",))), ("IDLE+NOT_RESPONDING", (), ("IDLE", ("NOT_RESPONDING",))),
])
def test_parse_node_state(raw, flags, want):
    assert p.parse_node_state(raw, flags) == want


def test_sbatch_parsable():
    assert p.parse_sbatch_parsable("42\n") == "42"
    assert p.parse_sbatch_parsable("42;cluster\n") == "42"
    with pytest.raises(p.SlurmOutputError):
        p.parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


def test_failed_nodes_from_srun_ignores_tasks_terminated_by_the_step_kill():
    from pathlib import Path

    from slurmkit.slurm.parsers import failed_nodes_from_srun

    log = (Path(__file__).parent.parent / "fixtures" / "slurm-22.05" / "srun-one-task-fails.txt").read_text()
    assert failed_nodes_from_srun(log) == ["jt-node-1"]
    # Without srun's terminate line, a Terminated task is a failure in its own right.
    alone = "srun: error: n2: task 1: Terminated\n"
    assert failed_nodes_from_srun(alone) == ["n2"]


def test_a_node_that_crashed_at_launch_is_the_culprit_not_the_node_whose_task_was_killed():
    from pathlib import Path

    from slurmkit.slurm.parsers import failed_nodes_from_srun

    log = (Path(__file__).parent.parent / "fixtures" / "slurm-22.05" / "srun-node-crash-during-launch.txt").read_text()
    assert failed_nodes_from_srun(log) == ["nf-node-2"]


def test_scontrol_show_config_first_block_with_nulls_and_units():
    conf = p.parse_scontrol_config(read("scontrol-show-config.txt"))
    assert (conf["ClusterName"], conf["AuthType"], conf["SlurmctldHost[0]"]) == ("jobslive", "auth/munge", "vm")
    assert (conf["BatchStartTimeout"], conf["TreeWidth"], conf["BurstBufferType"]) == ("10 sec", "50", "")
    assert "AllowedRAMSpace" not in conf and "Configuration data as of 2026-12-02T15:44:51" not in conf
    with pytest.raises(p.SlurmOutputError, match="printed no setting"):
        p.parse_scontrol_config(read("scontrol-update-resume-idle.stderr"))
