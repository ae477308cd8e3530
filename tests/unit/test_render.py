"""Rendering: golden files for the examples, version differences, folding, and what each file must hold."""

from __future__ import annotations

import pytest

from slurmkit.cluster import parse_cluster
from slurmkit.errors import ConfigError
from slurmkit.render import render_cluster
from tests.golden_files import EXAMPLES, GOLDEN, golden_dir, render_example, versions


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_match_golden_files(example):
    rendered = render_example(example)
    golden = {p.name: p.read_text() for p in (GOLDEN / example.stem).iterdir()}
    assert sorted(rendered) == sorted(golden), "re-record with `make golden` if the change is intended"
    for name, text in rendered.items():
        assert text == golden[name], f"{example.stem}/{name} differs from its golden file (make golden)"


@pytest.mark.parametrize("version", versions())
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_match_golden_files_per_slurm_release(example, version):
    """tests/golden/slurm-<release>/: each example rendered for each supported release but 22.05, whose files
    are the plain ones (checked below to be what rendering for 22.05 gives, byte for byte)."""
    rendered = render_example(example, version)
    golden = {p.name: p.read_text() for p in golden_dir(example, version).iterdir()}
    assert sorted(rendered) == sorted(golden), "re-record with `make golden` if the change is intended"
    for name, text in rendered.items():
        assert text == golden[name], f"slurm-{version}/{example.stem}/{name} differs from its golden file"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_22_05_is_the_plain_golden_files(example):
    plain = {p.name: p.read_text() for p in golden_dir(example).iterdir()}
    assert render_example(example, "22.05") == plain


def test_what_differs_per_release_and_only_that():
    """The differences between the golden files of two releases are the header and the rows of
    slurmkit.slurm_versions.DIFFERENCES: nothing else moves."""
    ex = next(p for p in EXAMPLES if p.stem == "lambda-1cc")
    by = {v: render_example(ex, v) for v in ("21.08", "22.05", "23.11", "24.11", "25.05", "25.11", "26.05")}
    assert "CryptoType=crypto/munge" in lines(by["21.08"]["slurm.conf"]) and "CgroupPlugin=cgroup/v1" in by["21.08"]["cgroup.conf"]
    for v in ("23.11", "24.11", "25.05", "25.11", "26.05"):
        assert "CredType=cred/munge" in lines(by[v]["slurm.conf"]) and "CgroupPlugin=autodetect" in by[v]["cgroup.conf"]
    assert [("CgroupAutomount=yes" in by[v]["cgroup.conf"]) for v in by] == [True, True, True, False, False, False, False]
    for v, files in by.items():
        assert files["gres.conf"].split("\n", 1)[1] == by["22.05"]["gres.conf"].split("\n", 1)[1]  # 21.08 too
        assert files["topology.conf"].split("\n", 1)[1] == by["22.05"]["topology.conf"].split("\n", 1)[1]
        drop = {"CryptoType=crypto/munge", "CredType=cred/munge"}
        assert [ln for ln in lines(files["slurm.conf"]) if ln not in drop] == \
               [ln for ln in lines(by["22.05"]["slurm.conf"]) if ln not in drop]


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_lambda_example_content():
    files = render_example(next(p for p in EXAMPLES if p.stem == "lambda-1cc"))
    slurm = lines(files["slurm.conf"])
    assert [ln for ln in slurm if ln.startswith("SlurmctldHost=")] == [
        "SlurmctldHost=us-east-2-1cc-head-1", "SlurmctldHost=us-east-2-1cc-head-2", "SlurmctldHost=us-east-2-1cc-head-3"]
    for expected in ("ClusterName=us-east-2-1cc", "AuthType=auth/munge", "SelectType=select/cons_tres", "GresTypes=gpu",
                     "TopologyPlugin=topology/tree", "StateSaveLocation=/home/slurm/slurmctld"):
        assert expected in slurm
    assert "SlurmdParameters=config_overrides" not in files["slurm.conf"]  # real profile
    nodes = [ln for ln in slurm if ln.startswith("NodeName=")]
    assert nodes == ["NodeName=us-east-2-1cc-node-[1-64] CPUs=224 Sockets=2 CoresPerSocket=56 ThreadsPerCore=2 "
                     "RealMemory=2000000 Gres=gpu:h100:8 State=UNKNOWN"]
    gres = lines(files["gres.conf"])
    assert gres == [f"NodeName=us-east-2-1cc-node-[1-64] Name=gpu Type=h100 File=/dev/nvidia{i}" for i in range(8)]
    assert lines(files["topology.conf"]) == [
        "SwitchName=leaf1 Nodes=us-east-2-1cc-node-[1-32]", "SwitchName=leaf2 Nodes=us-east-2-1cc-node-[33-64]",
        "SwitchName=spine Switches=leaf[1-2]"]


