from tests.conftest import HARDWARE as FIXTURES, hardware_fixture as fixture


from slurmkit.facts import parse_ibdev2netdev, parse_ibstat, parse_ibstatus, parse_sysfs_ib


def _ports(report):
    return {d.name: d.ports[0] for d in report.devices}


def test_ibstat01_all_ethernet_lexical_order():
    r = parse_ibstat(fixture("ibstat-01-h100-12hca-roce-8x400-4x100-all-active.txt"))
    names = [d.name for d in r.devices]
    assert names[:5] == ["mlx5_0", "mlx5_1", "mlx5_10", "mlx5_11", "mlx5_2"] and len(names) == 12
    p = _ports(r)
    assert {x.link_layer for x in p.values()} == {"Ethernet"}
    assert {n for n, x in p.items() if x.rate_gbps == 100} == {"mlx5_1", "mlx5_2", "mlx5_7", "mlx5_8"}
    assert p["mlx5_9"].state == "ACTIVE" and p["mlx5_9"].phys_state == "LinkUp"
    assert r.devices[1].ca_type == "MT4125" and r.errors == []


def test_ibstat02_three_ports_down_disabled():
    r = parse_ibstat(fixture("ibstat-02-h100-12hca-3ports-down-disabled.txt"))
    p = _ports(r)
    down = {n for n, x in p.items() if x.state == "DOWN"}
    assert down == {"mlx5_2", "mlx5_7", "mlx5_8"}
    assert p["mlx5_7"].phys_state == "Disabled" and p["mlx5_7"].rate_gbps == 40
    assert p["mlx5_0"].link_layer == "InfiniBand" and p["mlx5_0"].sm_lid == "334" and p["mlx5_0"].base_lid == "75"
    assert p["mlx5_1"].link_layer == "Ethernet"


def test_ibstat03_a100_hdr200_one_ethernet():
    p = _ports(parse_ibstat(fixture("ibstat-03-a100-9hca-cx6-hdr200.txt")))
    assert len(p) == 9
    assert {x.rate_gbps for x in p.values()} == {200}
    assert [n for n, x in p.items() if x.link_layer == "Ethernet"] == ["mlx5_0"]


def test_ibstat04_space_indented_bond_on_bf3():
    r = parse_ibstat(fixture("ibstat-04-h100-8cx7-plus-bf3-9hca.txt"))
    assert [d.name for d in r.devices] == [f"mlx5_{i}" for i in (0, 1, 4, 5, 6, 7, 8, 9)] + ["mlx5_bond_0"]
    bond = r.devices[-1]
    assert bond.ca_type == "MT41692" and bond.ports[0].link_layer == "Ethernet" and bond.ports[0].rate_gbps == 200
    assert r.devices[0].firmware == "28.41.1000"


def test_ibstat05_partial_exit255_keeps_devices_and_error():
    r = parse_ibstat(fixture("ibstat-05-a100-8hca-cx6-exit255-partial.txt"))
    assert [d.name for d in r.devices] == [f"mlx5_{i}" for i in range(8)]
    assert r.failed_devices == ["mlx5_8"]
    assert len(r.errors) == 1 and r.errors[0].startswith("ibpanic:")


def test_ibstat06_b300_cx8_disabled_cx7_ib100():
    p = _ports(parse_ibstat(fixture("ibstat-06-b300-xe9780-11hca-cx8-disabled-cx7-ib100.txt")))
    assert len(p) == 11
    assert {n for n, x in p.items() if x.state == "ACTIVE"} == {"mlx5_2", "mlx5_3", "mlx5_4", "mlx5_5"}
    assert p["mlx5_0"].rate_gbps == 10 and p["mlx5_0"].base_lid == "65535"
    assert p["mlx5_3"].rate_gbps == 100


def test_ibstatus01_pci_names_and_roce():
    p = _ports(parse_ibstatus(fixture("ibstatus-01-h20-8hca-ndr200-ibp-names-node139.txt")))
    assert len(p) == 9
    assert p["ibp171s0"].rate_gbps == 200 and p["ibp171s0"].state == "ACTIVE" and p["ibp171s0"].base_lid == "0x70"
    assert p["rocep22s0f0"].link_layer == "Ethernet" and p["rocep22s0f0"].rate_gbps == 25


