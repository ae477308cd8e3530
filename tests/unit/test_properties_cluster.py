"""Property tests of the cluster-file loader and the importers: whatever the text, each call returns (a Cluster,
a cluster-file dict) or raises a SlurmkitError (ConfigError for a file), within a time bound; never another
exception, never a hang (issue 14). Seeds are the good files the project ships: examples/*.yaml and the README's
example. Failing examples found here are kept as named tests in test_cluster_bad_input.py."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slurmkit import importers
from slurmkit.cluster import Cluster, dump_cluster, load_cluster, parse_cluster
from slurmkit.errors import ConfigError, SlurmkitError
from tests.conftest import ROOT
from tests.unit._bounded import BOUND_S, bounded


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The cluster file"):]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


GOOD = {p.name: p.read_text() for p in sorted((ROOT / "examples").glob("*.yaml"))}
GOOD["README.md"] = _readme_example()
# SLURMKIT_PROPERTY_EXAMPLES=N runs N examples per property (a deeper search than the suite's default).
SETTINGS = settings(max_examples=int(os.environ.get("SLURMKIT_PROPERTY_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def outcome(text: str) -> Cluster | ConfigError:
    """parse_cluster's result or its ConfigError; any other exception, or a call past the bound, fails."""
    try:
        return bounded(BOUND_S, parse_cluster, text, "cluster.yaml")
    except ConfigError as exc:
        assert exc.problems, "a ConfigError with no problem in it"
        assert all(str(p).strip() for p in exc.problems)
        return exc


def test_the_seeds_are_good_files():
    for name, text in GOOD.items():
        assert isinstance(outcome(text), Cluster), name


# ----- every key deleted, every key given a value of the wrong type ------------------------------------------


def key_paths(data: Any, path: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(path + (k,))
            out += key_paths(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += key_paths(v, path + (i,))
    return out


def edited(data: Any, path: tuple, value: Any = None, delete: bool = False) -> Any:
    import copy

    data = copy.deepcopy(data)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


REQUIRED = {("cluster",), ("ssh",), ("heads",), ("nodes",)}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_key_deleted_is_a_cluster_or_names_the_key(name):
    data = yaml.safe_load(GOOD[name])
    paths = key_paths(data)
    assert len(paths) > 10
    for path in paths:
        result = outcome(dump_cluster(edited(data, path, delete=True)))
        if path in REQUIRED:
            assert isinstance(result, ConfigError), path
            assert f"{path[0]}: required key missing" in [str(p) for p in result.problems]


WRONG = [None, 0, -1, 2**70, 1.5, float("nan"), True, "", "x y", "\x00", [], [1], {}, {"a": 1}, "node-[1-"]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_every_key_with_a_wrong_type_is_a_cluster_or_a_config_error(name):
    data = yaml.safe_load(GOOD[name])
    for k, path in enumerate(key_paths(data)):
        for value in (WRONG[k % len(WRONG)], WRONG[(k + 7) % len(WRONG)]):  # each value on many keys
            outcome(dump_cluster(edited(data, path, value)))


# ----- arbitrary YAML documents ------------------------------------------------------------------------------

KEYS = st.sampled_from(sorted({str(p[-1]) for t in GOOD.values() for p in key_paths(yaml.safe_load(t))
                               if isinstance(p[-1], str)})) | st.text(max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.sampled_from(["node-[1-4]", "h1", "ubuntu", "22.05", "ALL", "node-[1-", "[1-2]", "*", "&a"]))
DOCS = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=6),
                    max_leaves=30)


@SETTINGS
@given(DOCS)
def test_arbitrary_yaml_documents(doc):
    outcome(yaml.safe_dump(doc))