BASE = """\
cluster: v
slurm_version: "{version}"
profile: {profile}
ssh: {{user: root}}
heads: h
nodes:
  - names: n[1-3]
    sockets: 1
    cores_per_socket: 2
    threads_per_core: 1
    memory_mb: 1000
"""


@pytest.mark.parametrize(
    "version,cred,automount",
    [("22.05", "CryptoType=crypto/munge", True), ("23.11", "CredType=cred/munge", True), ("24.11", "CredType=cred/munge", False)],
)
def test_version_dependent_settings(version, cred, automount):
    files = render_cluster(parse_cluster(BASE.format(version=version, profile="real"))).files
    assert f"for Slurm {version}" in files["slurm.conf"].splitlines()[0]
    assert cred in lines(files["slurm.conf"])
    assert ("CgroupAutomount=yes" in lines(files["cgroup.conf"])) is automount


def test_cpu_only_cluster_has_no_gres_and_no_topology():
    files = render_cluster(parse_cluster(BASE.format(version="22.05", profile="real"))).files
    assert sorted(files) == ["cgroup.conf", "slurm.conf"]
    assert not any(ln.startswith("GresTypes") or ln.startswith("TopologyPlugin") for ln in lines(files["slurm.conf"]))


def test_local_profile_adds_config_overrides_only():
    real = lines(render_cluster(parse_cluster(BASE.format(version="22.05", profile="real"))).files["slurm.conf"])
    local = lines(render_cluster(parse_cluster(BASE.format(version="22.05", profile="local"))).files["slurm.conf"])
    assert sorted(set(local) - set(real)) == ["SlurmdParameters=config_overrides"]
    assert set(real) - set(local) == set()


def test_addresses_fold_only_when_order_is_kept():
    text = BASE.format(version="22.05", profile="real").replace("  - names: n[1-3]", "  - names: n[1-3]\n    addresses: 10.0.0.[7,3,5]")
    nodes = [ln for ln in lines(render_cluster(parse_cluster(text)).files["slurm.conf"]) if ln.startswith("NodeName")]
    # Addresses pair with names in the order written; folding would sort them, so one line per node.
    assert [n.split()[:2] for n in nodes] == [
        ["NodeName=n1", "NodeAddr=10.0.0.7"], ["NodeName=n2", "NodeAddr=10.0.0.3"], ["NodeName=n3", "NodeAddr=10.0.0.5"]]
    text2 = BASE.format(version="22.05", profile="real").replace("  - names: n[1-3]", "  - names: n[1-3]\n    addresses: 10.0.0.[11-13]")
    nodes2 = [ln for ln in lines(render_cluster(parse_cluster(text2)).files["slurm.conf"]) if ln.startswith("NodeName")]
    assert nodes2[0].startswith("NodeName=n[1-3] NodeAddr=10.0.0.[11-13] ")


def test_undeclared_hardware_without_facts_is_an_error_naming_the_fix():
    text = "cluster: v\nssh: {user: root}\nheads: h\nnodes:\n  - names: n[1-2]\n"
    with pytest.raises(ConfigError) as exc:
        render_cluster(parse_cluster(text))
    msg = str(exc.value.problems[0])
    assert msg.startswith("nodes[0]: no hardware for n1") and "slurmkit discover" in msg


def test_render_512_nodes_is_one_line_per_group():
    text = BASE.format(version="22.05", profile="real").replace("n[1-3]", "n[1-512]")
    files = render_cluster(parse_cluster(text)).files
    assert [ln for ln in lines(files["slurm.conf"]) if ln.startswith("NodeName")] == [
        "NodeName=n[1-512] CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN"]


# ---------------------------------------------------------------- the Jinja factory and the data folders

