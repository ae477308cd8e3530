"""Expected values of the node checks: from the cluster file and the cached facts (real captured outputs)."""

from __future__ import annotations

import json

from slurmkit.cluster import parse_cluster
from slurmkit.discovery import CommandOutput, facts_record
from slurmkit.facts.ib import parse_ibstat
from slurmkit.health import check_node as cn
from slurmkit.health.expected import TOKEN_FILE, expected_values, rails_of, spool_dir

from tests.conftest import hardware_fixture as fixture

TOPO = fixture("topo-05-h100-11nic-ansi-legend-gap-violet-h100-023.txt")
IBSTAT = fixture("ibstat-04-h100-8cx7-plus-bf3-9hca.txt")


def record(host: str, **outputs: str) -> dict:
    rec = facts_record(host, {k: "captured" for k in outputs}, {k: CommandOutput(v, "", 0) for k, v in outputs.items()},
                       time="2025-01-01T00:00:00+00:00")
    return json.loads(json.dumps(rec))


def cluster(extra: str = ""):
    return parse_cluster(f"""
cluster: t
ssh: {{user: root}}
heads: head-1
shared_dir: /shared
nodes:
  - names: node-[1-2]
    sockets: 2
    cores_per_socket: 4
    threads_per_core: 1
    memory_mb: 16000
    gpus: {{type: h100, count: 8, files: "/dev/slurmkit/t/nvidia[0-7]"}}
{extra}""")


def test_declared_cluster(tmp_path):
    c = cluster()
    exp = expected_values(c, tmp_path / "cluster.yaml", ["node-1"], "tok", records={})
    e = exp["node-1"]
    assert e["gpus"] == {"count": 8, "type": "h100", "files": [f"/dev/slurmkit/t/nvidia{k}" for k in range(8)]}
    assert e["memory_mb"] == 16000 and e["rails"] == [] and e["munge"] is True
    assert e["mounts"] == [{"path": "/shared", "token_file": TOKEN_FILE, "token": "tok"}]
    assert e["spool"] == {"path": "/var/spool/slurmd", "min_free_mb": 1024}
    assert spool_dir(cluster("slurm_conf: {SlurmdSpoolDir: /local/slurmd}")) == "/local/slurmd"


def test_rails_from_real_facts_pass_on_the_same_ibstat():
    """The rails discovery found usable on violet's topo matrix + a real ibstat, with their rates: the node
    check passes on that same ibstat and fails when a rail HCA is missing from it."""
    rails = rails_of(record("n1", nvidia_smi_topo=TOPO, ibstat=IBSTAT))
    assert rails and all(r["rate"] for r in rails)
    active = {d.name for d in parse_ibstat(IBSTAT).devices if d.ports[0].state == "ACTIVE"}
    assert {r["hca"] for r in rails} <= active
    assert all(c["ok"] for c in cn.check_ib(rails, IBSTAT))
    first = rails[0]["hca"]
    cut = IBSTAT.replace(f"CA '{first}'", "CA 'gone'")
    assert cn.check_ib(rails, cut)[0] == cn.result("ib-port", False, f"{first} missing")
    assert rails_of(None) == [] and rails_of(record("n1", ibstat=IBSTAT)) == []


def test_a_group_of_several_gpu_types_expects_all_of_them_and_no_one_model(tmp_path):
    c = parse_cluster("""
cluster: t
ssh: {user: root}
heads: head-1
nodes:
  - names: node-[1-2]
    sockets: 2
    cores_per_socket: 4
    threads_per_core: 1
    memory_mb: 16000
    gpus:
      - {type: gtx970, count: 1, files: /dev/nvidia0}
      - {type: gtx1060, count: 1, files: /dev/nvidia1}
""")
    e = expected_values(c, tmp_path / "cluster.yaml", ["node-1"], None, records={})["node-1"]
    assert e["gpus"] == {"count": 2, "type": None, "files": ["/dev/nvidia0", "/dev/nvidia1"]}
    # one type: the model is checked as before
    one = expected_values(cluster(), tmp_path / "cluster.yaml", ["node-2"], None, records={})["node-2"]
    assert one["gpus"]["type"] == "h100" and one["gpus"]["count"] == 8
