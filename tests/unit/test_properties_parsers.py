"""Property tests of every text parser: mutations of the real captured outputs (tests/fixtures/**,
/work/shared/fixtures/**: truncation, line deletion and duplication, character flips, inserted NUL/CR/BOM)
and arbitrary text. Each call returns its typed result or raises the package's own error (a SlurmkitError:
FactsParseError, SlurmOutputError, LogReadError, HostlistError, ConfigError), within a time bound; never
another exception, never a hang (issue 14). Failing examples found here are named tests in
test_parsers_bad_input.py."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slurmkit import facts, hostlist
from slurmkit.bench import parse as bench_parse
from slurmkit.errors import SlurmkitError
from slurmkit.slurm import parsers as slurm
from tests.conftest import FIXTURES, ROOT
from tests.unit._bounded import BOUND_S, bounded

SHARED = Path("/work/shared/fixtures")


def fixtures(pattern: str) -> list[str]:
    """The captured outputs matching ``pattern`` in tests/fixtures and the shared fixtures (as captured)."""
    paths = {p.name: p for d in (FIXTURES, SHARED) if d.is_dir() for p in d.rglob(pattern) if p.is_file()}
    out = []
    for name in sorted(paths):
        with open(paths[name], encoding="utf-8", newline="") as fh:
            out.append(fh.read())
    return out


def _bench(text: str) -> Any:
    return bench_parse.parse_text(text, "log")


def _facts(text: str) -> Any:
    return facts.facts_from_outputs("h", {name: text for name in facts.COMMANDS})


# parser, fixtures it reads (the seeds)
PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "nvsmi_query": (facts.parse_nvsmi_query, "nvsmi-query-*"),
    "nvsmi_list": (facts.parse_nvsmi_list, "nvsmi-L-*"),
    "topo": (facts.parse_topo_matrix, "topo-*"),
    "ibstat": (facts.parse_ibstat, "ibstat-*"),
    "ibstatus": (facts.parse_ibstatus, "ibstatus-*"),
    "ibdev2netdev": (facts.parse_ibdev2netdev, "ibdev2netdev-*"),
    "sysfs_ib": (facts.parse_sysfs_ib, "ibstatus-*"),
    "ibnetdiscover": (facts.parse_ibnetdiscover, "ibnetdiscover-*"),
    "lscpu": (facts.parse_lscpu, "lscpu-0*"),
    "lscpu_json": (facts.parse_lscpu_json, "lscpu-J-*"),
    "lscpu_parsable": (facts.parse_lscpu_parsable, "lscpu-p-*"),
    "numactl": (facts.parse_numactl_hardware, "numactl-H-*"),
    "pci_numa": (facts.parse_sysfs_pci_numa, "sysfs-pci-numa-*"),
    "slurmd_c": (facts.parse_slurmd_c, "slurmd-C-*"),
    "ip_addr": (facts.parse_ip_addr, "ip-addr-*"),
    "ip_route": (facts.parse_ip_route_get, "ip-route-get-*"),
    "all_facts": (_facts, "topo-0[15]*"),
    "squeue_json": (slurm.parse_squeue_json, "squeue-json-*"),
    "sinfo_json": (slurm.parse_sinfo_json, "sinfo-json-*"),
    "scontrol_nodes": (slurm.parse_scontrol_nodes, "scontrol-o-show-node-*"),
    "scontrol_jobs": (slurm.parse_scontrol_jobs, "scontrol-o-show-job-*"),
    "scontrol_partitions": (slurm.parse_scontrol_partitions, "scontrol-o-show-partition*"),
    "scontrol_ping": (slurm.parse_scontrol_ping, "scontrol-ping*.txt"),
    "sbatch_parsable": (slurm.parse_sbatch_parsable, "sinfo-version.txt"),
    "sacct": (slurm.parse_sacct_parsable2, "squeue-o-*"),
    "srun_failures": (slurm.failed_nodes_from_srun, "srun-*"),
    "nccl_tests": (_bench, "nccl-*"),
    "slurm_version": (facts.parse_slurm_version, "slurm-V-*"),
    "dpkg_query": (facts.parse_dpkg_query, "dpkg-query-W-*"),
    "apt_policy": (facts.parse_apt_policy, "apt-cache-policy-*"),
}
SEEDS = {name: fixtures(pattern) for name, (_, pattern) in PARSERS.items()}
# SLURMKIT_PROPERTY_EXAMPLES=N runs N examples per property (a deeper search than the suite's default).
SETTINGS = settings(max_examples=int(os.environ.get("SLURMKIT_PROPERTY_EXAMPLES", 25)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def check(name: str, text: str) -> Any:
    """The parser's result, or its SlurmkitError; anything else (or a call past the bound) fails the test."""
    fn = PARSERS[name][0]
    try:
        return bounded(BOUND_S, fn, text)
    except SlurmkitError as exc:
        assert str(exc).strip()
        return exc


