"""What Slurm calls each host: its own short hostname from the cached facts (slurmkit.hardware.slurm_names), the
cluster file's name or address as NodeAddr; the check of names that cannot work (hardware_source refuses them)."""

from __future__ import annotations

import pytest

from slurmkit import importers
from slurmkit.cluster import dump_cluster, parse_cluster
from slurmkit.discovery import CommandOutput, facts_record
from slurmkit.errors import ConfigError
from slurmkit.facts import COMMANDS
from slurmkit.hardware import check_names, hardware_source, inventory_names, slurm_names, write_facts
from slurmkit.render import render_cluster
from tests.unit.test_importers import FLEET

SLURMD_C = ("NodeName={name} CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 "
            "RealMemory=3900\nUpTime=0-01:00:00\n")


def record(inventory: str, hostname: str | None) -> dict:
    """A facts record as discovery writes it; the host's slurmd -C and hostname outputs only."""
    outputs = {name: CommandOutput("", "", 0) for name in COMMANDS}
    if hostname is not None:
        outputs["hostname"] = CommandOutput(hostname + "\n", "", 0)
        outputs["slurmd"] = CommandOutput(SLURMD_C.format(name=hostname), "", 0)
    return facts_record(inventory, COMMANDS, outputs, time="2026-01-01T00:00:00+00:00")


def fleet_cluster(extra: str = ""):
    """The cluster file `init --dstack-fleet` writes from the importer tests' fleet (hosts by IP, proxy_jump)."""
    data = importers.from_dstack_fleet(FLEET.replace("{key}", "/k"), "fleet.dstack.yml")
    return parse_cluster(dump_cluster(data) + extra)


HOSTNAMES = {"my-fleet-head-1": "dsg-head-1", "my-fleet-node-1": "ip-10-0-0-11", "my-fleet-node-2": "ip-10-0-0-12",
             "my-fleet-node-3": "ip-10-0-0-13"}


def test_importer_keeps_the_ips_as_addresses_and_names_are_placeholders():
    c = fleet_cluster()
    assert [(h.name, h.address) for h in c.hosts()] == [
        ("my-fleet-head-1", "3.255.177.51"), ("my-fleet-node-1", "10.0.0.11"), ("my-fleet-node-2", "10.0.0.12"),
        ("my-fleet-node-3", "10.0.0.13")]
    assert c.slurm_names == "hostname"
    # no facts yet: the placeholders are the Slurm names
    assert slurm_names(c, {}) == {n: n for n in HOSTNAMES}


def test_slurm_names_are_the_hosts_own_hostnames_where_found():
    c = fleet_cluster()
    records = {n: record(n, h) for n, h in HOSTNAMES.items() if n != "my-fleet-node-3"}
    records["my-fleet-node-3"] = record("my-fleet-node-3", None)  # a record cached before hostnames were asked
    names = slurm_names(c, records)
    assert names == {**{n: h for n, h in HOSTNAMES.items()}, "my-fleet-node-3": "my-fleet-node-3"}
    assert inventory_names(names)["dsg-head-1"] == "my-fleet-head-1"
    assert check_names(c, records) == []


def test_render_calls_hosts_by_hostname_and_reaches_them_by_the_cluster_files_address(tmp_path):
    c = fleet_cluster("topology:\n  switches:\n    - {name: leaf1, nodes: 'my-fleet-node-[1-3]'}\n")
    f = tmp_path / "cluster.yaml"
    f.write_text("")
    for n, h in HOSTNAMES.items():
        write_facts(f, n, record(n, h))
    files = render_cluster(c, hardware_source(c, f)).files
    conf = files["slurm.conf"].splitlines()
    assert "SlurmctldHost=dsg-head-1(3.255.177.51)" in conf
    assert "NodeName=ip-10-0-0-[11-13] NodeAddr=10.0.0.[11-13] CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 " \
           "RealMemory=3072 State=UNKNOWN" in conf
    assert "PartitionName=batch Nodes=ip-10-0-0-[11-13] Default=YES MaxTime=INFINITE State=UP" in conf
    assert not any("my-fleet-node" in ln or "my-fleet-head" in ln for ln in conf)  # no placeholder left
    assert "SwitchName=leaf1 Nodes=ip-10-0-0-[11-13]" in files["topology.conf"].splitlines()