@settings(SETTINGS, max_examples=max(1, SETTINGS.max_examples // 2))
@given(st.dictionaries(KEYS, DOCS, max_size=8), st.sampled_from(sorted(GOOD)))
def test_a_good_file_with_arbitrary_keys_replaced(extra, name):
    data = yaml.safe_load(GOOD[name])
    data.update(extra)
    outcome(yaml.safe_dump(data, sort_keys=False))


# ----- text mutations ----------------------------------------------------------------------------------------


def test_every_prefix_of_a_good_file():
    name = min(GOOD, key=lambda n: len(GOOD[n]))
    text = GOOD[name]
    for n in range(len(text) + 1):
        outcome(text[:n])
    for other in GOOD.values():  # the other files cut at every line end
        ends = [m.end() for m in re.finditer("\n", other)]
        for n in ends:
            outcome(other[:n])


INSERTS = st.sampled_from(["\x00", "\r\n", "\r", "\ufeff", "\t", "\x1b", "\u2028", "\ufffd", ":", "- ", "&a ", "*a",
                           "{", "[", "'", '"', "#", "\n  ", "<<: *a\n", "!!python/object:os.system\n", "%YAML 1.1\n"])


@SETTINGS
@given(st.sampled_from(sorted(GOOD)), st.lists(st.tuples(st.floats(0, 1), INSERTS), min_size=1, max_size=5))
def test_insertions_of_special_characters(name, edits):
    text = GOOD[name]
    for where, what in edits:
        i = int(where * len(text))
        text = text[:i] + what + text[i:]
    outcome(text)


@SETTINGS
@given(st.sampled_from(sorted(GOOD)), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_random_byte_mutations_through_load_cluster(name, flips):
    data = bytearray(GOOD[name].encode())
    for where, byte in flips:
        data[min(int(where * len(data)), len(data) - 1)] = byte
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cluster.yaml"
        path.write_bytes(bytes(data))
        try:
            bounded(BOUND_S, load_cluster, path)
        except ConfigError as exc:
            assert exc.problems


@SETTINGS
@given(st.sampled_from(sorted(GOOD)), st.data())
def test_lines_deleted_or_duplicated(name, data):
    lines = GOOD[name].splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(i, min(len(lines), i + 4)))
    if data.draw(st.booleans()):
        lines[i:j] = []
    else:
        lines[i:j] = lines[i:j] * 2
    outcome("".join(lines))


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    outcome(text)


# ----- importers -----------------------------------------------------------------------------------------------

LAMBDA_NODES = "\n".join([f"us-east-2-1cc-head-{i}" for i in (1, 2, 3)] + [f"us-east-2-1cc-node-{i}" for i in range(1, 9)]) + "\n"
FLEET = yaml.safe_dump({"type": "fleet", "name": "my-fleet", "ssh_config": {
    "user": "ubuntu", "identity_file": "~/.ssh/id_rsa", "port": 22,
    "proxy_jump": {"hostname": "203.0.113.5", "user": "ubuntu"},
    "hosts": ["10.0.0.1", {"hostname": "10.0.0.2"}]}}, sort_keys=False)


def importer_outcome(fn, text: str, **kw) -> dict | SlurmkitError:
    try:
        data = bounded(BOUND_S, fn, text, "input", **kw)
    except SlurmkitError as exc:
        return exc
    assert isinstance(data, dict) and {"cluster", "ssh", "heads", "nodes"} <= set(data)
    return data


def test_importer_seeds_make_good_cluster_files():
    for fn, text in ((importers.from_lambda_nodes, LAMBDA_NODES), (importers.from_dstack_fleet, FLEET)):
        data = importer_outcome(fn, text)
        assert isinstance(outcome(dump_cluster(data)), Cluster)


MUTATION = st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), INSERTS | st.text(max_size=4)), min_size=1, max_size=4)


def mutate(text: str, edits) -> str:
    for where, cut, what in edits:
        i = int(where * len(text))
        j = min(len(text), i + int(cut * 6))
        text = text[:i] + what + text[j:]
    return text


@SETTINGS
@given(MUTATION)
def test_lambda_node_list_mutations(edits):
    importer_outcome(importers.from_lambda_nodes, mutate(LAMBDA_NODES, edits))


