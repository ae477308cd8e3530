"""`slurmkit init --from-slurm-conf` / `--from-head` through the real command (the adoption itself is tested in
test_adopt.py and, over SSH on a real head, in tests/live/test_adopt_head.py)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from slurmkit.cli import cli
from slurmkit.cluster import load_cluster

CONF = Path(__file__).resolve().parent.parent / "fixtures" / "slurm-conf"


def test_init_from_slurm_conf_writes_a_cluster_file_that_validates(tmp_path):
    out = tmp_path / "cluster.yaml"
    key = tmp_path / "id_ed25519"
    key.write_text("not read by validate, only checked to exist\n")
    r = CliRunner().invoke(cli, ["init", "--from-slurm-conf", str(CONF / "ocotillo-multi-gpu" / "slurm.conf"),
                                 "-o", str(out), "--identity-file", str(key)])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and "not kept: " in r.output
    c = load_cluster(out)
    assert c.ssh.identity_file == str(key) and c.compute_names
    v = CliRunner().invoke(cli, ["-c", str(out), "validate"])
    assert v.exit_code == 0, v.output


def test_init_takes_one_source_only(tmp_path):
    conf = str(CONF / "ocotillo-multi-gpu" / "slurm.conf")
    for extra in (["--dstack-fleet", conf], ["--from-head", "h1"]):
        r = CliRunner().invoke(cli, ["init", "--from-slurm-conf", conf, *extra, "-o", str(tmp_path / "c.yaml")])
        assert r.exit_code == 2 and "give exactly one of" in r.output, r.output
    assert not (tmp_path / "c.yaml").exists()


def test_init_help_teaches_adoption():
    r = CliRunner().invoke(cli, ["init", "--help"])
    assert r.exit_code == 0
    for opt in ("--from-slurm-conf", "--gres-conf", "--topology-conf", "--from-head", "--known-hosts"):
        assert opt in r.output
