import json
import subprocess

from slurmkit.discovery import CommandOutput, facts_record
from slurmkit.facts import COMMANDS, NodeFacts, facts_from_outputs, parse_hostname
from slurmkit.hardware import node_facts


def test_hostname_command_runs_here_and_parses_to_the_kernels_short_name():
    out = subprocess.run(["sh", "-c", COMMANDS["hostname"]], capture_output=True, text=True, check=True).stdout
    with open("/proc/sys/kernel/hostname") as f:
        assert parse_hostname(out) == f.read().strip().split(".")[0]


def test_short_name_is_the_part_before_the_first_dot():
    assert parse_hostname("sc-node-1\n") == "sc-node-1"
    assert parse_hostname("ip-10-0-1-7.ec2.internal\n") == "ip-10-0-1-7"
    assert parse_hostname("\r\n  gpu-a.b.c  \r\n") == "gpu-a"
    assert parse_hostname("") is None and parse_hostname("\n\n") is None


def test_record_holds_the_hostname_and_old_records_still_load():
    outputs = {name: CommandOutput("", "", 0) for name in COMMANDS}
    outputs["hostname"] = CommandOutput("dsg-head-1\n", "", 0)
    record = json.loads(json.dumps(facts_record("10.9.0.2", COMMANDS, outputs, time="2026-01-01T00:00:00+00:00")))
    assert record["outputs"]["hostname"] == "dsg-head-1\n"
    assert node_facts(record).short_hostname == "dsg-head-1"
    assert node_facts(record).hostname == "10.9.0.2"
    old = dict(record, facts={k: v for k, v in record["facts"].items() if k != "short_hostname"})
    assert NodeFacts.from_dict(old["facts"]).short_hostname is None
    # a record with no parsed form is parsed again from its outputs, which hold it
    assert node_facts(dict(record, facts=None)).short_hostname == "dsg-head-1"
    assert facts_from_outputs("x", {}).short_hostname is None