@SETTINGS
@given(MUTATION | st.none(), DOCS)
def test_dstack_fleet_mutations_and_arbitrary_documents(edits, doc):
    text = mutate(FLEET, edits) if edits is not None else yaml.safe_dump({"type": "fleet", "ssh_config": doc})
    result = importer_outcome(importers.from_dstack_fleet, text)
    if isinstance(result, dict):
        try:  # what an importer writes is a cluster file or a clear problem in one, never a crash
            bounded(BOUND_S, parse_cluster, dump_cluster(result))
        except ConfigError:
            pass


@pytest.mark.parametrize("value", [None, "", "abc", [], {"a": 1}, 0, 70000, True])
def test_dstack_fleet_with_a_bad_port_names_it(value):
    text = FLEET.replace("port: 22", f"port: {yaml.safe_dump(value, default_flow_style=True).splitlines()[0]}")
    result = importer_outcome(importers.from_dstack_fleet, text)
    assert isinstance(result, ConfigError) and str(result.problems[0]).startswith("ssh_config.port: ")


# ----- several GPU types (a gpus: list, issue 17): parse or name the problem; what parses renders each type ---

GPU_ENTRY = st.fixed_dictionaries(
    {"type": st.sampled_from(["a", "b", "gtx970", "h100", "bad type"]), "count": st.integers(-1, 3)},
    optional={"files": st.sampled_from(["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia[2-3]", "/dev/nvidia[0-1]", "["]),
              "autodetect": st.sampled_from(["off", "nvml", "on"]), "colour": st.just("red")},
)



@st.composite
def good_gpu_lists(draw):
    """Distinct types, each with its own consecutive /dev/nvidiaN files: lists that must parse."""
    types = draw(st.lists(st.sampled_from(["a", "b", "gtx970", "gtx1060", "h100"]), min_size=1, max_size=4, unique=True))
    out, at = [], 0
    for t in types:
        n = draw(st.integers(1, 3))
        out.append({"type": t, "count": n, "files": f"/dev/nvidia[{at}-{at + n - 1}]"})
        at += n
    return out


@SETTINGS
@given(good_gpu_lists() | st.lists(GPU_ENTRY, max_size=4))
def test_gpu_type_lists_parse_or_name_the_problem_and_render_every_type(entries):
    from slurmkit.render import render_cluster

    data = {"cluster": "t", "ssh": {"user": "u"}, "heads": "h",
            "nodes": [{"names": "n[1-2]", "gpus": entries, "sockets": 1, "cores_per_socket": 2,
                       "threads_per_core": 1, "memory_mb": 1000}]}
    got = outcome(dump_cluster(data))
    if isinstance(got, ConfigError):
        assert all(p.path.startswith("nodes[0].gpus") for p in got.problems), got.problems
        return
    types = got.nodes[0].gpu_types
    assert [t.type for t in types] == [e["type"] for e in entries] and len({t.type for t in types}) == len(types)
    files = render_cluster(got).files
    node = next(ln for ln in files["slurm.conf"].splitlines() if ln.startswith("NodeName="))
    word = ",".join(f"gpu:{e['type']}:{e['count']}" for e in entries)
    assert (f" Gres={word} " in node) if entries else ("Gres=" not in node)
    gres = [ln for ln in files["gres.conf"].splitlines() if ln.startswith("NodeName=")]
    if types and types[0].autodetect == "nvml":
        assert len(gres) == len(types)
    else:
        assert len(gres) == sum(t.count for t in types)


@SETTINGS
@given(good_gpu_lists())
def test_distinct_gpu_types_with_their_own_files_always_parse(entries):
    data = {"cluster": "t", "ssh": {"user": "u"}, "heads": "h", "nodes": [{"names": "n1", "gpus": entries}]}
    got = outcome(dump_cluster(data))
    assert isinstance(got, Cluster), got
    assert got.nodes[0].gpu_count == sum(e["count"] for e in entries)
