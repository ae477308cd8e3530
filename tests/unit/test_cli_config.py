"""validate and render through the real CLI: one-line errors, exit codes, nothing written on error."""

from __future__ import annotations

import json
import shutil

from tests.conftest import ROOT


def test_validate_bad_file_lists_problems_and_exits_2(tmp_path, cli):
    (tmp_path / "cluster.yaml").write_text("cluster: x\nssh: {user: u}\nheads: h\nnodes:\n  - names: n[1-2]\n    gpus: {type: h100, count: 0}\n")
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == 2
    assert "nodes[0].gpus.count: must be > 0 (line 6)" in r.stderr
    r = cli("validate", "--json", cwd=tmp_path)
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert out["valid"] is False and out["problems"] == [{"path": "nodes[0].gpus.count", "message": "must be > 0 (line 6)"}]


def test_missing_cluster_file_says_how_to_make_one(tmp_path, cli):
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == 2 and "no such file; create one with `slurmkit init`" in r.stderr


def test_env_var_names_the_cluster_file(tmp_path, cli):
    shutil.copy(ROOT / "examples" / "mixed.yaml", tmp_path / "lab.yaml")
    r = cli("render", "-o", "out", cwd=tmp_path, env={"SLURMKIT_CLUSTER": "lab.yaml"})
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cgroup.conf", "gres.conf", "slurm.conf", "topology.conf"]


def test_render_writes_nothing_when_hardware_is_missing(tmp_path, cli):
    (tmp_path / "cluster.yaml").write_text("cluster: x\nssh: {user: u}\nheads: h\nnodes:\n  - names: n[1-2]\n")
    r = cli("render", "-o", "out", cwd=tmp_path)
    assert r.returncode == 2 and "no hardware for n1" in r.stderr
    assert not (tmp_path / "out").exists()


def test_help_teaches_every_command(cli):
    r = cli("--help")
    assert r.returncode == 0
    for name in ("init", "validate", "render"):
        assert f"  {name} " in r.stdout
    r = cli("init", "--help")
    assert "--lambda-nodes" in r.stdout and "--dstack-fleet" in r.stdout and "--tensorpool" in r.stdout