def test_names_found_but_not_folded_pair_with_their_addresses(tmp_path):
    c = fleet_cluster()
    f = tmp_path / "cluster.yaml"
    f.write_text("")
    for n, h in {"my-fleet-node-1": "b", "my-fleet-node-2": "a", "my-fleet-node-3": "c"}.items():
        write_facts(f, n, record(n, h))
    conf = render_cluster(c, hardware_source(c, f)).files["slurm.conf"]
    nodes = [ln.split()[:2] for ln in conf.splitlines() if ln.startswith("NodeName=")]
    assert sorted(nodes) == [["NodeName=a", "NodeAddr=10.0.0.12"], ["NodeName=b", "NodeAddr=10.0.0.11"],
                             ["NodeName=c", "NodeAddr=10.0.0.13"]]
    assert "SlurmctldHost=my-fleet-head-1\n" in conf  # the head has no facts: its cluster-file name, as before


def test_gres_conf_names_the_nodes_by_hostname(tmp_path):
    c = parse_cluster("""\
cluster: g
profile: local  # simulated GPUs: no nvidia-smi facts to hold against them
ssh: {user: u}
heads: g-head
nodes:
  - names: g-[1-2]
    gpus: {type: h100, count: 2}
    sockets: 1
    cores_per_socket: 2
    threads_per_core: 1
    memory_mb: 1000
""")
    f = tmp_path / "cluster.yaml"
    f.write_text("")
    write_facts(f, "g-1", record("g-1", "gpu-a1"))
    write_facts(f, "g-2", record("g-2", "gpu-a2"))
    files = render_cluster(c, hardware_source(c, f)).files
    assert "NodeName=gpu-a[1-2] NodeAddr=g-[1-2] " in files["slurm.conf"]
    assert files["gres.conf"].splitlines()[-2:] == ["NodeName=gpu-a[1-2] Name=gpu Type=h100 File=/dev/nvidia0",
                                                    "NodeName=gpu-a[1-2] Name=gpu Type=h100 File=/dev/nvidia1"]


def refused(c, records, tmp_path) -> ConfigError:
    f = tmp_path / "cluster.yaml"
    f.write_text("")
    for n, r in records.items():
        write_facts(f, n, r)
    with pytest.raises(ConfigError) as e:
        hardware_source(c, f)
    return e.value


def test_as_written_names_that_are_not_hostnames_are_refused_naming_host_name_and_hostname(tmp_path):
    c = fleet_cluster("slurm_names: as-written\n")
    records = {n: record(n, h) for n, h in HOSTNAMES.items()}
    err = refused(c, records, tmp_path)
    text = str(err)
    assert len(err.problems) == 4
    assert err.problems[0].path == "heads.names"
    assert ("host 3.255.177.51: inventory name my-fleet-head-1, its hostname is dsg-head-1; with slurm_names: "
            "as-written") in err.problems[0].message
    assert err.problems[2].path == "nodes[0].names"
    assert "host 10.0.0.12: inventory name my-fleet-node-2, its hostname is ip-10-0-0-12" in text
    # written as the hosts are called: accepted, and rendered as written
    ok = {n: record(n, n) for n in HOSTNAMES}
    assert check_names(c, ok) == []
    assert slurm_names(c, ok) == {n: n for n in HOSTNAMES}


def test_two_hosts_with_one_hostname_are_refused(tmp_path):
    c = fleet_cluster()
    records = {n: record(n, h) for n, h in HOSTNAMES.items()}
    records["my-fleet-node-3"] = record("my-fleet-node-3", "ip-10-0-0-11")
    err = refused(c, records, tmp_path)
    assert [p.path for p in err.problems] == ["nodes[0].names"]
    assert err.problems[0].message.startswith(
        "host 10.0.0.13 (inventory name my-fleet-node-3) has hostname ip-10-0-0-11, as 10.0.0.11 (inventory name "
        "my-fleet-node-1) does")


def test_a_host_without_facts_keeping_a_name_another_host_reports_is_refused(tmp_path):
    c = fleet_cluster()
    records = {"my-fleet-node-1": record("my-fleet-node-1", "my-fleet-node-2")}
    err = refused(c, records, tmp_path)
    assert "Slurm would call 2 hosts" in err.problems[0].message


