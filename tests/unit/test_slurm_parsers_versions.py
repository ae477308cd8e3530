"""Parsers of Slurm command output (and slurmkit.slurm.state's rules) on REAL outputs of Slurm 24.11.5 (data_parser
v0.0.42) and 26.05.5 (v0.0.45), captured from local image clusters (tests/fixtures/slurm-24.11, slurm-26.05: see
their SOURCES.md). Each cluster: head `<name>-head-1`, computes `<name>-node-1` and `-2` (2 CPUs, 22899 MB),
partition `debug`, job 1 `sleeper` (`sleep 60`) RUNNING on node-1 when captured. Expected values read from the
captures by eye."""

from __future__ import annotations

import json

import pytest

from slurmkit.slurm import parsers as p
from slurmkit.slurm import state
from tests.conftest import FIXTURES

# version -> (fixture dir, cluster name, the private addresses of node-1 and node-2 in that capture)
CAPTURES = {
    "24.11": ("slurm-24.11", "sdc411ea", ("10.196.5.11", "10.196.5.12")),
    "26.05": ("slurm-26.05", "sd99a22e", ("10.223.209.11", "10.223.209.12")),
}
VERSIONS = pytest.mark.parametrize("version", list(CAPTURES))


def read(version: str, name: str) -> str:
    return (FIXTURES / CAPTURES[version][0] / name).read_text()


def names(version: str) -> tuple[str, str, str]:
    c = CAPTURES[version][1]
    return f"{c}-head-1", f"{c}-node-1", f"{c}-node-2"


@VERSIONS
def test_the_captures_are_the_versions_they_claim(version):
    assert read(version, "sinfo-version.txt") == f"slurm-wlm {version}.5\n"
    parser = {"24.11": "v0.0.42", "26.05": "v0.0.45"}[version]
    meta = json.loads(read(version, "squeue-json-running.json"))["meta"]
    assert (meta["plugin"]["data_parser"], meta["slurm"]["release"]) == (f"data_parser/{parser}", f"{version}.5")


@VERSIONS
def test_squeue_json_running_job(version):
    _, node1, _ = names(version)
    (job,) = p.parse_squeue_json(read(version, "squeue-json-running.json"))
    assert (job.job_id, job.name, job.state, job.raw_state) == ("1", "sleeper", "RUNNING", "RUNNING")
    assert (job.nodes, job.node_count, job.partition, job.user) == ([node1], 1, "debug", "root")
    # exit_code is {"status": ["SUCCESS"], "return_code": {"number": 0}, "signal": {"id": {"set": false}}}
    assert (job.exit_code, job.signal, job.source, job.work_dir) == (0, None, "squeue", "/root")
    assert not job.finished


def test_squeue_json_output_paths_are_paths_on_26_05_too():
    # 24.11 gives "/root/slurm-1.out" for both; 26.05 gives the pattern as submitted ("slurm-%j.out", relative to
    # the working directory) and an empty standard_error: both read as the file Slurm writes.
    for version in CAPTURES:
        (job,) = p.parse_squeue_json(read(version, "squeue-json-running.json"))
        assert (job.stdout, job.stderr) == ("/root/slurm-1.out", "/root/slurm-1.out"), version
    assert '"standard_output": "slurm-%j.out"' in read("26.05", "squeue-json-running.json")
    assert '"standard_error": ""' in read("26.05", "squeue-json-running.json")


@VERSIONS
def test_sinfo_json_one_record_per_node(version):
    # 24.11/26.05 have no top-level "nodes": "sinfo" holds one group per like nodes and partition.
    _, node1, node2 = names(version)
    nodes = {n.name: n for n in p.parse_sinfo_json(read(version, "sinfo-json-mixed.json"))}
    assert sorted(nodes) == [node1, node2]
    assert (nodes[node1].state, nodes[node1].flags) == ("MIXED", ())
    assert (nodes[node2].state, nodes[node2].flags) == ("IDLE", ())
    for n in nodes.values():
        assert (n.cpus, n.memory_mb, n.partitions, n.reason, n.gres) == (2, 22899, ("debug",), "", "")
        assert n.address == ""  # nodes.addresses is [] in these captures
        assert n.is_usable and n.is_ready and not n.is_down and not n.is_drained and not n.is_coming_up


