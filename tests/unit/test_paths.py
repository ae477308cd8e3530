"""slurmkit.paths: the .slurmkit/ folder beside a cluster file, and the paths in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurmkit.errors import SlurmkitError
from slurmkit.paths import StateDir


def test_state_dir_is_beside_the_cluster_file_resolved(tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path / "site")
    assert StateDir.of("cluster.yaml").root == tmp_path / "site" / ".slurmkit"
    assert StateDir.of(Path("../other/c.yaml")).root == tmp_path / "other" / ".slurmkit"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert StateDir.of("~/clusters/c.yaml").root == tmp_path / "home" / "clusters" / ".slurmkit"


def test_a_symlinked_cluster_file_keeps_its_state_beside_the_real_file(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "c.yaml").write_text("cluster: x\n")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real" / "c.yaml")
    assert StateDir.of(tmp_path / "link.yaml") == StateDir.of(tmp_path / "real" / "c.yaml")
    assert StateDir.of(tmp_path / "link.yaml").root == tmp_path / "real" / ".slurmkit"


def test_every_path_in_the_state_dir(tmp_path):
    s = StateDir.of(tmp_path / "c.yaml")
    root = tmp_path / ".slurmkit"
    assert s.munge_key == root / "munge.key"
    assert (s.mesh_key, s.mesh_public_key) == (root / "mesh_ed25519", root / "mesh_ed25519.pub")
    assert s.facts_dir == root / "facts" and s.facts_file("gpu-node-3") == root / "facts" / "gpu-node-3.json"
    assert s.bench_dir == root / "bench"
    assert s.local_cluster_file("sb1") == root / "local" / "sb1" / "cluster.yaml"
    assert not list(tmp_path.iterdir())  # naming a path creates nothing


def test_local_clusters_live_in_the_current_directorys_state_dir_relative():
    path = StateDir.here().local_cluster_file("sb1")
    assert path == Path(".slurmkit/local/sb1/cluster.yaml") and not path.is_absolute()


def test_what_goes_with_a_cluster_leaves_bench_results(tmp_path):
    s = StateDir.of(tmp_path / "c.yaml")
    assert set(s.cluster_owned) == {s.munge_key, s.mesh_key, s.mesh_public_key, s.facts_dir}
    assert s.bench_dir not in s.cluster_owned
    assert all(p.parent == s.root for p in s.cluster_owned)


@pytest.mark.parametrize("bad", ["", ".", "..", "../etc/passwd", "a/b", "x\0y"])
def test_a_name_that_would_leave_the_state_dir_is_refused(tmp_path, bad):
    s = StateDir.of(tmp_path / "c.yaml")
    with pytest.raises(SlurmkitError, match=r"host name: it must be one path component.*rename the host") as exc:
        s.facts_file(bad)
    assert repr(bad) in str(exc.value)
    with pytest.raises(SlurmkitError, match=r"local cluster name.*give another --name"):
        s.local_cluster_file(bad)


def test_health_keeps_its_state_in_the_state_dir(tmp_path):
    s = StateDir.of(tmp_path / "c.yaml")
    assert s.health_dir == tmp_path / ".slurmkit" / "health"
    assert not list(tmp_path.iterdir())  # naming it creates nothing
