"""The Slurm version parsers (slurmkit/facts/slurmver.py) on real outputs: tests/fixtures/slurm-version/ (this
machine's Debian 12 Slurm 22.05.8, and Debian 13 / sid roots with 24.11.5 / 26.05.5; see its README.md)."""

from __future__ import annotations

import pytest

from slurmkit.facts import COMMANDS, FactsParseError, NodeFacts, facts_from_outputs
from slurmkit.facts.slurmver import (
    parse_apt_policy,
    parse_dpkg_query,
    parse_slurm_version,
    slurm_versions,
    upstream_version,
)
from tests.conftest import FIXTURES

DIR = FIXTURES / "slurm-version"
IMAGES = [("debian12", "22.05.8"), ("debian13", "24.11.5"), ("debiansid", "26.05.5")]


def fx(name: str) -> str:
    return (DIR / name).read_text()


@pytest.mark.parametrize("image,version", IMAGES)
def test_daemons_versions(image, version):
    assert parse_slurm_version(fx(f"slurm-V-{image}-{version}.txt")) == {"slurmctld": version, "slurmd": version}


@pytest.mark.parametrize("image,version", IMAGES)
def test_dpkg_installed_packages(image, version):
    got = parse_dpkg_query(fx(f"dpkg-query-W-{image}-{version}.txt"))
    assert got["slurmd"] == got["slurmctld"] == got["slurm-client"] == version
    assert parse_dpkg_query(fx(f"dpkg-query-W-{image}-none.txt")) == {}


@pytest.mark.parametrize("image,version", IMAGES)
def test_apt_policy_candidate_where_nothing_is_installed(image, version):
    got = parse_apt_policy(fx(f"apt-cache-policy-{image}-candidate-{version}.txt"))
    assert got == {"slurmctld": {"installed": None, "candidate": version},
                   "slurmd": {"installed": None, "candidate": version}}
    installed = parse_apt_policy(fx(f"apt-cache-policy-{image}-installed-{version}.txt"))
    assert installed["slurmd"] == {"installed": version, "candidate": version}


@pytest.mark.parametrize("image,version", IMAGES)
def test_facts_record_holds_installed_else_candidate(image, version):
    """Through facts_from_outputs (what discovery caches): a node with Slurm installed, one with only apt's
    candidate; both survive the JSON round trip of the cache."""
    installed = facts_from_outputs("n", {"slurm_version": fx(f"slurm-V-{image}-{version}.txt"),
                                         "slurm_packages": fx(f"dpkg-query-W-{image}-{version}.txt"),
                                         "slurm_candidate": fx(f"apt-cache-policy-{image}-installed-{version}.txt")})
    assert installed.slurm.installed == [version] and installed.slurm.candidate == version
    bare = facts_from_outputs("n", {"slurm_packages": fx(f"dpkg-query-W-{image}-none.txt"),
                                    "slurm_candidate": fx(f"apt-cache-policy-{image}-candidate-{version}.txt")})
    assert bare.slurm.installed == [] and bare.slurm.candidate == version
    assert NodeFacts.from_dict(bare.to_dict()).slurm == bare.slurm


def test_no_slurm_no_apt_is_no_version_and_old_records_load():
    assert slurm_versions("", "", "") is None
    facts = facts_from_outputs("n", {})
    assert facts.slurm is None
    old = facts.to_dict()
    del old["slurm"]  # a record cached before versions were collected
    assert NodeFacts.from_dict(old).slurm is None


def test_discovery_runs_the_version_commands():
    for name in ("slurm_version", "slurm_packages", "slurm_candidate"):
        assert name in COMMANDS and COMMANDS[name].endswith("true")  # a missing tool is no failure
    assert "LC_ALL=C apt-cache policy slurmctld slurmd" in COMMANDS["slurm_candidate"]
    assert "/usr/sbin/$t" in COMMANDS["slurm_version"]  # not on a non-root PATH on Debian


@pytest.mark.parametrize("text,want", [("22.05.8-4+deb12u3", "22.05.8"), ("26.05.5-1", "26.05.5"),
                                       ("1:23.11.4-1.2", "23.11.4"), ("(none)", None), ("", None),
                                       ("21.08.5-2ubuntu1", "21.08.5")])
def test_upstream_version(text, want):
    assert upstream_version(text) == want


def test_cut_or_garbled_outputs_are_parse_errors():
    policy = fx("apt-cache-policy-debian13-candidate-24.11.5.txt")
    cut = policy[: policy.index("  Candidate")]  # the first block lost its Candidate: line
    with pytest.raises(FactsParseError, match="no Candidate"):
        parse_apt_policy(cut)
    with pytest.raises(FactsParseError, match="DAEMON"):
        parse_slurm_version("slurm-wlm 22.05.8\n")
    with pytest.raises(FactsParseError, match="PACKAGE, VERSION and STATUS"):
        parse_dpkg_query(fx("dpkg-query-W-debian12-22.05.8.txt").split("\t")[0])
    # a daemon that printed something else than its version (synthetic text) gives no version, not an exception
    assert parse_slurm_version("slurmd: not a version line\n") == {}
