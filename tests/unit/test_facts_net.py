"""iproute2 one-line parsers and the management interface, on outputs captured on the development VM and inside
a local cluster (tests/fixtures/hardware/SOURCES.md, "Captured here"). Expected values are read off the files."""

from __future__ import annotations

import json
import subprocess

import pytest

from slurmkit.discovery import mgmt_interface
from slurmkit.facts import (
    ROUTE_TO_HEAD,
    Ipv4Address,
    NodeFacts,
    RouteInfo,
    facts_from_outputs,
    parse_ip_addr,
    parse_ip_route_get,
    route_to_host_command,
)

from tests.conftest import hardware_fixture as fixture


def test_ip_addr_devvm_bridges():
    addrs = parse_ip_addr(fixture("ip-addr-01-devvm-eth0-bridges.txt"))
    assert addrs == [
        Ipv4Address(1, "lo", "127.0.0.1", 8, "host", "lo"),
        Ipv4Address(4, "eth0", "192.0.2.2", 24, "global", "eth0"),
        Ipv4Address(2217, "sk-bna433-m", "10.117.14.1", 24, "global", "sk-bna433-m"),
        Ipv4Address(2257, "sk-cap1-m", "10.167.186.1", 24, "global", "sk-cap1-m"),
    ]


def test_ip_addr_local_cluster_head_and_nodes():
    head = parse_ip_addr(fixture("ip-addr-02-localcluster-head-eth0-mgmt-eth1-private.txt"))
    assert [(a.ifname, a.address, a.prefixlen) for a in head] == [
        ("lo", "127.0.0.1", 8), ("eth0", "10.167.186.11", 24), ("eth1", "10.167.187.1", 24)]
    node1 = parse_ip_addr(fixture("ip-addr-03-localcluster-node-eth0-only.txt"))
    node2 = parse_ip_addr(fixture("ip-addr-04-localcluster-node2-eth0-only.txt"))
    assert [(a.index, a.ifname, a.address) for a in node1] == [(1, "lo", "127.0.0.1"), (2, "eth0", "10.167.187.11")]
    assert [(a.index, a.ifname, a.address) for a in node2] == [(1, "lo", "127.0.0.1"), (2, "eth0", "10.167.187.12")]


def test_ip_addr_empty_or_other_text():
    assert parse_ip_addr("") == []
    assert parse_ip_addr("RTNETLINK answers: Operation not permitted\n") == []


def test_ip_route_get_forms():
    assert parse_ip_route_get(fixture("ip-route-get-01-devvm-via-gateway.txt")) == RouteInfo(
        "8.8.8.8", "unicast", dev="eth0", via="192.0.2.1", src="192.0.2.2")
    assert parse_ip_route_get(fixture("ip-route-get-02-localcluster-head-to-node-eth1.txt")) == RouteInfo(
        "10.167.187.11", "unicast", dev="eth1", via=None, src="10.167.187.1")
    assert parse_ip_route_get(fixture("ip-route-get-03-localcluster-head-own-address-local.txt")) == RouteInfo(
        "10.167.187.1", "local", dev="lo", via=None, src="10.167.187.1")
    assert parse_ip_route_get(fixture("ip-route-get-04-localcluster-node-to-head-eth0.txt")) == RouteInfo(
        "10.167.187.1", "unicast", dev="eth0", via=None, src="10.167.187.11")
    assert parse_ip_route_get("") is None


def facts(host: str, addr: str | None = None, route: str | None = None) -> NodeFacts:
    outputs = {}
    if addr:
        outputs["ip_addr"] = fixture(addr)
    if route:
        outputs[ROUTE_TO_HEAD] = fixture(route)
    f = facts_from_outputs(host, outputs)
    return NodeFacts.from_dict(json.loads(json.dumps(f.to_dict())))  # as read back from the cache


def test_facts_survive_the_cache_round_trip():
    f = facts("cap1-node-1", "ip-addr-03-localcluster-node-eth0-only.txt", "ip-route-get-04-localcluster-node-to-head-eth0.txt")
    assert f.ipv4[1] == Ipv4Address(2, "eth0", "10.167.187.11", 24, "global", "eth0")
    assert f.head_route.dev == "eth0" and f.head_route.src == "10.167.187.11"
    assert NodeFacts.from_dict({"hostname": "old"}).ipv4 == []  # a record cached before these facts existed


def test_mgmt_interface_is_the_one_holding_the_cluster_file_address():
    head = facts("cap1-head-1", "ip-addr-02-localcluster-head-eth0-mgmt-eth1-private.txt")
    # the head is reached on 10.167.186.11 (eth0, management) though its name resolves to eth1's address
    assert mgmt_interface(head, "10.167.186.11") == "eth0"
    node = facts("cap1-node-1", "ip-addr-03-localcluster-node-eth0-only.txt", "ip-route-get-04-localcluster-node-to-head-eth0.txt")
    assert mgmt_interface(node, "10.167.187.11") == "eth0"


def test_mgmt_interface_by_name_is_the_route_to_the_first_head():
    node = facts("cap1-node-1", "ip-addr-03-localcluster-node-eth0-only.txt", "ip-route-get-04-localcluster-node-to-head-eth0.txt")
    assert mgmt_interface(node, "cap1-node-1") == "eth0"
    vm = facts("devvm", "ip-addr-01-devvm-eth0-bridges.txt", "ip-route-get-01-devvm-via-gateway.txt")
    assert mgmt_interface(vm, "203.0.113.7") == "eth0"  # an address it does not hold (NAT): the route decides
    # the first head itself: its route to its own name is `local ... dev lo`, nothing derived
    head = facts("cap1-head-1", "ip-addr-02-localcluster-head-eth0-mgmt-eth1-private.txt",
                 "ip-route-get-03-localcluster-head-own-address-local.txt")
    assert mgmt_interface(head, "cap1-head-1") is None
    assert mgmt_interface(facts("x"), "10.0.0.1") is None


def test_route_command_quotes_the_name(tmp_path):
    marker = tmp_path / "ran"
    cmd = route_to_host_command(f"$(touch {marker})", "`touch " + str(marker) + "`")
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and not marker.exists()


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v ip && command -v getent"], capture_output=True).returncode,
                    reason="needs ip and getent")
def test_route_command_output_parses():
    p = subprocess.run(["sh", "-c", route_to_host_command("localhost")], capture_output=True, text=True, timeout=20)
    route = parse_ip_route_get(p.stdout)
    assert route is not None and route.kind == "local" and route.dev == "lo"
