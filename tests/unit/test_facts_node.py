from tests.conftest import hardware_fixture as fixture


import json

from slurmkit.facts import COMMANDS, NodeFacts, facts_from_outputs


def test_commands_tolerate_missing_tools():
    for name, cmd in COMMANDS.items():
        assert cmd.rstrip().endswith("true"), name


def test_facts_from_outputs_and_json_round_trip():
    f = facts_from_outputs(
        "violet-h100-023",
        {
            "nvidia_smi_topo": fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt"),
            "numactl": fixture("numactl-H-01-h100-2s-xeon8480-violet-h100-023.txt"),
            "lscpu": fixture("lscpu-01-xeon8480plus-2s-h100x8-host.txt"),
            "ibstat": fixture("ibstat-05-a100-8hca-cx6-exit255-partial.txt"),
            "sysfs_pci_numa": fixture("sysfs-pci-numa-01-devvm-kvm.txt"),
        },
    )
    assert f.topo is not None and f.cpu.sockets == 2 and len(f.numa.nodes) == 2
    assert f.ib.failed_devices == ["mlx5_8"] and f.gpus == [] and f.slurmd is None
    back = NodeFacts.from_dict(json.loads(json.dumps(f.to_dict())))
    assert back == f
    assert back.numa.distances[1][0] == 21  # int keys survive JSON


def test_no_outputs_is_an_empty_node():
    f = facts_from_outputs("head-1", {name: "" for name in COMMANDS})
    assert f.gpus == [] and f.topo is None and f.ib is None and f.cpu is None