@VERSIONS
def test_scontrol_nodes(version):
    _, node1, node2 = names(version)
    a1, a2 = CAPTURES[version][2]
    n1, n2 = p.parse_scontrol_nodes(read(version, "scontrol-o-show-node-alloc.txt"))
    assert (n1.name, n1.state, n1.flags, n1.cpus, n1.memory_mb, n1.address, n1.partitions, n1.gres, n1.reason) == (
        node1, "MIXED", (), 2, 22899, a1, ("debug",), "", "")
    assert (n2.name, n2.state, n2.flags, n2.address) == (node2, "IDLE", (), a2)
    rec = p.parse_scontrol_records(read(version, "scontrol-o-show-node-alloc.txt"))[0]
    assert (rec["Version"], rec["NodeHostName"], rec["AllocTRES"]) == (f"{version}.5", node1, "cpu=1,mem=22899M")
    assert rec["OS"] == "Linux 6.18.44-fc-v1045 #1 SMP PREEMPT_DYNAMIC @0"


def test_scontrol_node_fields_new_in_26_05():
    rec = p.parse_scontrol_records(read("26.05", "scontrol-o-show-node-alloc.txt"))[0]
    assert rec["SuspendTime"] == "INFINITE"
    assert "SuspendTime" not in p.parse_scontrol_records(read("24.11", "scontrol-o-show-node-alloc.txt"))[0]


@VERSIONS
def test_scontrol_job_running(version):
    head, node1, _ = names(version)
    (job,) = p.parse_scontrol_jobs(read(version, "scontrol-o-show-job-running.txt"))
    assert (job.job_id, job.name, job.state, job.reason, job.nodes, job.node_count) == (
        "1", "sleeper", "RUNNING", "", [node1], 1)
    assert (job.exit_code, job.signal, job.partition, job.user, job.work_dir) == (0, None, "debug", "root", "/root")
    # 26.05 prints StdErr= empty (merged into StdOut); 24.11 prints both
    assert (job.stdout, job.stderr, job.source) == ("/root/slurm-1.out", "/root/slurm-1.out", "scontrol")
    (rec,) = p.parse_scontrol_records(read(version, "scontrol-o-show-job-running.txt"))
    assert rec["AllocNode:Sid"].startswith(f"{head}:") and rec["BatchHost"] == node1


def test_scontrol_job_submit_line_with_spaces_26_05():
    (rec,) = p.parse_scontrol_records(read("26.05", "scontrol-o-show-job-running.txt"))
    assert rec["SubmitLine"] == "sbatch --parsable --job-name sleeper --wrap sleep 60"
    assert (rec["StdErr"], rec["Exclusive"], rec["OverSubscribe"]) == ("", "NO", "NO")


@VERSIONS
def test_scontrol_ping_and_cluster_state(version):
    head, _, _ = names(version)
    controllers = p.parse_scontrol_ping(read(version, "scontrol-ping.txt"))
    assert controllers == [p.Controller(head, "primary", True)]
    nodes = p.parse_scontrol_nodes(read(version, "scontrol-o-show-node-alloc.txt"))
    assert state.cluster_state(nodes, controllers) == ("RUNNING", [])
    assert state.cluster_state(p.parse_sinfo_json(read(version, "sinfo-json-mixed.json")), controllers) == ("RUNNING", [])
    assert [state.node_problem(n) for n in nodes] == [None, None]


@VERSIONS
def test_sinfo_long_lists_both_nodes_with_their_sinfo_words(version):
    _, node1, node2 = names(version)
    lines = read(version, "sinfo-N-l.txt").splitlines()
    assert lines[1].split()[:4] == ["NODELIST", "NODES", "PARTITION", "STATE"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert sorted(rows) == [node1, node2]
    assert p.parse_node_state(rows[node1][3]) == ("MIXED", ()) and p.parse_node_state(rows[node2][3]) == ("IDLE", ())


@VERSIONS
def test_sacct_without_slurmdbd_fails_and_prints_nothing(version):
    assert read(version, "sacct-parsable2.txt") == ""
    assert read(version, "sacct-parsable2.stderr") == "Slurm accounting storage is disabled\n"
    assert read(version, "sacct-parsable2.rc") == "1\n"
    assert p.parse_sacct_parsable2(read(version, "sacct-parsable2.txt")) == []