_SETTINGS = ("keep_trailing_newline", "trim_blocks", "lstrip_blocks", "autoescape", "undefined", "newline_sequence",
             "block_start_string", "variable_start_string", "comment_start_string", "optimized", "finalize")


def _settings(env):
    loader = getattr(env.loader, "searchpath", None) if env.loader is not None else None
    return {k: getattr(env, k) for k in _SETTINGS} | {"loader": loader}


def test_jinja_env_has_the_settings_of_each_environment_it_replaces():
    import jinja2

    from slurmkit.resources import data_dir, jinja_env

    tdir = str(data_dir("templates"))
    files = dict(loader=jinja2.FileSystemLoader(tdir), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                 trim_blocks=True, lstrip_blocks=True, autoescape=False)
    cases = [  # (factory call, the environment it replaces, as that module built it)
        (jinja_env(templates=True), jinja2.Environment(**files)),  # render.py, jobs.py
        (jinja_env(), jinja2.Environment(undefined=jinja2.StrictUndefined)),  # provision.py
        (jinja_env(autoescape=True, strict=False), jinja2.Environment(autoescape=True)),  # bench/report.py
    ]
    for made, today in cases:
        assert _settings(made) == _settings(today)
    assert _settings(jinja_env(templates=True))["loader"] == [tdir]


def test_jinja_env_strict_and_filters():
    import jinja2

    from slurmkit.render import kv
    from slurmkit.resources import jinja_env

    with pytest.raises(jinja2.UndefinedError):
        jinja_env().from_string("{{ missing }}").render()
    assert jinja_env(strict=False).from_string("[{{ missing }}]").render() == "[]"
    assert jinja_env(autoescape=True, strict=False).from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    env = jinja_env(filters={"kv": kv})
    assert env.from_string("{{ r | kv }}").render(r={"A": 1, "B": None}) == "A=1"
    assert "kv" not in jinja_env().filters  # filters are per environment, not shared


def test_checkout_is_recognised_by_its_pyproject_not_by_depth(tmp_path):
    from slurmkit.resources import checkout_root, data_dir

    assert (data_dir("templates") / "etc" / "slurm" / "slurm.conf.j2").is_file()
    assert (data_dir("playbooks") / "common.yaml").is_file()
    # an installed package's parent (site-packages) with some other project's templates/ is not a checkout
    site = tmp_path / "site-packages"
    (site / "slurmkit").mkdir(parents=True)
    (site / "templates").mkdir()
    assert checkout_root(site / "slurmkit") is None
    (site / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert checkout_root(site / "slurmkit") is None
    (site / "pyproject.toml").write_text('[project\nname = ')  # not TOML: not a checkout, no crash
    assert checkout_root(site / "slurmkit") is None
    (site / "pyproject.toml").write_text('[build-system]\nrequires = []\n\n[project]\nname = "slurmkit"\n')
    assert checkout_root(site / "slurmkit") == site
    with pytest.raises(ValueError, match="one of templates, playbooks"):
        data_dir("benchmarks")


def test_several_gpu_types_render_one_gres_word_each_and_a_gres_line_per_device():
    c = parse_cluster("""
cluster: t
ssh: {user: root}
heads: head-1
nodes:
  - names: vis-[1-2]
    gpus:
      - {type: gtx970, count: 1, files: /dev/nvidia0}
      - {type: gtx1060, count: 2, files: '/dev/nvidia[1-2]'}
    sockets: 2
    cores_per_socket: 4
    threads_per_core: 1
    memory_mb: 72319
""")
    files = render_cluster(c).files
    assert "NodeName=vis-[1-2] CPUs=8 Sockets=2 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=72319 " \
           "Gres=gpu:gtx970:1,gpu:gtx1060:2 State=UNKNOWN" in lines(files["slurm.conf"])
    assert "GresTypes=gpu" in lines(files["slurm.conf"])
    assert [ln for ln in lines(files["gres.conf"]) if ln.startswith("NodeName=")] == [
        "NodeName=vis-[1-2] Name=gpu Type=gtx970 File=/dev/nvidia0",
        "NodeName=vis-[1-2] Name=gpu Type=gtx1060 File=/dev/nvidia1",
        "NodeName=vis-[1-2] Name=gpu Type=gtx1060 File=/dev/nvidia2",
    ]
