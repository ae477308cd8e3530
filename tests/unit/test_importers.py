"""`slurmkit init`: each importer writes a cluster file that `validate` accepts; bad inputs write nothing."""

from __future__ import annotations

import textwrap

import yaml

LAMBDA_NODES = """\
us-east-2-1cc-head-1
us-east-2-1cc-head-2
us-east-2-1cc-head-3
us-east-2-1cc-node-1
us-east-2-1cc-node-2
us-east-2-1cc-node-10
"""

SSH_CONFIG = """\
Host us-east-2-1cc-head-*
  HostName 192.0.2.{n}
  User ubuntu
  IdentityFile {key}

Host us-east-2-1cc-node-*
  User ubuntu
  IdentityFile {key}
  ProxyJump us-east-2-1cc-head-1
"""


def test_lambda_nodes_with_ssh_config(tmp_path, cli):
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key")
    (tmp_path / "nodes.txt").write_text(LAMBDA_NODES)
    (tmp_path / "config.us-east-2-1cc").write_text(SSH_CONFIG.replace("{key}", str(key)).replace("{n}", "10"))
    r = cli("init", "--lambda-nodes", "nodes.txt", "--ssh-config", "config.us-east-2-1cc", "-o", "cluster.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((tmp_path / "cluster.yaml").read_text())
    assert data["cluster"] == "us-east-2-1cc"
    assert data["heads"] == "us-east-2-1cc-head-[1-3]"
    assert data["nodes"] == [{"names": "us-east-2-1cc-node-[1-2,10]", "gpus": {"type": "h100", "count": 8}, "rails": 8}]
    assert data["ssh"] == {"user": "ubuntu", "identity_file": str(key), "proxy_jump": "us-east-2-1cc-head-1",
                           "config_file": "config.us-east-2-1cc"}
    v = cli("-c", "cluster.yaml", "validate", cwd=tmp_path)
    assert v.returncode == 0, v.stderr
    assert "3 head(s)" in v.stdout and "3 compute node(s)" in v.stdout and "24 GPU(s)" in v.stdout


def test_lambda_nodes_without_ssh_config_jumps_through_first_head(tmp_path, cli):
    (tmp_path / "nodes.txt").write_text(LAMBDA_NODES)
    r = cli("init", "--lambda-nodes", "nodes.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((tmp_path / "cluster.yaml").read_text())
    assert data["ssh"] == {"user": "ubuntu", "proxy_jump": "ubuntu@us-east-2-1cc-head-1"}
    assert cli("validate", cwd=tmp_path).returncode == 0


def test_lambda_bad_line_writes_nothing(tmp_path, cli):
    (tmp_path / "nodes.txt").write_text(LAMBDA_NODES + "gpu-box-7\n")
    r = cli("init", "--lambda-nodes", "nodes.txt", cwd=tmp_path)
    assert r.returncode == 2
    assert "line 7: 'gpu-box-7' is not a 1CC node name" in r.stderr
    assert not (tmp_path / "cluster.yaml").exists()


def test_lambda_without_heads(tmp_path, cli):
    (tmp_path / "nodes.txt").write_text("c-node-1\nc-node-2\n")
    r = cli("init", "--lambda-nodes", "nodes.txt", cwd=tmp_path)
    assert r.returncode == 2 and "no head node" in r.stderr


FLEET = """\
type: fleet
name: my-fleet
placement: cluster
ssh_config:
  user: ubuntu
  identity_file: {key}
  proxy_jump:
    hostname: 3.255.177.51
    user: ubuntu
    identity_file: {key}
  hosts:
    - 10.0.0.11
    - hostname: 10.0.0.12
    - 10.0.0.13
"""


def test_dstack_fleet(tmp_path, cli):
    key = tmp_path / "k"
    key.write_text("k")
    (tmp_path / "fleet.dstack.yml").write_text(FLEET.replace("{key}", str(key)))
    r = cli("init", "--dstack-fleet", "fleet.dstack.yml", "--gpu-type", "h100", "--gpus-per-node", "8", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((tmp_path / "cluster.yaml").read_text())
    assert data["heads"] == {"names": "my-fleet-head-1", "addresses": "3.255.177.51"}
    assert data["nodes"][0]["names"] == "my-fleet-node-[1-3]"
    assert data["nodes"][0]["addresses"] == "10.0.0.11,10.0.0.12,10.0.0.13"
    assert data["ssh"]["proxy_jump"] == "ubuntu@3.255.177.51"
    assert cli("validate", cwd=tmp_path).returncode == 0


def test_dstack_fleet_host_with_other_user_is_refused(tmp_path, cli):
    text = FLEET.replace("{key}", "/k").replace("    - hostname: 10.0.0.12\n", "    - hostname: 10.0.0.12\n      user: root\n")
    (tmp_path / "f.yml").write_text(text)
    r = cli("init", "--dstack-fleet", "f.yml", cwd=tmp_path)
    assert r.returncode == 2
    assert "ssh_config.hosts[1].user: 'root' differs from ssh_config.user 'ubuntu'" in r.stderr
    assert not (tmp_path / "cluster.yaml").exists()


def test_tensorpool(tmp_path, cli):
    r = cli("init", "--tensorpool", "tp-7f3a2c", "--workers", "2", "--gpu-type", "h200", "--gpus-per-node", "8",
            "-o", "tp.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load((tmp_path / "tp.yaml").read_text())
    assert data["heads"] == "tp-7f3a2c-jumphost"
    assert data["nodes"] == [{"names": "tp-7f3a2c-[0-1]", "gpus": {"type": "h200", "count": 8}}]
    assert data["ssh"] == {"user": "ubuntu", "proxy_jump": "ubuntu@tp-7f3a2c-jumphost"}
    assert cli("-c", "tp.yaml", "validate", cwd=tmp_path).returncode == 0


def test_init_refuses_to_overwrite_and_needs_one_source(tmp_path, cli):
    (tmp_path / "cluster.yaml").write_text("keep me")
    r = cli("init", "--tensorpool", "tp", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 2 and "already exists; use --force" in r.stderr
    assert (tmp_path / "cluster.yaml").read_text() == "keep me"
    r = cli("init", cwd=tmp_path)
    assert r.returncode == 2 and "exactly one of" in r.stderr
    r = cli("init", "--tensorpool", "tp", "--workers", "0", "--force", cwd=tmp_path)
    assert r.returncode == 2 and "--workers: must be >= 1" in r.stderr
