from tests.conftest import hardware_fixture as fixture


import pytest

from slurmkit.errors import SlurmkitError
from slurmkit.facts import facts_from_outputs
from slurmkit.topology import check_rails, gres_lines, nccl_env, node_topology, switches_from_ibnetdiscover


def violet():
    return facts_from_outputs(
        "violet-h100-023",
        {
            "nvidia_smi_topo": fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt"),
            "numactl": fixture("numactl-H-01-h100-2s-xeon8480-violet-h100-023.txt"),
            "lscpu": fixture("lscpu-01-xeon8480plus-2s-h100x8-host.txt"),
        },
    )


def codes(t):
    return [f.code for f in t.findings]


def test_violet_8_gpus_8_rails_numa_local_cores():
    t = node_topology(violet())
    assert [r.rail for r in t.rails] == list(range(8))
    assert [r.hca for r in t.rails] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3", "mlx5_6", "mlx5_7", "mlx5_8", "mlx5_8"]
    assert [g.numa_node for g in t.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert t.gpus[0].cpus == list(range(0, 56)) + list(range(112, 168))
    assert t.gpus[0].cores == list(range(0, 56)) and t.gpus[7].cores == list(range(56, 112))
    # mlx5_9 is absent from the legend: GPU7 has only PXB to GPU6's mlx5_8
    assert t.rails[7].shared and t.rails[7].distance == "PXB"
    assert "rail-shared" in codes(t) and "hca-state-unknown" in codes(t)


def test_violet_gres_lines_match_numa():
    t = node_topology(violet())
    lines = gres_lines(t, "h100", "22.05")
    assert lines[0] == "Name=gpu Type=h100 File=/dev/nvidia0 Cores=0-55"
    assert lines[7] == "Name=gpu Type=h100 File=/dev/nvidia7 Cores=56-111"
    assert len(lines) == 8
    assert gres_lines(t, "h100", "24.05.1", node_name="n1")[4].startswith("NodeName=n1 Name=gpu")
    # 21.08's gres.conf(5) has the same File=/Cores= form (Ubuntu 22.04, the 1CC OS); older is refused
    assert gres_lines(t, "h100", "21.08") == lines
    with pytest.raises(SlurmkitError):
        gres_lines(t, "h100", "20.11")


def test_violet_nccl_env_exact_match_no_duplicates():
    env = nccl_env(node_topology(violet()))
    assert env == {"NCCL_IB_HCA": "=mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_6,mlx5_7,mlx5_8"}
    assert nccl_env(node_topology(violet()), "eth0")["NCCL_SOCKET_IFNAME"] == "=eth0"


def test_aihub0007_roce_rails_and_down_netdevs():
    facts = facts_from_outputs(
        "tpgds-aihub0007",
        {
            "nvidia_smi_topo": fixture("topo-01-h100-12nic-roce-1numa-aihub0007.txt"),
            "ibdev2netdev": fixture("ibdev2netdev-01-h100-12hca-roce-aihub0007.txt"),
        },
    )
    t = node_topology(facts)
    assert [r.hca for r in t.rails] == [f"mlx5_{i}" for i in (0, 1, 2, 5, 6, 7, 8, 11)]
    assert t.hca("mlx5_5").netdev == "enp92s0np0"
    assert t.gpus[0].cores is None and "cores-unknown" in codes(t)  # no lscpu from that host


def test_dgxa100_old_format_one_hca_per_gpu_in_order():
    t = node_topology(facts_from_outputs("dgx", {"nvidia_smi_topo": fixture("topo-02-dgxa100-12mlx5-oldfmt-no-nic-legend.txt")}))
    assert [r.hca for r in t.rails] == [f"mlx5_{i}" for i in (0, 1, 2, 3, 6, 7, 8, 9)]
    assert {r.distance for r in t.rails} == {"PXB"} and not any(r.shared for r in t.rails)
    assert t.gpus[4].numa_node == 7 and t.gpus[4].cpus[0] == 112


def test_dgx1_four_hcas_shared_by_gpu_pairs():
    t = node_topology(facts_from_outputs("dgx1", {"nvidia_smi_topo": fixture("topo-03-dgx1-v100-4mlx5-topo-mp.txt")}))
    assert [r.hca for r in t.rails] == ["mlx5_0", "mlx5_0", "mlx5_1", "mlx5_1", "mlx5_2", "mlx5_2", "mlx5_3", "mlx5_3"]
    assert [r.shared for r in t.rails] == [False, True] * 4


def test_partial_ibstat_exit255():
    t = node_topology(facts_from_outputs("a100", {"ibstat": fixture("ibstat-05-a100-8hca-cx6-exit255-partial.txt")}))
    assert "ib-tool-error" in codes(t)
    bad = [f for f in t.findings if f.code == "hca-excluded"]
    assert [f.hca for f in bad] == ["mlx5_8"]
    assert [h.name for h in t.hcas if h.usable] == [f"mlx5_{i}" for i in range(8)]


def test_disabled_ports_excluded_with_reasons():
    t = node_topology(facts_from_outputs("h100", {"ibstat": fixture("ibstat-02-h100-12hca-3ports-down-disabled.txt")}))
    excluded = {f.hca: f.found for f in t.findings if f.code == "hca-excluded"}
    assert set(excluded) == {"mlx5_1", "mlx5_2", "mlx5_7", "mlx5_8"}
    assert "port 1 is DOWN (Disabled)" in excluded["mlx5_7"]
    assert "Ethernet" in excluded["mlx5_1"] and "DOWN" not in excluded["mlx5_1"]
    t6 = node_topology(facts_from_outputs("b300", {"ibstat": fixture("ibstat-06-b300-xe9780-11hca-cx8-disabled-cx7-ib100.txt")}))
    assert sorted(h.name for h in t6.hcas if h.usable) == ["mlx5_2", "mlx5_3", "mlx5_4", "mlx5_5"]


def test_roce_excluded_unless_allowed():
    text = fixture("ibstat-01-h100-12hca-roce-8x400-4x100-all-active.txt")
    strict = node_topology(facts_from_outputs("n", {"ibstat": text}))
    assert not any(h.usable for h in strict.hcas) and len([f for f in strict.findings if f.code == "hca-excluded"]) == 12
    roce = node_topology(facts_from_outputs("n", {"ibstat": text}), allow_roce=True)
    assert all(h.usable for h in roce.hcas) and "hca-excluded" not in codes(roce)


def _with_ibstat(ibstat_name):
    # topo from violet, port states from a real ibstat whose HCA names cover the rails (mlx5_0-3, 6-8)
    f = violet()
    f.ib = facts_from_outputs("x", {"ibstat": fixture(ibstat_name)}).ib
    return f


def test_check_rails_down_and_slower():
    good = node_topology(_with_ibstat("ibstat-05-a100-8hca-cx6-exit255-partial.txt"))  # all IB 200
    good.hostname = "good"
    bad = node_topology(_with_ibstat("ibstat-06-b300-xe9780-11hca-cx8-disabled-cx7-ib100.txt"))
    bad.hostname = "bad"
    findings = check_rails([good, good, bad])
    by_rail = {f.rail: f for f in findings if f.node == "bad"}
    # ibstat-06: mlx5_0/1/6/7/8 Down/Disabled, mlx5_2/3 active at 100
    assert by_rail[0].code == "rail-down" and by_rail[0].hca == "mlx5_0" and "DOWN" in by_rail[0].found
    assert by_rail[2].code == "rail-slower" and by_rail[2].expected == "active at 200 Gb/s"
    assert by_rail[2].found == "active at 100 Gb/s"
    # ibstat-05 panicked on mlx5_8, which carries rails 6 and 7 on this matrix
    assert {(f.rail, f.code) for f in findings if f.node == "good"} == {(6, "rail-down"), (7, "rail-down")}


def test_switches_from_ibnetdiscover():
    sw = switches_from_ibnetdiscover(fixture("ibnetdiscover-01-qm9700-ndr200-redacted-fragment.txt"))
    assert len(sw) == 1 and sw[0].name == "CNTSN-POD229-QM97-IB-02"
    assert sw[0].nodes == ["tj01-4090-node005", "tj01-4090-node004", "tj01-4090-node006", "tj01-4090-node007",
                           "tj01-4090-node009"]
    assert sw[0].children == []


def test_hca_in_the_pci_matrix_but_not_in_ibstat_is_not_a_nccl_target():
    # violet-h100-023's matrix (topo-05) with another H100 node's ibstat (ibstat-04): mlx5_2/mlx5_3 only in the matrix
    from pathlib import Path

    from slurmkit.facts import facts_from_outputs
    from slurmkit.topology import nccl_env, node_topology

    fx = Path(__file__).parent.parent / "fixtures" / "hardware"
    facts = facts_from_outputs("violet-h100-023", {
        "nvidia_smi_topo": (fx / "topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt").read_text(),
        "ibstat": (fx / "ibstat-04-h100-8cx7-plus-bf3-9hca.txt").read_text(),
    })
    nt = node_topology(facts)
    hcas = {h.name: h for h in nt.hcas}
    assert not hcas["mlx5_2"].usable and hcas["mlx5_2"].reasons == ["not reported by the InfiniBand tools (ibstat/sysfs)"]
    assert hcas["mlx5_0"].usable
    assert nccl_env(nt)["NCCL_IB_HCA"] == "=mlx5_0,mlx5_1,mlx5_6,mlx5_7,mlx5_8"