def test_every_parser_has_real_seeds():
    assert all(SEEDS.values()), [n for n, s in SEEDS.items() if not s]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_each_seed_parses_and_its_line_prefixes_give_results_or_our_errors(name):
    for text in SEEDS[name]:
        check(name, text)
        lines = text.splitlines(keepends=True)
        for n in range(len(lines)):
            check(name, "".join(lines[:n]))
            check(name, "".join(lines[:n]) + lines[n][: len(lines[n]) // 2])  # cut inside a line


SPECIAL = st.sampled_from(["\x00", "\r", "\r\n", "\ufeff", "\t", "\x1b[4m", "\n", " ", ":", "=", ",", "|", "[", "]",
                           "{", "}", '"', "'", "-", "#", "0", "-1", "99999999999999999999", "N/A", "\u00e9", "\ufffd"])


@st.composite
def mutated(draw, name: str) -> str:
    text = draw(st.sampled_from(SEEDS[name]))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "delete_line", "duplicate_line", "flip", "insert"]))
        lines = text.splitlines(keepends=True) or [""]
        if kind == "cut":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind in ("delete_line", "duplicate_line"):
            i = draw(st.integers(0, len(lines) - 1))
            lines[i:i + 1] = [] if kind == "delete_line" else [lines[i]] * 2
            text = "".join(lines)
        else:
            i = draw(st.integers(0, len(text)))
            what = draw(SPECIAL | st.characters())
            text = text[:i] + what + text[i + (kind == "flip"):]
    return text


def _property(name: str):
    @SETTINGS
    @given(st.one_of(mutated(name), st.text(max_size=200)))
    def run(text):
        check(name, text)

    return run


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_mutations_and_arbitrary_text(name):
    _property(name)()


@SETTINGS
@given(st.text(alphabet="ab-[]0123456789,!&^ /@", max_size=40) | st.text(max_size=30))
def test_hostlists(expr):
    try:
        names = bounded(BOUND_S, hostlist.expand, expr)
    except hostlist.HostlistError as exc:
        assert str(exc)
    else:
        assert names and all(isinstance(n, str) for n in names)


SSH_CONFIG = "Host head-*\n  HostName 192.0.2.10\n  User ubuntu\n  IdentityFile ~/.ssh/id\n\nHost node-*\n  ProxyJump head-1\n"


@SETTINGS
@given(st.one_of(st.text(max_size=120), st.builds(lambda i, w: SSH_CONFIG[:i] + w + SSH_CONFIG[i:],
                                                  st.integers(0, len(SSH_CONFIG)), SPECIAL | st.text(max_size=5))))
def test_ssh_config_reader(text):
    from slurmkit.remote import read_ssh_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config"
        path.write_text(text)
        try:
            out = bounded(BOUND_S, read_ssh_config, path, ["head-1", "node-1"])
        except SlurmkitError:
            return
        assert set(out) == {"head-1", "node-1"}


@SETTINGS
@given(st.data())
def test_bench_profiles_loader(data):
    from slurmkit.bench.verdict import load_profiles

    text = (ROOT / "slurmkit" / "bench" / "profiles.yaml").read_text()
    i = data.draw(st.integers(0, len(text)))
    text = text[:i] + data.draw(SPECIAL | st.text(max_size=4)) + text[i + data.draw(st.integers(0, 3)):]
    try:
        bounded(BOUND_S, load_profiles, text)
    except SlurmkitError:
        pass


# ----- JSON outputs: valid JSON of the wrong shape -------------------------------------------------------------

JSON_PARSERS = ("squeue_json", "sinfo_json", "lscpu_json")
JSON_KEYS = st.sampled_from(["jobs", "nodes", "errors", "lscpu", "field", "data", "children", "job_state", "exit_code",
                             "state", "state_flags", "partitions", "name", "cpus", "number", "set", "infinite",
                             "return_code", "signal", "id", "description", "source"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(JSON_KEYS | st.text(max_size=6), kids, max_size=5),
    max_leaves=20)


def _paths(doc: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        out += _paths(v, path + (k,))
    return out


@pytest.mark.parametrize("name", JSON_PARSERS)
def test_json_of_the_wrong_shape(name):
    seeds = [json.loads(t) for t in SEEDS[name]]

    @SETTINGS
    @given(st.data())
    def run(data):
        doc = json.loads(json.dumps(data.draw(st.sampled_from(seeds))))
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(_paths(doc)))
            value = data.draw(JSON_VALUES)
            if not path:
                doc = value
                continue
            parent = doc
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]] = value
            if not isinstance(doc, (dict, list)):
                break
        check(name, json.dumps(doc))

    run()