@pytest.mark.parametrize("bad", ["localhost", "(none)", "a,b", "node[1]", "_x"])
def test_a_hostname_that_cannot_be_a_slurm_node_name_is_refused(tmp_path, bad):
    c = fleet_cluster()
    records = {n: record(n, h) for n, h in HOSTNAMES.items()}
    records["my-fleet-node-2"] = record("my-fleet-node-2", bad)
    err = refused(c, records, tmp_path)
    assert [p.path for p in err.problems] == ["nodes[0].names"]
    assert f"host 10.0.0.12: inventory name my-fleet-node-2, its hostname {bad!r} cannot be a Slurm node name" \
        in err.problems[0].message


def test_slurm_names_option_is_checked():
    from slurmkit.errors import ConfigError as CE
    with pytest.raises(CE) as e:
        fleet_cluster("slurm_names: hostnames\n")
    assert e.value.problems[0].path == "slurm_names"


def test_init_writes_placeholders_and_validate_names_host_inventory_name_and_hostname(tmp_path, cli):
    (tmp_path / "k").write_text("k")
    (tmp_path / "fleet.dstack.yml").write_text(FLEET.replace("{key}", str(tmp_path / "k")))
    r = cli("init", "--dstack-fleet", "fleet.dstack.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "cluster.yaml").read_text()
    assert "Slurm calls each host by its own hostname, which `slurmkit discover` finds" in text
    (tmp_path / "cluster.yaml").write_text(text + "slurm_names: as-written\n")
    write_facts(tmp_path / "cluster.yaml", "my-fleet-node-1", record("my-fleet-node-1", "ip-10-0-0-11"))
    v = cli("validate", cwd=tmp_path)
    assert v.returncode == 2
    assert "nodes[0].names: host 10.0.0.11: inventory name my-fleet-node-1, its hostname is ip-10-0-0-11" in v.stderr


def _rendered(data: dict, hostnames: dict[str, str], tmp_path) -> str:
    c = parse_cluster(dump_cluster(data))
    f = tmp_path / "cluster.yaml"
    f.write_text("")
    for n, h in hostnames.items():
        write_facts(f, n, record(n, h))
    return render_cluster(c, hardware_source(c, f)).files["slurm.conf"]


def test_tensorpool_workers_by_name_reached_by_that_name_when_their_hostnames_differ(tmp_path):
    data = importers.from_tensorpool("tp-7f3a2c", 2)
    assert data["heads"] == "tp-7f3a2c-jumphost" and "addresses" not in data["nodes"][0]  # the names, as given
    same = _rendered(data, {"tp-7f3a2c-jumphost": "tp-7f3a2c-jumphost", "tp-7f3a2c-0": "tp-7f3a2c-0",
                            "tp-7f3a2c-1": "tp-7f3a2c-1"}, tmp_path)
    assert "SlurmctldHost=tp-7f3a2c-jumphost\n" in same and "NodeName=tp-7f3a2c-[0-1] CPUs=2" in same
    other = _rendered(data, {"tp-7f3a2c-jumphost": "jump", "tp-7f3a2c-0": "worker0", "tp-7f3a2c-1": "worker1"},
                      tmp_path)
    assert "SlurmctldHost=jump(tp-7f3a2c-jumphost)\n" in other
    assert "NodeName=worker[0-1] NodeAddr=tp-7f3a2c-[0-1] CPUs=2" in other


def test_lambda_names_that_are_the_hostnames_render_as_before(tmp_path):
    from tests.unit.test_importers import LAMBDA_NODES

    data = importers.from_lambda_nodes(LAMBDA_NODES, "nodes.txt")
    c = parse_cluster(dump_cluster(data))
    # every host reports the name the 1CC's node list gives it: the Slurm names are those names
    assert slurm_names(c, {h.name: record(h.name, h.name) for h in c.hosts()}) == {h.name: h.name for h in c.hosts()}
    # rendered with the heads' facts (the computes' hardware declared: no GPU facts to hold against 8 GPUs)
    data["nodes"][0].update(sockets=2, cores_per_socket=56, threads_per_core=2, memory_mb=2000000)
    conf = _rendered(data, {n: n for n in c.head_names}, tmp_path)
    assert [ln for ln in conf.splitlines() if ln.startswith("SlurmctldHost=")] == [
        "SlurmctldHost=us-east-2-1cc-head-1", "SlurmctldHost=us-east-2-1cc-head-2", "SlurmctldHost=us-east-2-1cc-head-3"]
    assert "NodeAddr" not in conf
    assert "PartitionName=gpu Nodes=us-east-2-1cc-node-[1-2,10] " in conf


def test_the_controller_is_given_the_address_the_computes_reach_it_on(tmp_path):
    """The local cluster's real `ip -o -4 addr` outputs: the head is reached (proxy_jump) on its management
    address 10.167.186.11, which the computes (10.167.187.11-12, eth0 only) have no route to; its eth1
    10.167.187.1 is on their network."""
    from slurmkit.hardware import controller_addresses
    from tests.conftest import hardware_fixture

    fleet = FLEET.replace("{key}", "/k").replace("3.255.177.51", "10.167.186.11")
    fleet = fleet.replace("10.0.0.11", "10.167.187.11").replace("10.0.0.12", "10.167.187.12")
    fleet = fleet.replace("    - 10.0.0.13\n", "")
    c = parse_cluster(dump_cluster(importers.from_dstack_fleet(fleet, "fleet.dstack.yml")))

    def rec(inv, host, fixture):
        r = record(inv, host)
        r["outputs"]["ip_addr"] = hardware_fixture(fixture)
        from slurmkit.facts import facts_from_outputs
        r["facts"] = facts_from_outputs(inv, r["outputs"]).to_dict()
        return r

    records = {"my-fleet-head-1": rec("my-fleet-head-1", "lc-head-1", "ip-addr-02-localcluster-head-eth0-mgmt-eth1-private.txt"),
               "my-fleet-node-1": rec("my-fleet-node-1", "lc-node-1", "ip-addr-03-localcluster-node-eth0-only.txt"),
               "my-fleet-node-2": rec("my-fleet-node-2", "lc-node-2", "ip-addr-04-localcluster-node2-eth0-only.txt")}
    assert controller_addresses(c, records) == {"my-fleet-head-1": "10.167.187.1"}
    f = tmp_path / "cluster.yaml"
    f.write_text("")
    for n, r in records.items():
        write_facts(f, n, r)
    conf = render_cluster(c, hardware_source(c, f)).files["slurm.conf"]
    assert "SlurmctldHost=lc-head-1(10.167.187.1)\n" in conf
    assert "NodeName=lc-node-[1-2] NodeAddr=10.167.187.[11-12] " in conf
    # no facts of the head: the cluster file's address; a head reached on the computes' network keeps it
    assert controller_addresses(c, {k: v for k, v in records.items() if k != "my-fleet-head-1"}) == {
        "my-fleet-head-1": "10.167.186.11"}
    c2 = parse_cluster(dump_cluster(importers.from_dstack_fleet(fleet.replace("10.167.186.11", "10.167.187.1"), "f")))
    assert controller_addresses(c2, records) == {"my-fleet-head-1": "10.167.187.1"}


def test_discover_report_gives_each_hosts_hostname_and_slurm_name_and_refused_names():
    from slurmkit.cli.discover import build_report

    records = {n: record(n, h) for n, h in HOSTNAMES.items()}
    report = build_report(fleet_cluster(), records, {})
    assert report["hosts"]["my-fleet-node-2"]["hostname"] == "ip-10-0-0-12"
    assert report["hosts"]["my-fleet-node-2"]["slurm_name"] == "ip-10-0-0-12"
    assert not [f for f in report["findings"] if f["code"] == "slurm-name"]
    report = build_report(fleet_cluster("slurm_names: as-written\n"), records, {})
    assert report["hosts"]["my-fleet-node-2"]["slurm_name"] == "my-fleet-node-2"
    refused = [f for f in report["findings"] if f["code"] == "slurm-name"]
    assert len(refused) == 4 and all(f["severity"] == "error" for f in refused)
    assert "host 10.0.0.12: inventory name my-fleet-node-2, its hostname is ip-10-0-0-12" in refused[2]["message"]
