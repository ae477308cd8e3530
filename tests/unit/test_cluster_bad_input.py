"""Bad cluster files end in a ConfigError quickly, never a hang or another exception (issue 14): each a named
example found by the property tests (test_properties_cluster.py) or reported."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slurmkit.cluster import MAX_DEPTH, MAX_VALUES, parse_cluster
from slurmkit.errors import ConfigError
from tests.conftest import ROOT
from tests.unit._bounded import BOUND_S, bounded

GOOD = (ROOT / "examples" / "tensorpool-2xh200.yaml").read_text()


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        bounded(BOUND_S, parse_cluster, text, "cluster.yaml")
    return [str(p) for p in exc.value.problems]


def without_top_level(text: str, key: str) -> str:
    """The text with ``key:`` and its indented block removed."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(f"{key}:"):
            skipping = True
            continue
        if skipping and (line.startswith((" ", "#")) or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


@pytest.mark.parametrize("key", ["cluster", "ssh", "heads", "nodes"])
def test_a_missing_top_level_key_is_a_required_key_error(key):
    text = without_top_level(GOOD, key)
    assert f"\n{key}:" not in text and not text.startswith(f"{key}:")
    assert problems(text) == [f"{key}: required key missing"]


def test_a_file_cut_after_its_first_line_names_every_missing_key():
    assert problems("cluster: tp-7f3a2c\n") == ["ssh: required key missing", "heads: required key missing",
                                                "nodes: required key missing"]


def test_a_missing_nested_key_still_gets_its_parents_line():
    assert problems(GOOD.replace("  user: ubuntu\n", "")) == [
        "ssh.user: required key missing (the SSH user slurmkit logs in as) (line 4)"]


def test_a_mapping_where_a_string_belongs_is_reported_not_dropped():
    # Found by test_every_key_with_a_wrong_type...: a ConfigError with no problem in it.
    assert problems(GOOD.replace("cluster: tp-7f3a2c", "cluster: {}")) == ["cluster: Input should be a valid string (line 3)"]


def test_a_capitalised_key_keeps_its_name_in_the_path():
    # Found by test_arbitrary_yaml_documents: capitalised keys were taken for pydantic's union tags (IndexError).
    assert problems("OverSubscribe: 1\n")[-1].startswith("OverSubscribe: unknown key 'OverSubscribe'; valid keys: cluster,")
    assert problems(GOOD + "slurm_conf: {SlurmctldTimeout: []}\n") == [
        "slurm_conf.SlurmctldTimeout: Input should be a valid integer (line 19)"]


def test_a_recursive_alias_is_refused():
    assert problems("a: &x [*x]\n") == [
        "a recursive alias (an anchor &name used inside itself) at line 1; an input cannot contain itself"]
    assert problems(GOOD + "slurm_conf: &x {A: *x}\n")[0].startswith("a recursive alias")
    assert problems("a: &x {<<: *x}\n")[0].startswith("a recursive alias")


def billion_laughs(levels: int) -> str:
    text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    return text


def test_aliases_expanding_past_the_bound_are_refused_naming_aliases_and_quickly():
    msg = f"too large: its aliases (*name) expand to more than {MAX_VALUES} values; write the repeated parts out or use fewer aliases"
    assert problems(billion_laughs(9)) == [msg]  # 10^9 values if walked
    assert problems(GOOD + billion_laughs(9).replace("l0:", "slurm_conf:", 1)) == [msg]
    # The cost follows the text, not the expansion: 10^6 and 10^12 values if walked, twice the lines, are
    # refused in comparable time (best of three each, against this run's own baseline).
    def best(text: str) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            problems(text)
            times.append(time.perf_counter() - t0)
        return min(times)

    assert best(billion_laughs(12)) < 10 * best(billion_laughs(6))


def test_merge_keys_of_aliases_are_bounded_too():
    text = "a0: &a0 {k: v}\n" + "".join(
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 4)}]}}\n" for i in range(1, 12))
    assert problems(text)[0].startswith("too large: its aliases (*name) expand")


def test_aliases_within_the_bound_still_work():
    text = GOOD.replace("ssh:\n", "ssh: &ssh\n") + "x-unused: 1\n"
    assert problems(text)[0].startswith("x-unused: unknown key")
    text = GOOD.replace("  - names: tp-7f3a2c-[0-1]\n", "  - &grp\n    names: tp-7f3a2c-[0-1]\n")
    assert bounded(BOUND_S, parse_cluster, text).compute_names == ["tp-7f3a2c-0", "tp-7f3a2c-1"]


def test_deep_nesting_is_refused_not_a_recursion_error():
    msg = f"nested more than {MAX_DEPTH} levels deep; no slurmkit input needs more than a few"
    assert problems("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n") == [msg]
    assert problems("a: " + "[" * 5000 + "]" * 5000 + "\n") == [msg]


def test_values_yaml_cannot_construct_are_config_errors():
    assert problems("cluster: 2024-02-30\n") == ["a value YAML cannot read: day is out of range for month"]
    assert problems("cluster: " + "1" * 5000 + "\n")[0].startswith("a value YAML cannot read: Exceeds the limit")


def test_a_nul_character_names_its_line():
    assert problems(GOOD.replace("heads:", "he\x00ads:")) == [
        "malformed YAML at line 8: character '\\x00' is not allowed in YAML; remove it"]


def test_a_byte_order_mark_is_accepted():
    assert bounded(BOUND_S, parse_cluster, "\ufeff" + GOOD).cluster == "tp-7f3a2c"


def test_cli_validate_on_a_file_without_cluster_exits_2_promptly(tmp_path: Path, cli):
    bad = tmp_path / "cluster.yaml"
    bad.write_text(without_top_level(GOOD, "cluster"))
    r = cli("-c", str(bad), "validate", timeout=60)
    assert r.returncode == 2, r.stderr
    assert "cluster: required key missing" in r.stderr + r.stdout
