"""The nodes decide the Slurm version: slurmkit.slurm_versions.resolve_target through hardware.hardware_source
(what render, bootstrap, demo, bench and the support bundle call) and the CLI's validate/render, on facts records
built from the real outputs in tests/fixtures/slurm-version/ (22.05.8, 24.11.5, 26.05.5)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from slurmkit.cluster import load_cluster, parse_cluster
from slurmkit.discovery import CommandOutput, facts_record
from slurmkit.errors import ConfigError
from slurmkit.facts import NodeFacts, SlurmVersions
from slurmkit.hardware import hardware_source, slurm_target, write_facts
from slurmkit.render import render_cluster
from slurmkit.slurm_versions import DIFFERENCES, SUPPORTED, accepts, resolve_target
from tests.conftest import FIXTURES

DIR = FIXTURES / "slurm-version"
V = {"22.05": ("debian12", "22.05.8"), "24.11": ("debian13", "24.11.5"), "26.05": ("debiansid", "26.05.5")}

TEXT = """\
cluster: v
ssh: {user: root}
heads: h1
nodes:
  - names: n[1-2]
    sockets: 1
    cores_per_socket: 2
    threads_per_core: 1
    memory_mb: 1000
"""


def record(host: str, release: str, installed: bool = True) -> dict:
    """A cache record as discovery writes it: the real outputs of a node with Slurm ``release`` installed, or
    (``installed=False``) of a bare image whose apt would install it."""
    image, version = V[release]
    if installed:
        outputs = {"slurm_version": f"slurm-V-{image}-{version}.txt", "slurm_packages": f"dpkg-query-W-{image}-{version}.txt",
                   "slurm_candidate": f"apt-cache-policy-{image}-installed-{version}.txt"}
    else:
        outputs = {"slurm_version": None, "slurm_packages": f"dpkg-query-W-{image}-none.txt",
                   "slurm_candidate": f"apt-cache-policy-{image}-candidate-{version}.txt"}
    texts = {k: (DIR / f).read_text() if f else "" for k, f in outputs.items()}
    rec = facts_record(host, {k: "captured" for k in texts}, {k: CommandOutput(v, "", 0) for k, v in texts.items()},
                       time="2025-01-01T00:00:00+00:00")
    return json.loads(json.dumps(rec))


def cluster_with(tmp_path, versions: dict[str, str], text: str = TEXT, installed: bool = True):
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    for host, release in versions.items():
        write_facts(path, host, record(host, release, installed))
    return load_cluster(path), path


def problem_texts(exc) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_no_facts_no_pin_is_22_05_with_a_note(tmp_path):
    c, path = cluster_with(tmp_path, {})
    rendered = render_cluster(c, hardware_source(c, path))
    assert rendered.target.release == "22.05" and rendered.target.source == "default"
    assert "slurmkit discover" in rendered.target.note and "pin slurm_version" in rendered.target.note
    assert rendered.files["slurm.conf"].startswith("# Rendered by slurmkit 0.1.0 for Slurm 22.05 ")


@pytest.mark.parametrize("release", ["22.05", "24.11", "26.05"])
def test_render_targets_what_the_nodes_run(tmp_path, release):
    c, path = cluster_with(tmp_path, {"h1": release, "n1": release, "n2": release})
    rendered = render_cluster(c, hardware_source(c, path))
    assert rendered.target.release == release and rendered.target.source == "nodes" and rendered.target.note is None
    assert f"for Slurm {release} " in rendered.files["slurm.conf"].splitlines()[0]
    cred = DIFFERENCES["cred"].at(release)
    assert cred in rendered.files["slurm.conf"].splitlines()
    assert ("CgroupAutomount=yes" in rendered.files["cgroup.conf"]) is (release == "22.05")


def test_candidate_decides_where_nothing_is_installed(tmp_path):
    c, path = cluster_with(tmp_path, {"h1": "24.11", "n1": "24.11", "n2": "24.11"}, installed=False)
    target = hardware_source(c, path).slurm_target
    assert target.release == "24.11" and {hv.source for hv in target.hosts} == {"candidate"}


def test_a_pin_the_nodes_contradict_names_hosts_and_versions(tmp_path):
    c, path = cluster_with(tmp_path, {"h1": "22.05", "n1": "24.11", "n2": "24.11"},
                           TEXT.replace("cluster: v\n", "cluster: v\nslurm_version: '22.05'\n"))
    with pytest.raises(ConfigError) as exc:
        hardware_source(c, path)
    assert exc.value.source == str(path)
    assert "slurm_version: pin slurm_version 22.05, but nodes n[1-2] run 24.11.5: install Slurm 22.05 there, or " \
           "change or remove the pin" in problem_texts(exc)


def test_a_pin_the_nodes_agree_with(tmp_path):
    c, path = cluster_with(tmp_path, {"h1": "24.11", "n1": "24.11"},
                           TEXT.replace("cluster: v\n", "cluster: v\nslurm_version: '24.11'\n"))
    assert slurm_target(c, path).release == "24.11"
    (tmp_path / "nofacts").mkdir()
    c2, path2 = cluster_with(tmp_path / "nofacts", {}, TEXT.replace("cluster: v\n", "cluster: v\nslurm_version: '26.05'\n"))
    target = slurm_target(c2, path2)
    assert target.source == "pin" and target.release == "26.05"
    assert "for Slurm 26.05 " in render_cluster(c2, hardware_source(c2, path2)).files["slurm.conf"]


def test_mixed_supported_pair_renders_for_the_oldest(tmp_path):
    """24.11 (Debian 13) computes under a 26.05 (sid) head: 26.05 accepts 24.11 (three releases since 24.11)."""
    c, path = cluster_with(tmp_path, {"h1": "26.05", "n1": "24.11", "n2": "24.11"})
    rendered = render_cluster(c, hardware_source(c, path))
    assert rendered.target.release == "24.11"
    assert "rendering for the oldest, 24.11 (slurmctld must be >= every slurmd" in rendered.target.note
    assert "n[1-2] run 24.11.5, h1 runs 26.05.5" in rendered.target.note


def test_mixed_outside_the_upgrade_window_is_refused(tmp_path):
    c, path = cluster_with(tmp_path, {"h1": "24.11", "n1": "22.05", "n2": "24.11"})
    with pytest.raises(ConfigError) as exc:
        hardware_source(c, path)
    assert problem_texts(exc) == ["slurm_version: mixed Slurm versions: n1 runs 22.05.8, h1,n2 run 24.11.5; Slurm "
                                  "24.11 accepts only the 3 releases before it, not 22.05: upgrade the older hosts"]


def test_a_head_older_than_a_compute_node_is_refused(tmp_path):
    c, path = cluster_with(tmp_path, {"h1": "24.11", "n1": "26.05", "n2": "26.05"})
    with pytest.raises(ConfigError) as exc:
        hardware_source(c, path)
    assert "a head runs older than a compute node (slurmctld must be >= every slurmd)" in problem_texts(exc)[0]


def test_unsupported_release_on_the_nodes_and_two_on_one_host():
    facts = {"a": NodeFacts("a", slurm=SlurmVersions(daemons={"slurmd": "23.02.7"})),
             "b": NodeFacts("b", slurm=SlurmVersions(daemons={"slurmd": "24.11.5"}, packages={"slurmd": "26.05.5"}))}
    with pytest.raises(ConfigError) as exc:
        resolve_target(None, facts)
    msgs = problem_texts(exc)
    assert "slurm_version: b has Slurm 24.11.5 and 26.05.5 installed: remove all but one" in msgs
    assert any("a runs 23.02.7: not a release slurmkit renders for; supported: 21.08, 22.05, 23.11" in m for m in msgs)


def test_records_cached_before_versions_existed_still_load(tmp_path):
    c, path = cluster_with(tmp_path, {"n1": "24.11"})
    old = record("n1", "24.11")
    del old["facts"]["slurm"]
    for k in ("slurm_version", "slurm_packages", "slurm_candidate"):
        old["outputs"].pop(k)
    write_facts(path, "n1", old)
    assert hardware_source(c, path).slurm_target.source == "default"


def test_upgrade_window():
    assert accepts("22.05", "21.08") and accepts("23.11", "22.05") and not accepts("23.11", "21.08")
    assert accepts("26.05", "24.11") and not accepts("26.05", "24.05") and accepts("24.11", "23.02")
    assert not accepts("22.05", "23.11")  # older never accepts newer


def test_render_refuses_a_target_outside_the_supported_set():
    c = parse_cluster(TEXT)
    with pytest.raises(ConfigError) as exc:
        render_cluster(c, version="23.02")
    assert problem_texts(exc) == [f"slurm_version: Slurm 23.02 is not a release slurmkit renders for; supported: "
                                  f"{', '.join(SUPPORTED)}"]


def test_validate_and_render_cli_say_the_target(tmp_path):
    from slurmkit.cli import cli as main

    _, path = cluster_with(tmp_path, {"h1": "26.05", "n1": "24.11", "n2": "24.11"})
    r = CliRunner().invoke(main, ["-c", str(path), "validate"])
    assert r.exit_code == 0 and "Slurm 24.11 (from the nodes' facts)." in r.output
    r = CliRunner().invoke(main, ["-c", str(path), "validate", "--json"])
    assert json.loads(r.stdout)["slurm_version"] == "24.11"
    r = CliRunner().invoke(main, ["-c", str(path), "render", "--stdout"])
    assert r.exit_code == 0 and "for Slurm 24.11 (profile real)" in r.stdout
    assert "note: mixed Slurm versions" in r.stderr
    write_facts(path, "n1", record("n1", "22.05"))
    r = CliRunner().invoke(main, ["-c", str(path), "validate", "--json"])
    assert r.exit_code == 2 and "mixed Slurm versions" in json.loads(r.stdout)["problems"][0]["message"]
