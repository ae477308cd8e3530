"""What node states mean (slurmkit.slurm.state): down, drained, coming up, usable, ready, bootstrap's problems,
and the one cluster state, on `scontrol -o show node`, `sinfo --json` and `scontrol ping` outputs captured from
Slurm 22.05.8 (tests/fixtures/slurm-22.05/SOURCES.md)."""

from __future__ import annotations

import dataclasses

import pytest

from slurmkit.slurm import state
from slurmkit.slurm.parsers import (
    Controller, NodeInfo, parse_node_state, parse_scontrol_nodes, parse_scontrol_ping, parse_sinfo_json,
)
from slurmkit.slurm.state import node_problem
from tests.conftest import FIXTURES

FIX = FIXTURES / "slurm-22.05"


def read(name: str) -> str:
    return (FIX / name).read_text()


def parse_nodes(text: str) -> dict[str, dict[str, str]]:
    """`scontrol -o show node` -> {name: {State, Reason}}: the text form bootstrap's rule was first tested on."""
    return {n.name: {"State": n.state_text, "Reason": n.reason} for n in parse_scontrol_nodes(text)}


def problem(state: str, reason: str) -> str | None:
    """node_problem of a node whose State and Reason Slurm printed as given."""
    base, flags = parse_node_state(state)
    return node_problem(NodeInfo("sk-one", base, flags, reason))


# ---------------------------------------------------------------------------------------------------------
# Bootstrap's rule (moved from tests/unit/test_bootstrap_logic.py with the code: the same inputs and results)


def test_node_states_from_real_scontrol_output():
    drained = parse_nodes((FIX / "scontrol-o-show-node-drain.txt").read_text())
    assert drained == {"sk-one": {"State": "IDLE+DRAIN", "Reason": "fixture: drained by hand [root@2026-11-21T23:10:35]"}}
    # An admin's drain is not bootstrap's failure; a drain for a config mismatch is.
    assert problem(**{k.lower(): v for k, v in drained["sk-one"].items()}) is None
    assert problem("IDLE+DRAIN", "gres/gpu count reported lower than configured (4 < 8)").startswith("Slurm reports IDLE+DRAIN")
    nonresp = parse_nodes((FIX / "scontrol-o-show-node-nonresp.txt").read_text())["sk-one"]
    assert problem(nonresp["State"], nonresp["Reason"]) == "Slurm reports IDLE+NOT_RESPONDING"
    down = parse_nodes((FIX / "scontrol-o-show-node-down.txt").read_text())["sk-one"]
    assert problem(down["State"], down["Reason"]).startswith("Slurm reports DOWN+DRAIN: fixture: down by hand")
    alloc = parse_nodes((FIX / "scontrol-o-show-node-alloc.txt").read_text())["sk-one"]
    assert alloc["State"] == "MIXED" and problem(alloc["State"], alloc["Reason"]) is None


# ---------------------------------------------------------------------------------------------------------
# Node predicates on real outputs

# fixture -> (is_down, is_drained, is_coming_up, is_usable, is_ready)
CAPTURED = {
    "alloc": (False, False, False, True, True),     # MIXED, a job running
    "drain": (False, True, False, False, True),     # IDLE+DRAIN, drained by hand: in service, takes no new job
    "down": (True, True, False, False, False),      # DOWN+DRAIN, downed by hand
    "nonresp": (True, False, False, False, False),  # IDLE+NOT_RESPONDING, slurmd killed
}


def _predicates(n: NodeInfo) -> tuple[bool, ...]:
    return (n.is_down, n.is_drained, n.is_coming_up, n.is_usable, n.is_ready)


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_predicates_on_scontrol_show_node(name):
    (n,) = parse_scontrol_nodes(read(f"scontrol-o-show-node-{name}.txt"))
    assert _predicates(n) == CAPTURED[name]
    # the properties are the module's functions
    assert _predicates(n) == (state.is_down(n), state.is_drained(n), state.is_coming_up(n), state.is_usable(n),
                              state.is_ready(n))


@pytest.mark.parametrize("sinfo, scontrol", [("mixed", "alloc"), ("drain", "drain"), ("down", "down")])
def test_sinfo_json_and_scontrol_of_the_same_moment_are_judged_alike(sinfo, scontrol):
    (a,) = parse_sinfo_json(read(f"sinfo-json-{sinfo}.json"))
    (b,) = parse_scontrol_nodes(read(f"scontrol-o-show-node-{scontrol}.txt"))
    assert _predicates(a) == _predicates(b) == CAPTURED[scontrol]
    assert (node_problem(a) is None) == (node_problem(b) is None)  # sinfo's reason lacks scontrol's [user@time]


# Slurm's reason when it drained a node whose gres.conf has fewer GPUs than slurm.conf (tests/live/test_bootstrap.py
# asserts it on a live cluster), on the captured drained record.
GRES_LOW = "gres/gpu count reported lower than configured (4 < 8)"


def test_needs_resume_only_for_a_configuration_drain_of_a_node_that_answers():
    (drained,) = parse_scontrol_nodes(read("scontrol-o-show-node-drain.txt"))
    (down,) = parse_scontrol_nodes(read("scontrol-o-show-node-down.txt"))
    (nonresp,) = parse_scontrol_nodes(read("scontrol-o-show-node-nonresp.txt"))
    (alloc,) = parse_scontrol_nodes(read("scontrol-o-show-node-alloc.txt"))
    assert not state.needs_resume(drained) and not state.needs_resume(down)  # an admin's reason: left alone
    assert state.needs_resume(dataclasses.replace(drained, reason=GRES_LOW))
    assert state.needs_resume(dataclasses.replace(down, reason=GRES_LOW))
    assert not state.needs_resume(dataclasses.replace(nonresp, reason="Not responding"))  # cannot be reached
    assert not state.needs_resume(dataclasses.replace(alloc, reason=GRES_LOW))  # neither down nor drained
    # Slurm still refusing the registration: waiting or resuming does not help
    refused = dataclasses.replace(drained, flags=("DRAIN", "INVALID_REG"), reason=GRES_LOW)
    assert state.is_invalid(refused) and refused.is_down and not state.needs_resume(refused)
    assert node_problem(refused) == f"Slurm reports IDLE+DRAIN+INVALID_REG: {GRES_LOW}"


