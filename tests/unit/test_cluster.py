"""The cluster file model: every bad input the foundation issue lists gives a problem with its path."""

from __future__ import annotations

import textwrap

import pytest

from slurmkit.cluster import check_environment, cluster_notes, parse_cluster
from slurmkit.errors import ConfigError

GOOD = """\
cluster: demo
ssh: {user: ubuntu}
heads: head-[1-3]
nodes:
  - names: node-[1-4]
    gpus: {type: h100, count: 8}
    sockets: 2
    cores_per_socket: 56
    threads_per_core: 2
    memory_mb: 2000000
    rails: 8
  - names: cpu-[1-2]
partitions:
  - {name: gpu, nodes: "node-[1-4]", default: true}
  - {name: cpu, nodes: "cpu-[1-2]"}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_cluster(textwrap.dedent(text), "cluster.yaml")
    return [str(p) for p in exc.value.problems]


def test_good_file_parses_with_heads_in_order_and_computes():
    c = parse_cluster(GOOD)
    assert c.head_names == ["head-1", "head-2", "head-3"]
    assert c.compute_names == ["node-1", "node-2", "node-3", "node-4", "cpu-1", "cpu-2"]
    assert c.nodes[0].hardware_declared and not c.nodes[1].hardware_declared
    assert [h.role for h in c.hosts()] == ["head"] * 3 + ["compute"] * 6
    assert c.slurm_version == "22.05" and c.profile == "real"


def test_unknown_key_lists_valid_keys_with_line():
    msgs = problems(GOOD.replace("ssh: {user: ubuntu}", "ssh: {user: ubuntu, colour: blue}"))
    assert len(msgs) == 1
    assert msgs[0].startswith("ssh.colour: unknown key 'colour'; valid keys: user, identity_file, proxy_jump")
    assert msgs[0].endswith("(line 2)")


def test_unknown_top_level_and_nested_group_keys():
    msgs = problems(GOOD.replace("    rails: 8", "    rails: 8\n    gpu_count: 8") + "colour: red\n")
    assert any(m.startswith("nodes[0].gpu_count: unknown key") and "cores_per_socket" in m for m in msgs)
    assert any(m.startswith("colour: unknown key 'colour'; valid keys: cluster, slurm_version") for m in msgs)


def test_malformed_yaml_names_line_and_column():
    msgs = problems("cluster: x\nssh: {user: a\nheads: h1\n")
    assert msgs == ["malformed YAML at line 3, column 6: expected ',' or '}', but got ':'"]


def test_bad_hostlist_syntax():
    msgs = problems(GOOD.replace("names: cpu-[1-2]", "names: cpu-[1-"))
    assert any(m.startswith("nodes[1].names: bad hostlist 'cpu-[1-'") for m in msgs)
    msgs = problems(GOOD.replace("names: cpu-[1-2]", "names: cpu-[5-2]"))
    assert any(m.startswith("nodes[1].names: bad hostlist 'cpu-[5-2]'") for m in msgs)


def test_node_in_two_groups():
    msgs = problems(GOOD.replace("names: cpu-[1-2]", "names: cpu-[1-2],node-4"))
    assert "nodes[1].names: node-4 is also in nodes[0] (line 12)" in msgs


def test_head_listed_as_compute_node_is_allowed_with_a_note():
    # issue 17: once a problem ("head-2 is a head"), now a controller that is also a compute node, with a note
    c = parse_cluster(GOOD.replace("names: cpu-[1-2]", "names: cpu-[1-2],head-2"))
    assert c.heads_also_computes == ["head-2"] and "head-2" in c.compute_names
    assert [str(p) for p in cluster_notes(c)] == [
        "nodes[1].names: head-2: also a head: a controller that is also a compute node (SlurmctldHost and NodeName "
        "both name it; it runs slurmctld and slurmd)"]
    hosts = c.hosts()
    assert [h.name for h in hosts].count("head-2") == 1  # one host: SSH, facts and bundles reach it once
    assert [(h.name, h.role, h.also_compute) for h in hosts][:3] == [
        ("head-1", "head", False), ("head-2", "head", True), ("head-3", "head", False)]
    assert cluster_notes(parse_cluster(GOOD)) == []
    # still one group per node: a head in two node groups is the two-groups problem
    msgs = problems(GOOD.replace("names: cpu-[1-2]", "names: cpu-[1-2],node-4"))
    assert "nodes[1].names: node-4 is also in nodes[0] (line 12)" in msgs
    msgs = problems(GOOD.replace("names: cpu-[1-2]", "names: cpu-[1-2],head-2").replace("names: node-[1-4]", "names: node-[1-4],head-2"))
    assert msgs == ["nodes[1].names: head-2 is also in nodes[0] (line 12)"]


def test_a_head_compute_is_reached_by_the_heads_address_else_its_groups():
    text = GOOD.replace("names: cpu-[1-2]", "names: 'cpu-[1-2],head-2'\n    addresses: '10.0.1.[1-3]'")
    assert next(h.address for h in parse_cluster(text).hosts() if h.name == "head-2") == "10.0.1.3"
    text = text.replace("heads: head-[1-3]", "heads: {names: 'head-[1-3]', addresses: '10.0.0.[1-3]'}")
    assert next(h.address for h in parse_cluster(text).hosts() if h.name == "head-2") == "10.0.0.2"


def test_duplicate_partition_names():
    msgs = problems(GOOD.replace("{name: cpu,", "{name: gpu,"))
    assert any(m.startswith("partitions[1].name: duplicate partition name 'gpu'") for m in msgs)


def test_partition_naming_missing_nodes():
    msgs = problems(GOOD.replace('nodes: "cpu-[1-2]"', 'nodes: "cpu-[1-4]"'))
    assert any(m.startswith("partitions[1].nodes: no such compute node: cpu-[3-4]") for m in msgs)


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ("count: 8}", "count: 0}", "nodes[0].gpus.count: must be > 0"),
        ("sockets: 2", "sockets: -1", "nodes[0].sockets: must be > 0"),
        ("memory_mb: 2000000", "memory_mb: 0", "nodes[0].memory_mb: must be > 0"),
        ("rails: 8", "rails: -2", "nodes[0].rails: must be >= 0"),
    ],
)
def test_zero_or_negative_counts(old, new, expected):
    msgs = problems(GOOD.replace(old, new))
    assert any(m.startswith(expected) for m in msgs), msgs


def test_missing_ssh_user():
    msgs = problems(GOOD.replace("ssh: {user: ubuntu}", "ssh: {identity_file: /tmp/k}"))
    assert any(m.startswith("ssh.user: required key missing") for m in msgs)


def test_identity_file_that_does_not_exist(tmp_path):
    c = parse_cluster(GOOD.replace("ssh: {user: ubuntu}", "ssh: {user: ubuntu, identity_file: keys/id}"))
    msgs = [str(p) for p in check_environment(c, tmp_path)]
    assert msgs == ["ssh.identity_file: no such file: keys/id"]
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id").write_text("k")
    assert check_environment(c, tmp_path) == []


def test_every_problem_is_reported_not_only_the_first():
    text = GOOD.replace("count: 8}", "count: 0}").replace("ssh: {user: ubuntu}", "ssh: {port: 0}")
    msgs = problems(text)
    assert any(m.startswith("nodes[0].gpus.count") for m in msgs)
    assert any(m.startswith("ssh.user") for m in msgs)
    assert any(m.startswith("ssh.port") for m in msgs)


def test_partial_hardware_and_address_count_and_gpu_files():
    text = GOOD.replace("  - names: cpu-[1-2]", "  - names: cpu-[1-2]\n    addresses: 10.0.0.[1-3]\n    sockets: 2")
    msgs = problems(text)
    assert any(m.startswith("nodes[1].addresses: 3 addresses for 2 names") for m in msgs)
    assert any(m.startswith("nodes[1]: give sockets, cores_per_socket and threads_per_core together") for m in msgs)
    msgs = problems(GOOD.replace("count: 8}", 'count: 8, files: "/dev/nvidia[0-3]"}'))
    assert any(m.startswith("nodes[0].gpus.files: 4 device files for count 8") for m in msgs)


def test_topology_switch_with_missing_child_and_orphan_nodes():
    text = GOOD + "topology:\n  switches:\n    - {name: leaf1, nodes: 'node-[1-4]'}\n    - {name: spine, switches: 'leaf[1-2]'}\n"
    msgs = problems(text)
    assert any(m.startswith("topology.switches[1].switches: no such switch: leaf2") for m in msgs)
    assert any(m.startswith("topology.switches: nodes under no switch") and "cpu-[1-2]" in m for m in msgs)


def test_unsupported_slurm_version_and_cluster_name():
    msgs = problems(GOOD.replace("cluster: demo", "cluster: Demo Cluster\nslurm_version: '23.02'"))
    assert any(m.startswith("slurm_version: unsupported Slurm version '23.02'; supported: 21.08, 22.05, 23.11, "
                            "24.11, 25.05, 25.11, 26.05") for m in msgs)
    assert any(m.startswith("cluster: 'Demo Cluster' is not allowed here") for m in msgs)


def test_heads_mapping_with_addresses():
    text = GOOD.replace("heads: head-[1-3]", "heads: {names: 'head-[1-3]', addresses: '192.0.2.[10-12]'}")
    c = parse_cluster(text)
    assert [(h.name, h.address) for h in c.hosts()[:3]] == [("head-1", "192.0.2.10"), ("head-2", "192.0.2.11"), ("head-3", "192.0.2.12")]
    msgs = problems(text.replace("192.0.2.[10-12]", "192.0.2.[10-11]"))
    assert any(m.startswith("heads.addresses: 2 addresses for 3 heads") for m in msgs)


def test_select_hosts_by_hostlist_in_file_order_and_unknown_names():
    c = parse_cluster(GOOD)
    assert [h.name for h in c.select(None)] == c.head_names + c.compute_names
    assert [h.name for h in c.select("node-[3-4],head-1")] == ["head-1", "node-3", "node-4"]
    with pytest.raises(ConfigError) as exc:
        c.select("node-[4-6]", "--nodes")
    assert exc.value.source == "--nodes" and str(exc.value.problems[0]) == "not in the cluster file: node-[5-6]"
    with pytest.raises(ConfigError) as exc:
        c.select("node-[4-")
    assert exc.value.source == "--limit" and "bad hostlist" in str(exc.value.problems[0])


def test_slurm_version_is_an_optional_pin():
    """Left out, the nodes decide (slurm_pin None) and old callers still read 22.05; given, it is a pin."""
    c = parse_cluster(GOOD)
    assert "slurm_version" not in GOOD and c.slurm_pin is None and c.slurm_version == "22.05"
    assert c.slurm_version_tuple() == (22, 5)
    for v in ("21.08", "22.05", "23.11", "24.11", "25.05", "25.11", "26.05"):
        pinned = parse_cluster(GOOD.replace("cluster: demo", f"cluster: demo\nslurm_version: '{v}'"))
        assert pinned.slurm_pin == pinned.slurm_version == v


# ---------------------------------------------------------------- several GPU types per node group (issue 17)

TWO_TYPES = GOOD.replace(
    "    gpus: {type: h100, count: 8}",
    "    gpus:\n      - {type: gtx970, count: 1, files: /dev/nvidia0}\n      - {type: gtx1060, count: 1, files: /dev/nvidia1}",
)


def test_gpus_as_a_list_of_types_parses_and_the_mapping_form_reads_as_one_type():
    c = parse_cluster(TWO_TYPES)
    assert [(t.type, t.count, t.device_files()) for t in c.nodes[0].gpu_types] == [
        ("gtx970", 1, ["/dev/nvidia0"]), ("gtx1060", 1, ["/dev/nvidia1"])]
    assert c.nodes[0].gpu_count == 2 and c.nodes[1].gpu_types == [] and c.nodes[1].gpu_count == 0
    one = parse_cluster(GOOD).nodes[0]
    assert [(t.type, t.count) for t in one.gpu_types] == [("h100", 8)] and one.gpu_count == 8


def test_gpus_list_entries_are_checked_like_the_mapping():
    msgs = problems(TWO_TYPES.replace("{type: gtx1060, count: 1, files: /dev/nvidia1}",
                                      "{type: gtx1060, count: 2, files: /dev/nvidia1, colour: red}"))
    assert any(m.startswith("nodes[0].gpus[1].colour: unknown key 'colour'; valid keys: type, count, files, autodetect")
               for m in msgs), msgs
    msgs = problems(TWO_TYPES.replace("{type: gtx1060, count: 1, files: /dev/nvidia1}", "{type: gtx1060, count: 0, files: /dev/nvidia1}"))
    assert any(m.startswith("nodes[0].gpus[1].count: must be > 0") for m in msgs), msgs


def test_gpus_list_count_vs_files_duplicate_types_shared_devices_and_missing_files():
    msgs = problems(TWO_TYPES.replace("{type: gtx1060, count: 1, files: /dev/nvidia1}", "{type: gtx1060, count: 2, files: /dev/nvidia1}"))
    assert msgs == ["nodes[0].gpus[1].files: 1 device files for count 2 (line 8)"]
    msgs = problems(TWO_TYPES.replace("type: gtx1060", "type: gtx970"))
    assert msgs == ["nodes[0].gpus[1].type: GPU type 'gtx970' is listed twice (give its count once) (line 8)"]
    msgs = problems(TWO_TYPES.replace("files: /dev/nvidia1", "files: /dev/nvidia0"))
    assert msgs == ["nodes[0].gpus[1].files: /dev/nvidia0 is also a device of type 'gtx970' (line 8)"]
    msgs = problems(TWO_TYPES.replace(", files: /dev/nvidia1", ""))
    assert msgs == ["nodes[0].gpus[1].files: with several GPU types each type needs its device files "
                    "(the default /dev/nvidia[0-N] would be shared between types) (line 8)"]
    msgs = problems(GOOD.replace("    gpus: {type: h100, count: 8}", "    gpus: []"))
    assert msgs[0] == "nodes[0].gpus: an empty list: give one {type, count} mapping per GPU type, or leave gpus out (line 6)"
    msgs = problems(GOOD.replace("    gpus: {type: h100, count: 8}", "    gpus: [{type: h100, count: 8}, 3]"))
    assert msgs == ["nodes[0].gpus[1]: Input should be a valid dictionary or instance of GPUs (line 6)"]


def test_gpus_list_of_one_type_needs_no_files_and_the_mapping_form_is_unchanged():
    c = parse_cluster(GOOD.replace("    gpus: {type: h100, count: 8}", "    gpus: [{type: h100, count: 8}]"))
    assert c.nodes[0].gpu_types[0].device_files() == [f"/dev/nvidia{i}" for i in range(8)]
    msgs = problems(GOOD.replace("{type: h100, count: 8}", "{type: h100, count: 2, files: '/dev/nvidia[0-3]'}"))
    assert msgs == ["nodes[0].gpus.files: 4 device files for count 2 (line 6)"]  # the mapping form's path as before
