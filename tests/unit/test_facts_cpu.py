from tests.conftest import hardware_fixture as fixture


from slurmkit.facts import (
    parse_lscpu,
    parse_lscpu_json,
    parse_lscpu_parsable,
    parse_numactl_hardware,
    parse_slurmd_c,
    parse_sysfs_pci_numa,
)


def test_lscpu01_xeon8480():
    c = parse_lscpu(fixture("lscpu-01-xeon8480plus-2s-h100x8-host.txt"))
    assert (c.cpus, c.sockets, c.cores_per_socket, c.threads_per_core) == (224, 2, 56, 2)
    assert c.online == list(range(224))
    assert c.model_name == "Intel(R) Xeon(R) Platinum 8480+"
    assert c.numa_cpus[0] == list(range(0, 56)) + list(range(112, 168))
    assert c.numa_cpus[1] == list(range(56, 112)) + list(range(168, 224))


def test_lscpu02_epyc_snippet_nps4():
    c = parse_lscpu(fixture("lscpu-02-epyc-2s-nps4-mi210x8-snippet.txt"))
    assert (c.sockets, c.cores_per_socket, c.threads_per_core, c.cpus) == (2, 64, 2, None)
    assert len(c.numa_cpus) == 8
    assert c.numa_cpus[7] == list(range(112, 128)) + list(range(240, 256))


def test_lscpu_json_devvm():
    c = parse_lscpu_json(fixture("lscpu-J-01-devvm-epyc-2cpu-kvm.txt"))
    assert (c.cpus, c.sockets, c.cores_per_socket, c.threads_per_core) == (2, 1, 2, 1)
    assert c.online == [0, 1] and c.numa_cpus == {0: [0, 1]} and c.model_name == "AMD EPYC"


def test_lscpu_parsable_devvm():
    rows = parse_lscpu_parsable(fixture("lscpu-p-01-devvm-epyc-2cpu-kvm.txt"))
    assert [(r.cpu, r.core, r.socket, r.node) for r in rows] == [(0, 0, 0, 0), (1, 1, 0, 0)]


def test_numactl01_two_nodes():
    n = parse_numactl_hardware(fixture("numactl-H-01-h100-2s-xeon8480-violet-h100-023.txt"))
    assert [x.node for x in n.nodes] == [0, 1]
    assert n.nodes[0].cpus == list(range(0, 56)) + list(range(112, 168))
    assert n.nodes[1].size_mb == 1032106 and n.nodes[1].free_mb == 587734
    assert n.distances == {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}}


def test_numactl02_eight_nodes():
    n = parse_numactl_hardware(fixture("numactl-H-02-epyc-2s-nps4-mi210x8.txt"))
    assert len(n.nodes) == 8 and n.nodes[4].cpus[:2] == [64, 65] and n.nodes[4].free_mb == 52763
    assert n.distances[0][4] == 32 and n.distances[5][6] == 12


def test_sysfs_pci_numa_minus_one_is_unknown():
    m = parse_sysfs_pci_numa(fixture("sysfs-pci-numa-01-devvm-kvm.txt"))
    assert len(m) == 6 and set(m.values()) == {None}
    assert "0000:00:00.0" in m


def test_slurmd01_indented_with_note():
    s = parse_slurmd_c(fixture("slurmd-C-01-xeon-2s-snc-numa-as-socket-indented.txt"))
    assert s.notes == ["Considering each NUMA node as a socket"]
    assert (s.node_name, s.cpus, s.sockets_per_board, s.cores_per_socket, s.threads_per_core) == (None, 40, 4, 10, 1)
    assert s.real_memory_mb == 385380


def test_slurmd02_single_line_with_uptime():
    s = parse_slurmd_c(fixture("slurmd-C-02-p5.48xlarge-8xh100-2s-epyc.txt"))
    assert s.node_name == "p5-st-p5-1" and s.cpus == 192 and s.cores_per_socket == 48
    assert s.real_memory_mb == 2047961 and s.values["UpTime"] == "2-00:08:02"


def test_missing_tools_are_empty():
    assert parse_lscpu("") is None and parse_numactl_hardware("") is None and parse_slurmd_c("") is None


# ---- truncated slurmd -C: cut here, from the real fixtures

import pytest  # noqa: E402

from slurmkit.facts import FactsParseError  # noqa: E402


def test_slurmd_c_cut_before_real_memory():
    text = fixture("slurmd-C-02-p5.48xlarge-8xh100-2s-epyc.txt")
    with pytest.raises(FactsParseError) as info:
        parse_slurmd_c(text[: text.index(" RealMemory=")])
    assert (info.value.command, info.value.line_no) == ("slurmd -C", 1)
    assert info.value.message == "no RealMemory (output cut short?)"


def test_slurmd_c_cut_mid_value():
    text = fixture("slurmd-C-01-xeon-2s-snc-numa-as-socket-indented.txt")
    with pytest.raises(FactsParseError) as info:
        parse_slurmd_c(text[: text.index("RealMemory=") + len("RealMemory=")])
    assert info.value.line_no == 2 and info.value.message == "'RealMemory=' is no Key=value"