@pytest.mark.parametrize("text, down, coming_up, usable, ready", [
    ("IDLE", False, False, True, True),
    ("ALLOCATED", False, False, True, True),
    ("COMPLETING", False, False, True, True),
    ("down*", True, False, False, False),
    ("FAIL", True, False, False, False),
    ("FAILING", True, False, False, False),
    ("INVAL", True, False, False, False),
    ("ERROR", True, False, False, False),
    ("IDLE+FAIL", True, False, False, False),
    ("UNKNOWN", False, True, True, False),            # not registered yet: a job may wait for it
    ("FUTURE", False, True, False, False),
    ("idle~", False, True, True, False),              # powered down: Slurm powers it up for a job
    ("idle#", False, True, True, False),              # powering up
    ("IDLE+REBOOT_REQUESTED", False, True, True, False),
    ("idle%", False, False, True, False),             # powering down
    ("drained", False, False, False, True),           # sinfo's word: idle + drain
])
def test_predicates_on_every_spelling_of_a_state(text, down, coming_up, usable, ready):
    n = NodeInfo("n1", *parse_node_state(text))
    assert (n.is_down, n.is_coming_up, n.is_usable, n.is_ready) == (down, coming_up, usable, ready)


def test_a_hand_built_record_with_a_drain_word_as_its_state_is_drained():
    assert state.is_drained(NodeInfo("n1", "DRAINED")) and state.is_drained(NodeInfo("n1", "DRAINING"))


def test_maintenance_reason():
    (drained,) = parse_scontrol_nodes(read("scontrol-o-show-node-drain.txt"))
    assert not state.for_maintenance(drained)
    assert state.for_maintenance(dataclasses.replace(drained, reason="Maintenance: new PSU"))


# ---------------------------------------------------------------------------------------------------------
# Cluster state rules (slurmkit status; moved from tests/unit/test_jobs.py with the code)

UP = [Controller("h1", "primary", True), Controller("h2", "backup1", True)]


def node(name, state, *flags, reason=""):
    return NodeInfo(name, state, tuple(flags), reason)


@pytest.mark.parametrize("nodes, controllers, want", [
    ([node("a", "IDLE"), node("b", "ALLOCATED"), node("c", "MIXED")], UP, "RUNNING"),
    ([node("a", "IDLE")], [Controller("h1", "primary", False), Controller("h2", "backup1", False)], "FAILED"),
    ([node("a", "IDLE")], [], "FAILED"),
    ([], UP, "FAILED"),
    ([node("a", "DOWN"), node("b", "IDLE", "NOT_RESPONDING")], UP, "FAILED"),
    ([node("a", "IDLE"), node("b", "DOWN")], UP, "DEGRADED"),
    ([node("a", "IDLE"), node("b", "IDLE", "NOT_RESPONDING")], UP, "DEGRADED"),
    ([node("a", "IDLE"), node("b", "FAIL")], UP, "DEGRADED"),
    ([node("a", "IDLE"), node("b", "IDLE", "DRAIN", reason="bad gpu")], UP, "DEGRADED"),
    ([node("a", "IDLE")], [Controller("h1", "primary", False), Controller("h2", "backup1", True)], "DEGRADED"),
    ([node("a", "IDLE"), node("b", "UNKNOWN")], UP, "CONFIGURING"),
    ([node("a", "IDLE"), node("b", "IDLE", "POWERING_UP")], UP, "CONFIGURING"),
    ([node("a", "UNKNOWN"), node("b", "IDLE", "DRAIN")], UP, "DEGRADED"),  # DEGRADED outranks CONFIGURING
])
def test_cluster_state_rules(nodes, controllers, want):
    from slurmkit.slurm import cluster_state

    state, reasons = cluster_state(nodes, controllers)
    assert state == want
    assert (reasons == []) == (want == "RUNNING")


def test_cluster_state_reason_names_node_and_slurm_reason():
    from slurmkit.slurm import cluster_state

    assert cluster_state([node("a", "IDLE", "DRAIN", reason="bad gpu")], UP)[1] == ["a IDLE+DRAIN: bad gpu"]


@pytest.mark.parametrize("nodes, ping, want, reasons", [
    ("alloc", "scontrol-ping.txt", "RUNNING", []),
    ("drain", "scontrol-ping.txt", "DEGRADED", ["sk-one IDLE+DRAIN: fixture: drained by hand [root@2026-11-21T23:10:35]"]),
    ("nonresp", "scontrol-ping.txt", "FAILED", ["every node is down"]),
    ("alloc", "scontrol-ping-down.txt", "FAILED", ["no slurmctld answers"]),
])
def test_cluster_state_of_captured_moments(nodes, ping, want, reasons):
    from slurmkit.slurm import cluster_state

    controllers = parse_scontrol_ping(read(ping))
    assert controllers  # the fixture names its controller
    assert cluster_state(parse_scontrol_nodes(read(f"scontrol-o-show-node-{nodes}.txt")), controllers) == (want, reasons)
