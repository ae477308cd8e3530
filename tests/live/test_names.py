"""Names that are not hostnames, live: a dstack SSH fleet of a local cluster's IPs (with a proxy_jump head, as
dstack users write one) imported by `slurmkit init --dstack-fleet`; its placeholder names (`<fleet>-node-N`)
are not the hosts' hostnames. Discovery finds each host's own hostname, render calls the hosts by it (NodeAddr:
the fleet's IPs), and a file whose names must stay as written (`slurm_names: as-written`) is refused before
anything is pushed, naming host, inventory name and hostname."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest
import yaml

from slurmkit import hostlist
from slurmkit.facts import parse_ip_addr
from tests.live.localcluster import local_cluster, slurmkit

pytestmark = pytest.mark.live

FLEET = """\
type: fleet
name: {name}
placement: cluster
ssh_config:
  user: root
  identity_file: {key}
  proxy_jump:
    hostname: {head}
    user: root
    identity_file: {key}
  hosts:
{hosts}"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The local cluster (2 computes) and, in a folder of its own, the cluster file `init` wrote from its fleet."""
    with local_cluster(tmp_path_factory.mktemp("names-lc"), computes=2, prefix="sc") as lc:
        work = tmp_path_factory.mktemp("names-fleet")
        ssh = lc.spec["ssh"]
        ips = hostlist.expand(lc.spec["nodes"][0]["addresses"])
        text = FLEET.format(name="dsg", key=ssh["identity_file"], head=lc.spec["heads"]["addresses"],
                            hosts="".join(f"    - {ip}\n" for ip in ips))
        (work / "fleet.dstack.yml").write_text(text)
        slurmkit("init", "--dstack-fleet", "fleet.dstack.yml", "-o", "cluster.yaml", cwd=work)
        data = yaml.safe_load((work / "cluster.yaml").read_text())
        # A dstack user's ~/.ssh/known_hosts holds the hosts' keys; here the local cluster's own file does.
        data["ssh"]["known_hosts"] = ssh["known_hosts"]
        (work / "cluster.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        yield lc, work, data, ips


def test_init_keeps_the_ips_and_discover_finds_the_hostnames(fleet):
    lc, work, data, ips = fleet
    assert data["heads"] == {"names": "dsg-head-1", "addresses": lc.spec["heads"]["addresses"]}
    assert data["nodes"][0]["names"] == "dsg-node-[1-2]" and data["nodes"][0]["addresses"] == ",".join(ips)
    slurmkit("-c", "cluster.yaml", "discover", cwd=work)
    for inventory, own in [("dsg-head-1", f"{lc.name}-head-1"), ("dsg-node-1", f"{lc.name}-node-1"),
                           ("dsg-node-2", f"{lc.name}-node-2")]:
        record = json.loads((work / ".slurmkit" / "facts" / f"{inventory}.json").read_text())
        assert record["facts"]["short_hostname"] == own
    conf = slurmkit("-c", "cluster.yaml", "render", "--stdout", cwd=work).stdout.splitlines()
    # the head is reached (proxy_jump) on its management address, which the computes have no route to: the
    # controller's address is the head's own on the computes' network
    held = parse_ip_addr(lc.head("ip -o -4 addr show").stdout)
    private = [a.address for a in held
               if ipaddress.ip_address(ips[0]) in ipaddress.ip_network(f"{a.address}/{a.prefixlen}", strict=False)]
    assert len(private) == 1 and private[0] != lc.spec["heads"]["addresses"]
    assert f"SlurmctldHost={lc.name}-head-1({private[0]})" in conf
    nodes = [ln for ln in conf if ln.startswith("NodeName=")]
    assert len(nodes) == 1 and nodes[0].startswith(f"NodeName={lc.name}-node-[1-2] NodeAddr={hostlist.fold(ips)} ")
    assert any(ln.startswith(f"PartitionName=batch Nodes={lc.name}-node-[1-2] ") for ln in conf)


def test_names_that_must_stay_as_written_are_refused_before_anything_is_pushed(fleet):
    lc, work, data, ips = fleet
    (work / "as-written.yaml").write_text(yaml.safe_dump({**data, "slurm_names": "as-written"}, sort_keys=False))
    t0 = time.monotonic()
    r = slurmkit("-c", "as-written.yaml", "bootstrap", "--dry-run", cwd=work, check=False, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stderr
    assert (f"heads.names: host {lc.spec['heads']['addresses']}: inventory name dsg-head-1, its hostname is "
            f"{lc.name}-head-1; with slurm_names: as-written") in r.stderr
    for i, ip in enumerate(ips, 1):
        assert f"nodes[0].names: host {ip}: inventory name dsg-node-{i}, its hostname is {lc.name}-node-{i}" in r.stderr
    # refused before anything was pushed: no host has a slurm.conf or a munge key from slurmkit
    for node in (f"{lc.name}-head-1", f"{lc.name}-node-1", f"{lc.name}-node-2"):
        assert lc.on(node, "test -e /etc/slurm/slurm.conf", check=False).returncode == 1, node
    assert not (work / ".slurmkit" / "munge.key").exists()
    assert took < 30, took  # a bound only against a hang (a timeout was the old failure), not a speed claim


def test_the_fleet_bootstraps_and_runs_srun_on_the_nodes_own_hostnames(fleet):
    lc, work, data, ips = fleet
    p = slurmkit("-c", "cluster.yaml", "bootstrap", "--json", cwd=work, check=False, timeout=600)
    out = json.loads(p.stdout)
    assert p.returncode == 0, json.dumps(out, indent=1)[-5000:]
    # reported by the cluster file's names; Slurm knows them by their own
    assert out["failed_hosts"] == [] and sorted(out["node_states"]) == ["dsg-node-1", "dsg-node-2"]
    assert set(out["node_states"].values()) == {"IDLE"}
    names = sorted(lc.head("srun -N2 hostname").stdout.split())
    assert names == [f"{lc.name}-node-1", f"{lc.name}-node-2"]
    # a second run changes nothing, and the probe's node list read under the hostnames settles it
    p = slurmkit("-c", "cluster.yaml", "bootstrap", "--json", cwd=work, check=False, timeout=600)
    again = json.loads(p.stdout)
    assert p.returncode == 0 and again["changed"] == 0 and again["failed_hosts"] == [], json.dumps(again)[:4000]