def test_ibstatus02_bond():
    p = _ports(parse_ibstatus(fixture("ibstatus-02-h20-8hca-ndr200-mlx5-bond-node140.txt")))
    assert list(p) == [f"mlx5_{i}" for i in range(2, 10)] + ["mlx5_bond_0"]
    assert p["mlx5_bond_0"].link_layer == "Ethernet"


def test_ibstatus03_single_device():
    r = parse_ibstatus(fixture("ibstatus-03-h20-single-hca-excerpt-node139.txt"))
    assert [d.name for d in r.devices] == ["mlx5_7"] and r.devices[0].ports[0].phys_state == "LinkUp"


def test_ibstatus04_space_padded_qdr_ethernet():
    p = _ports(parse_ibstatus(fixture("ibstatus-04-a100-9hca-hdr-plus-qdr.txt")))
    assert p["mlx5_0"].rate_gbps == 200 and p["mlx5_0"].sm_lid == "0x1"
    assert p["mlx5_8"].rate_gbps == 40 and p["mlx5_8"].link_layer == "Ethernet"


def test_ibdev2netdev_layouts():
    a = parse_ibdev2netdev(fixture("ibdev2netdev-01-h100-12hca-roce-aihub0007.txt"))
    assert len(a) == 12
    assert [(n.hca, n.netdev) for n in a if not n.up] == [("mlx5_10", "enp210s0f1np1"), ("mlx5_4", "enp83s0f1np1")]
    assert [n.hca for n in a if n.netdev == "bond0"] == ["mlx5_3", "mlx5_9"]
    b = parse_ibdev2netdev(fixture("ibdev2netdev-02-h100-12hca-roce-aihub0008.txt"))
    assert [(n.hca, n.netdev, n.up) for n in b] == [(n.hca, n.netdev, n.up) for n in a]
    c = parse_ibdev2netdev(fixture("ibdev2netdev-03-h100-12hca-roce-ens-aihub0009.txt"))
    assert [n.hca for n in c if n.netdev == "bond0"] == ["mlx5_1", "mlx5_7"]
    d = parse_ibdev2netdev(fixture("ibdev2netdev-04-h100-12hca-roce-ens-aihub0012.txt"))
    assert [n.hca for n in d if n.netdev == "bond0"] == ["mlx5_10", "mlx5_8"] and d[0].netdev == "ens3np0"
    e = parse_ibdev2netdev(fixture("ibdev2netdev-05-h100-12hca-roce-aihub0001.txt"))
    assert [(n.hca, n.netdev) for n in e] == [(n.hca, n.netdev) for n in c]


def test_sysfs_ib_empty_is_no_rdma():
    assert parse_sysfs_ib(fixture("sysfs-ib-01-devvm-no-rdma.txt")).devices == []


# ---- truncated or garbled ibstat: cut or altered here, from the real fixture

import pytest  # noqa: E402

from slurmkit.facts import FactsParseError  # noqa: E402

IBSTAT04 = "ibstat-04-h100-8cx7-plus-bf3-9hca.txt"


def test_ibstat_cut_mid_port_names_the_port_line():
    # lines 1-14: CA 'mlx5_0' ... Port 1: (line 8) State, Physical state, Rate, Base lid, LMC, SM lid; no Link layer
    with pytest.raises(FactsParseError) as info:
        parse_ibstat("\n".join(fixture(IBSTAT04).split("\n")[:14]))
    e = info.value
    assert (e.command, e.line_no) == ("ibstat", 8) and "CA 'mlx5_0' port 1: no Link layer" in e.message


def test_ibstat_cut_before_ports_names_the_ca_line():
    lines = fixture(IBSTAT04).split("\n")
    # second block starts at line 18 (CA 'mlx5_1'); keep it up to its System image GUID (line 24)
    with pytest.raises(FactsParseError) as info:
        parse_ibstat("\n".join(lines[:24]))
    assert info.value.line_no == 18 and "CA 'mlx5_1': Number of ports 1, 0 printed" in info.value.message


def test_ibstat_garbled_line():
    lines = fixture(IBSTAT04).split("\n")
    lines[10] = lines[10].replace("Rate: 400", "Rat")  # line 11
    with pytest.raises(FactsParseError) as info:
        parse_ibstat("\n".join(lines))
    assert info.value.line_no == 11 and "'Rat' is no 'key: value' line" in info.value.message


def test_every_ibstat_fixture_still_parses():
    for path in sorted(FIXTURES.glob("ibstat-*.txt")):
        assert parse_ibstat(fixture(path.name)).devices, path.name
