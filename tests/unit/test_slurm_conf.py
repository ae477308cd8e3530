"""slurmkit.slurm.conf: slurm.conf / gres.conf / topology.conf as production sites write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurmkit.errors import SlurmkitError
from slurmkit.slurm import conf as sc
from tests.conftest import FIXTURES

CONF = FIXTURES / "slurm-conf"


def test_blanks_around_equals_tabs_continuations_and_end_of_line_comments():
    c = sc.parse_slurm_conf(
        "ClusterName = lab   # the name\n"
        "SlurmctldHost=h1\n"
        "NodeName=n[1-2]\tSockets = 2 \\\n"
        "   CoresPerSocket=4 ThreadsPerCore=2   RealMemory=1000  # two nodes\n"
        'PartitionName=p Nodes=n[1-2] Default=YES AllowGroups="a b"\n'
        "SlurmctldParameters=x\\#y\n"
    )
    assert c.setting("clustername") == "lab"
    n = c.nodes["n2"]
    assert (n.sockets, n.cores_per_socket, n.threads_per_core, n.cpus, n.memory_mb) == (2, 4, 2, 16, 1000)
    assert n.where == sc.Where("slurm.conf", 3)
    assert c.partitions[0].options["AllowGroups"] == "a b"
    assert c.setting("SlurmctldParameters") == "x#y"


def test_keys_are_case_insensitive_and_default_lines_apply_to_later_lines():
    c = sc.parse_slurm_conf(
        "SlurmctldHost=h\n"
        "Nodename=DEFAULT CPUs=2 RealMemory=2000 TmpDisk=64000\n"
        "NODENAME=DEFAULT State=UNKNOWN\n"
        "nodename=a[1-2] weight=16\n"
        "NodeName=DEFAULT RealMemory=9\n"
        "NodeName=b1\n"
        "PartitionName=DEFAULT MaxTime=30 State=UP\n"
        "partitionname=q nodes=a1,b1 default=yes\n"
    )
    assert c.nodes["a1"].memory_mb == 2000 and c.nodes["a1"].weight == 16 and c.nodes["a1"].state == "UNKNOWN"
    assert c.nodes["a1"].other == {"TmpDisk": "64000"}
    assert c.nodes["b1"].memory_mb == 9
    p = c.partitions[0]
    assert (p.name, p.nodes, p.default, p.max_time, p.options) == ("q", "a1,b1", True, "30", {"State": "UP"})


def test_old_controller_keys_and_slurmctldhost_with_address():
    old = sc.parse_slurm_conf("ControlMachine=lx0000   ControlAddr=elx0000 \nBackupController=lx0001 BackupAddr=elx0001\nNodeName=n1\n")
    assert old.controllers == [sc.Controller("lx0000", "elx0000"), sc.Controller("lx0001", "elx0001")]
    new = sc.parse_slurm_conf("SlurmctldHost=dev0(12.34.56.78) # Primary\nSlurmctldHost=dev1\nNodeName=n1\n")
    assert new.controllers == [sc.Controller("dev0", "12.34.56.78"), sc.Controller("dev1", None)]
    both = sc.parse_slurm_conf("SlurmctldHost=a\nControlMachine=b\nNodeName=n1\n")
    assert [x.name for x in both.controllers] == ["a"] and any("SlurmctldHost counts" in f for f in both.findings)


def test_procs_sockets_per_board_and_cpus_without_a_layout():
    c = sc.parse_slurm_conf(
        "SlurmctldHost=h\nNodeName=p Procs=8\nNodeName=b Boards=2 SocketsPerBoard=2 CoresPerSocket=8 ThreadsPerCore=1\n"
        "NodeName=c CPUs=16 RealMemory=64000\n"
    )
    assert (c.nodes["p"].cpus, c.nodes["p"].sockets, c.nodes["p"].cores_per_socket) == (8, 8, 1)
    assert (c.nodes["b"].sockets, c.nodes["b"].cpus) == (4, 32)
    assert (c.nodes["c"].sockets, c.nodes["c"].cores_per_socket, c.nodes["c"].threads_per_core) == (16, 1, 1)


def test_a_node_on_two_lines_with_different_hardware_is_a_finding_the_first_counts():
    c = sc.parse_slurm_conf("SlurmctldHost=h\nNodeName=n[1-2] CPUs=4\nNodeName=n2 CPUs=8\nNodeName=n1 CPUs=4\n")
    assert c.nodes["n2"].cpus == 4
    assert any("slurm.conf:3: node n2 defined again with different hardware (first at slurm.conf:2)" in f for f in c.findings)
    assert any("slurm.conf:4: node n1 defined again (first at slurm.conf:2)" in f for f in c.findings)


def test_several_gpu_types_on_one_node_and_old_gres_forms():
    c = sc.parse_slurm_conf("SlurmctldHost=h\nNodeName=n Gres=gpu:a:1,gpu:b:1,gpu:2(S:0-1),mps:no_consume:100,shard:4K\n")
    assert c.nodes["n"].gres == (
        sc.GresSpec("gpu", "a", 1), sc.GresSpec("gpu", "b", 1), sc.GresSpec("gpu", None, 2),
        sc.GresSpec("mps", None, 100), sc.GresSpec("shard", None, 4096),
    )


def test_partitions_overlap_or_name_all_and_undefined_nodes_are_findings():
    c = sc.parse_slurm_conf(
        "SlurmctldHost=h\nNodeName=n[1-3]\nPartitionName=a Nodes=ALL Default=YES\nPartitionName=b Nodes=n[2-4]\n"
        "PartitionName=c Nodes=n[1-2] Default=YES\n"
    )
    assert c.partition_nodes(c.partitions[0]) == ["n1", "n2", "n3"]
    assert c.partition_nodes(c.partitions[1]) == ["n2", "n3"]
    assert "slurm.conf:4: partition b names undefined node(s) n4" in c.findings
    assert any("more than one partition has Default=YES" in f for f in c.findings)


def test_include_is_read_relative_to_the_including_file(tmp_path: Path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "nodes.conf").write_text("NodeName=n[1-2] CPUs=4\ninclude more.conf\n")
    (tmp_path / "conf.d" / "more.conf").write_text("PartitionName=p Nodes=ALL\n")
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=h\nInclude conf.d/nodes.conf\n")
    c = sc.read_slurm_conf(tmp_path / "slurm.conf")
    assert list(c.nodes) == ["n1", "n2"] and c.partitions[0].name == "p"
    assert c.partitions[0].where == sc.Where(str(tmp_path / "conf.d" / "more.conf"), 1)
    assert c.files[1:] == [str(tmp_path / "conf.d" / "nodes.conf"), str(tmp_path / "conf.d" / "more.conf")]


def test_an_include_loop_is_an_error_naming_the_line(tmp_path: Path):
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=h\ninclude slurm.conf\n")
    with pytest.raises(sc.SlurmConfError, match=r"slurm.conf:2: include 'slurm.conf': more than 8 levels deep"):
        sc.read_slurm_conf(tmp_path / "slurm.conf")
    (tmp_path / "b.conf").write_text("include nowhere.conf\n")
    with pytest.raises(sc.SlurmConfError, match=r"b.conf:1: include 'nowhere.conf': No such file"):
        sc.read_slurm_conf(tmp_path / "b.conf")


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("SlurmctldHost=h\nNodeName=n[1-\n", "slurm.conf:2", "bad hostlist"),
        ("SlurmctldHost=h\n\nNodeName=n CPUs=four\n", "slurm.conf:3", "CPUs='four': not a number"),
        ("SlurmctldHost=h\nwhat is this\n", "slurm.conf:2", "expected key=value"),
        ("SlurmctldHost=h(\n", "slurm.conf:1", "expected host or host(address)"),
        ("NodeName=n[1-2] NodeAddr=a[1-3]\n", "slurm.conf:1", "3 NodeAddr value(s) for 2 node name(s)"),
        ("NodeName=n Gres=gpu:a:b:1\n", "slurm.conf:1", "expected name[:type][:count]"),
    ],
)
def test_errors_are_slurmkit_errors_naming_file_and_line(text, where, what):
    with pytest.raises(SlurmkitError) as exc:
        sc.parse_slurm_conf(text)
    assert where in str(exc.value) and what in str(exc.value)


def test_gres_conf_ranges_affinity_and_autodetect_from_a_published_example():
    lines = sc.read_gres_conf(CONF / "gres-examples" / "gres.conf")
    tux3 = [g for g in sc.gres_of(lines, "tux3") if g.name == "gpu" and g.nodes]
    assert tux3[0].files == ("/dev/nvidia0", "/dev/nvidia2", "/dev/nvidia3")
    first = [g for g in lines if g.name == "gpu"][0]
    assert (first.type, first.files, first.cores, first.cores_key, first.autodetect) == ("gtx560", ("/dev/nvidia0",), "0,1", "COREs", "nvml")
    bw = [g for g in lines if g.name == "bandwidth"][0]
    assert (bw.count, bw.other) == (4 * 1024**3, {"Flags": "CountOnly"})
    assert [g.autodetect for g in lines if g.name is None and g.nodes] == ["nvml", "rsmi"]


def test_topology_switches_and_a_switch_naming_a_node_slurm_conf_lacks():
    c = sc.parse_slurm_conf("SlurmctldHost=h\nNodeName=n[1-4]\n")
    t = sc.parse_topology_conf("SwitchName=s1 Nodes=n[1-2]\nSwitchName=s2 Nodes=n[3-5] LinkSpeed=100\nSwitchName=top Switches=s[1-3]\n")
    assert t[1].nodes == ["n3", "n4", "n5"] and t[1].other == {"LinkSpeed": "100"} and t[2].switches == ["s1", "s2", "s3"]
    f = sc.topology_findings(t, c)
    assert f == ["topology.conf:2: switch s2 names node(s) slurm.conf does not define: n5", "topology.conf:3: switch top names undefined switch(es): s3"]
    with pytest.raises(sc.SlurmConfError, match="topology.conf:1: expected SwitchName="):
        sc.parse_topology_conf("Nodes=n1\n")


@pytest.mark.parametrize("d", sorted(p.name for p in CONF.iterdir() if (p / "slurm.conf").exists()))
def test_every_fixture_reads(d):
    c = sc.read_slurm_conf(CONF / d / "slurm.conf")
    assert c.controllers and c.nodes and c.partitions


def test_found_by_the_property_test_a_number_past_clustershells_range_is_our_error():
    with pytest.raises(sc.SlurmConfError, match=r"topology.conf:1: bad hostlist"):
        sc.parse_topology_conf("SwitchName=s0 Nodes=circe-n[001-016],n[019-020]99999999999999999999SwitchName=s1\n")
