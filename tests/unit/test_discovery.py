"""Discovery's collection protocol (the one script per host, its output split back per command, the cache record)
and `slurmkit discover`'s report, on real captured outputs (tests/fixtures/hardware, see SOURCES.md).

What the cached facts mean (hardware, the declared-vs-found check, NCCL env) is tested in test_hardware.py.
"""

from __future__ import annotations

import re

import pytest

from slurmkit.cluster import parse_cluster
from slurmkit.discovery import CommandOutput, build_script, split_outputs
from slurmkit.errors import CommandError

from tests.conftest import hardware_fixture as fixture
from tests.unit.test_hardware import HEAD, NODE1, NODE2, cap1, cluster, record, two_groups, violet


def test_script_frames_split_back_per_command():
    script = build_script({"a": "echo hi", "b": "printf x"}, "tok1")
    assert script.count("@@slurmkit-facts tok1 out") == 2
    # what sh prints for that script (the format is ours): b's output has no final newline
    text = ("@@slurmkit-facts tok1 out a\nhi\n\n@@slurmkit-facts tok1 err a 0\n\n@@slurmkit-facts tok1 end a\n"
            "@@slurmkit-facts tok1 out b\nx\n@@slurmkit-facts tok1 err b 3\noops\n\n@@slurmkit-facts tok1 end b\n")
    out = split_outputs(text, "tok1", ["a", "b"])
    assert out["a"] == CommandOutput("hi\n", "", 0) and out["b"] == CommandOutput("x", "oops\n", 3)
    with pytest.raises(CommandError, match=re.escape("facts script: b")):
        split_outputs(text[: text.index("@@slurmkit-facts tok1 end b")], "tok1", ["a", "b"])


def test_report_of_two_violet_nodes_nccl_env_and_findings():
    from slurmkit.cli.discover import build_report
    from slurmkit.hardware import nccl_exports
    from slurmkit.remote import UnreachableError

    c = cluster("violet-h100-[023-024]\n    gpus: {type: h100, count: 8}")
    other = violet()
    other["facts"]["hostname"] = "violet-h100-024"
    report = build_report(c, {"violet-h100-023": violet(), "violet-h100-024": other},
                          {"head-1": UnreachableError("head-1", "connection refused")})
    assert report["unreachable"] == ["head-1"] and report["failed"] == ["head-1"]
    (group,) = [g for g in report["groups"] if g["group"] == "nodes[0]"]
    (entry,) = group["nccl_env"]
    assert entry["hosts"] == "violet-h100-[023-024]"
    # topo-05 legend: GPU0-3 PIX NIC0-3 = mlx5_0-3, GPU4-6 PIX NIC6-8 = mlx5_6-8, GPU7 only PXB to NIC8
    assert nccl_exports(entry["env"]) == ["export NCCL_IB_HCA='=mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_6,mlx5_7,mlx5_8'"]
    shared = [f for f in report["findings"] if f["code"] == "rail-shared"]
    assert sorted(f["node"] for f in shared) == ["violet-h100-023", "violet-h100-024"]
    assert [f["code"] for f in report["findings"] if f["node"] == "head-1"] == ["unreachable"]


def test_discover_report_sets_socket_ifname_per_group():
    from slurmkit.cli.discover import build_report
    from slurmkit.hardware import nccl_exports

    c = two_groups()
    recs = {"cpu-1": cap1("cpu-1", NODE1), "cpu-2": cap1("cpu-2", NODE2), "gpu-1": cap1("gpu-1", HEAD)}
    report = build_report(c, recs, {})
    groups = {g["group"]: g for g in report["groups"]}
    assert groups["nodes[0]"]["mgmt_ifname"] == "eth0" and groups["nodes[1]"]["mgmt_ifname"] == "eth1"
    (entry,) = groups["nodes[0]"]["nccl_env"]
    assert entry["hosts"] == "cpu-[1-2]" and nccl_exports(entry["env"]) == ["export NCCL_SOCKET_IFNAME='=eth0'"]
    assert report["hosts"]["cpu-2"]["mgmt_ifname"] == "eth0"
    assert [f["code"] for f in report["findings"]] == []


def test_discover_report_group_disagreeing_on_the_interface():
    from slurmkit.cli.discover import build_report

    c = parse_cluster("""
cluster: t
ssh: {user: root}
heads: {names: head-1, addresses: 10.167.186.11}
nodes:
  - {names: 'n-[1-2]', addresses: '10.167.187.[11,1]'}
""")
    report = build_report(c, {"n-1": cap1("n-1", NODE1), "n-2": cap1("n-2", HEAD)}, {})
    (group,) = [g for g in report["groups"] if g["group"] == "nodes[0]"]
    assert group["mgmt_ifname"] is None and group["nccl_env"] == [{"hosts": "n-[1-2]", "env": {}}]
    (f,) = [f for f in report["findings"] if f["code"] == "mgmt-ifname-differs"]
    assert f["message"] == "nodes[0]: management interface names differ (eth0 on n-1; eth1 on n-2): NCCL_SOCKET_IFNAME not set"


def test_truncated_output_is_a_parse_error_then_that_hosts_error_in_the_report():
    from slurmkit.cli.discover import build_report
    from slurmkit.facts import FactsParseError

    topo = fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt")
    with pytest.raises(FactsParseError) as info:
        record("gpu-2", nvidia_smi_topo="\n".join(topo.split("\n")[:9]))  # cut after the GPU7 row (line 9)
    err = info.value.on_host("gpu-2")
    assert str(err).startswith("gpu-2: command `nvidia-smi topo -m`, line 9: matrix ends after this line")
    c = cluster("gpu-[1-2]")
    report = build_report(c, {"gpu-1": violet() | {"host": "gpu-1"}}, {"gpu-2": err})
    assert report["hosts"]["gpu-1"]["ok"] and not report["hosts"]["gpu-2"]["ok"]
    assert report["failed"] == ["gpu-2"]
    (f,) = [f for f in report["findings"] if f["node"] == "gpu-2"]
    assert f["code"] == "facts-failed" and f["message"] == str(err)


def test_discover_report_gives_each_hosts_slurm_and_the_target(tmp_path):
    """Real version outputs (tests/fixtures/slurm-version): a 26.05 head over 24.11 nodes is a supported pair,
    rendered for 24.11; a 22.05 node among 24.11 is an error finding (no target), not a failed discover."""
    from slurmkit.cli.discover import build_report, print_report
    from tests.unit.test_hardware_slurm_version import TEXT, record

    c = parse_cluster(TEXT)
    recs = {"h1": record("h1", "26.05"), "n1": record("n1", "24.11"), "n2": record("n2", "24.11", installed=False)}
    report = build_report(c, recs, {})
    assert report["hosts"]["h1"]["slurm"] == [{"version": "26.05.5", "source": "installed"}]
    assert report["hosts"]["n2"]["slurm"] == [{"version": "24.11.5", "source": "candidate"}]
    assert report["slurm"]["release"] == "24.11" and "oldest, 24.11" in report["slurm"]["note"]
    recs["n1"] = record("n1", "22.05")
    report = build_report(c, recs, {})
    assert report["slurm"]["release"] is None
    (finding,) = [f for f in report["findings"] if f["code"] == "slurm-version"]
    assert finding["severity"] == "error" and finding["message"].startswith("mixed Slurm versions: n1 runs 22.05.8")
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        print_report(report, tmp_path / "cluster.yaml")
    text = " ".join(out.getvalue().split())  # rich wraps at the terminal's width
    assert "Slurm: n1: 22.05.8; n2: 24.11.5 (apt candidate); h1: 26.05.5; no target (see findings)" in text
