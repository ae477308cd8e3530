"""Named examples of bad input to the text parsers (found by test_properties_parsers.py or reported): each
returns its typed result or raises the package's own error, promptly."""

from __future__ import annotations

import pytest

from slurmkit import hostlist
from slurmkit.facts import FactsParseError, parse_lscpu, parse_lscpu_json, parse_numactl_hardware
from tests.conftest import hardware_fixture
from tests.unit._bounded import BOUND_S, bounded


@pytest.mark.parametrize("expr", ["node-[1-100000000]", "n[1-1000]-[1-1000]", "a[1-60000],b[1-60000]",
                                  "n[0-99999999999999999999999]"])
def test_a_hostlist_naming_too_many_hosts_is_refused_without_expanding(expr):
    with pytest.raises(hostlist.HostlistError, match=f"names more than {hostlist.MAX_NAMES} hosts; check the ranges"):
        bounded(BOUND_S, hostlist.expand, expr)


def test_a_hostlist_at_the_bound_still_expands():
    assert len(bounded(BOUND_S * 4, hostlist.expand, f"n[1-{hostlist.MAX_NAMES}]")) == hostlist.MAX_NAMES


def test_a_hostlist_with_a_group_character_is_a_hostlist_error():
    # Found by test_hostlists: '?' and '@' reached ClusterShell's group resolver (GroupResolverSourceError).
    for expr in ("?", "@x", "a,@b"):
        with pytest.raises(hostlist.HostlistError, match="bad hostlist"):
            bounded(BOUND_S, hostlist.expand, expr)


def test_a_hostlist_naming_no_host_is_a_hostlist_error():
    # Found by test_hostlists: NodeSet's intersection '0&1' expanded to [], a cluster group of no nodes.
    for expr in ("0&1", "a!a"):
        with pytest.raises(hostlist.HostlistError, match="names no host"):
            hostlist.expand(expr)


def test_lscpu_json_cut_short_or_not_an_object_is_a_facts_parse_error():
    # Found by test_mutations_and_arbitrary_text[lscpu_json]: JSONDecodeError and AttributeError escaped.
    text = hardware_fixture("lscpu-J-01-devvm-epyc-2cpu-kvm.txt")
    with pytest.raises(FactsParseError, match=r"command `lscpu -J`, line \d+: not JSON: "):
        parse_lscpu_json(text[: len(text) // 2])
    for bad in ("0", "[]", '{"lscpu": 3}', '{"lscpu": [1]}'):
        with pytest.raises(FactsParseError, match="command `lscpu -J`"):
            parse_lscpu_json(bad)
    assert parse_lscpu_json(text).cpus == 2


def test_numactl_with_a_garbled_cpu_names_the_line():
    # Found by test_mutations_and_arbitrary_text[numactl]: int('\\x000') escaped as ValueError.
    text = hardware_fixture("numactl-H-01-h100-2s-xeon8480-violet-h100-023.txt")
    with pytest.raises(FactsParseError, match=r"command `numactl -H`, line 2: .*a word that is no number"):
        parse_numactl_hardware(text.replace("cpus: 0 ", "cpus: \x000 ", 1))
    assert len(parse_numactl_hardware(text).nodes) == 2


def test_lscpu_with_a_garbled_cpu_list_is_a_facts_parse_error():
    # Found by test_mutations_and_arbitrary_text[lscpu]: int() of a garbled range escaped as ValueError.
    with pytest.raises(FactsParseError, match=r"On-line CPU\(s\) list: '0-x' is no CPU list"):
        parse_lscpu("On-line CPU(s) list: 0-x\n")
    with pytest.raises(FactsParseError, match="is no CPU list"):
        bounded(BOUND_S, parse_lscpu, "NUMA node0 CPU(s): 0-99999999999\n")
    assert parse_lscpu("On-line CPU(s) list: N/A\n").online == []


@pytest.mark.parametrize("text, message", [
    ('{"jobs": [1]}', "squeue --json: 'jobs' is not a list of objects"),
    ('{"jobs": 5}', "squeue --json: 'jobs' is not a list of objects"),
    ('{"errors": "x"}', "squeue --json reported errors: x"),
    ('{"errors": [1]}', "squeue --json reported errors: 1"),
])
def test_squeue_json_of_the_wrong_shape_is_a_slurm_output_error(text, message):
    from slurmkit.slurm.parsers import SlurmOutputError, parse_squeue_json

    with pytest.raises(SlurmOutputError) as exc:
        parse_squeue_json(text)
    assert str(exc.value) == message


def test_slurm_json_fields_of_the_wrong_type_read_as_empty():
    from slurmkit.slurm.parsers import SlurmOutputError, parse_sinfo_json, parse_squeue_json

    [job] = parse_squeue_json('{"jobs": [{"job_id": 7, "job_state": ["RUNNING", 1], "nodes": 5, "name": {}}]}')
    assert (job.job_id, job.state, job.raw_state, job.nodes, job.name) == ("7", "RUNNING", "RUNNING+1", [], "")
    [node] = parse_sinfo_json('{"nodes": [{"name": "n1", "state": "idle", "state_flags": 3, "partitions": 7}]}')
    assert (node.name, node.state, node.flags, node.partitions) == ("n1", "IDLE", (), ())
    with pytest.raises(SlurmOutputError, match="'nodes' is not a list of objects"):
        parse_sinfo_json('{"nodes": [1]}')


def test_an_ssh_config_paramiko_cannot_parse_is_a_config_error(tmp_path):
    # Found by test_ssh_config_reader: a file holding only "0" let paramiko's ConfigParseError out.
    from slurmkit.errors import ConfigError
    from slurmkit.remote import read_ssh_config

    path = tmp_path / "config"
    path.write_text("0")
    with pytest.raises(ConfigError, match="not an OpenSSH config: Unparsable line 0"):
        bounded(BOUND_S, read_ssh_config, path, ["head-1"])
    path.write_bytes(b"Host \xff\n")
    with pytest.raises(ConfigError, match="cannot read SSH config"):
        bounded(BOUND_S, read_ssh_config, path, ["head-1"])
