"""Culprit finding: pair rounds, node vs link, narrowing, single-node outliers."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from slurmkit.bench import localize as lz

NODES = [f"node-{i}" for i in range(1, 9)]
FAST, SLOW, THRESHOLD = 48.0, 12.0, 44.0


def fake_cluster(bad_nodes=(), bad_links=(), log=None):
    """measure(round): each pair's busbw on a cluster with the given bad nodes and links."""
    bad_links = {frozenset(link) for link in bad_links}

    def measure(rnd):
        if log is not None:
            log.append(list(rnd))
        used = [n for pair in rnd for n in pair]
        assert len(used) == len(set(used)), f"a node is in two pairs of one round: {rnd}"
        return {
            pair: SLOW if set(pair) & set(bad_nodes) or frozenset(pair) in bad_links else FAST
            for pair in rnd
        }

    return measure


def test_even_rounds_are_disjoint_cover_every_node_and_never_repeat_a_pair():
    rounds = lz.pair_rounds(NODES, rounds=3)
    assert len(rounds) == 3
    seen = set()
    for rnd in rounds:
        members = [n for pair in rnd for n in pair]
        assert sorted(members) == sorted(NODES)  # every node, once
        for a, b in rnd:
            assert frozenset((a, b)) not in seen
            seen.add(frozenset((a, b)))
    # a full round robin schedules every pair once
    full = lz.pair_rounds(NODES, rounds=99)
    assert len(full) == 7
    assert {frozenset(p) for rnd in full for p in rnd} == {frozenset(p) for p in combinations(NODES, 2)}


def test_odd_count_sits_one_node_out_per_round_and_adds_a_round():
    nodes = NODES[:5]
    rounds = lz.pair_rounds(nodes, rounds=2)
    assert len(rounds) == 3
    per_node = {n: 0 for n in nodes}
    for rnd in rounds:
        members = [n for pair in rnd for n in pair]
        assert len(members) == len(set(members)) == 4  # disjoint; one node sits out
        for n in members:
            per_node[n] += 1
    assert min(per_node.values()) >= 2
    assert lz.pair_rounds(["a"]) == [] and lz.pair_rounds(["a", "b"], rounds=3) == [[("a", "b")]]


def test_first_two_rounds_of_eight():
    # the schedule the node and link tests below rely on
    assert lz.pair_rounds(NODES, 2) == [
        [("node-1", "node-8"), ("node-2", "node-7"), ("node-3", "node-6"), ("node-4", "node-5")],
        [("node-1", "node-7"), ("node-8", "node-6"), ("node-2", "node-5"), ("node-3", "node-4")],
    ]


def test_bad_node_among_eight_in_two_rounds():
    found = lz.localize(NODES, fake_cluster(bad_nodes=["node-6"]), THRESHOLD)
    assert found.rounds == 2
    assert found.resolved and found.plan == []
    assert found.bad_nodes == ["node-6"]
    assert found.bad_links == []
    # its two slow pairs are the evidence: with node-3 (round 1) and node-8 (round 2)
    (finding,) = found.findings
    assert {p for p, _ in finding.evidence} == {("node-3", "node-6"), ("node-6", "node-8")}


def test_bad_link_among_eight_in_two_rounds():
    found = lz.localize(NODES, fake_cluster(bad_links=[("node-2", "node-7")]), THRESHOLD)
    assert found.rounds == 2
    assert found.resolved
    assert found.bad_links == [("node-2", "node-7")]
    assert found.bad_nodes == []


def test_unresolved_nodes_get_a_narrowing_plan_and_more_rounds():
    # node-1 meets node-8 then node-7, all three bad: node-1 has no cleared witness, node-7 and node-8 one each
    # (node-2, node-6), and one slow pair with a good node cannot tell a bad node from a bad link
    results = {}
    measure = fake_cluster(bad_nodes=["node-1", "node-7", "node-8"])
    for rnd in lz.pair_rounds(NODES, 2):
        results.update(measure(rnd))
    found = lz.find_culprits(results, THRESHOLD, rounds=2)
    assert found.bad_nodes == [] and found.bad_links == []
    assert [f.nodes for f in found.findings if f.kind == "unresolved"] == [("node-1",), ("node-7",), ("node-8",)]
    assert not found.resolved
    # the plan: rounds of disjoint pairs, each suspect with cleared nodes it has not met; node-1 needs two
    assert found.plan
    for rnd in found.plan:
        members = [n for pair in rnd for n in pair]
        assert len(members) == len(set(members))
    planned = [pair for rnd in found.plan for pair in rnd]
    assert sorted(a for a, _ in planned) == ["node-1", "node-1", "node-7", "node-8"]
    assert all(b in found.cleared and (a, b) not in results and (b, a) not in results for a, b in planned)
    assert len(found.plan) == 2

    log = []
    done = lz.localize(NODES, fake_cluster(bad_nodes=["node-1", "node-7", "node-8"], log=log), THRESHOLD)
    assert done.bad_nodes == ["node-1", "node-7", "node-8"]
    assert done.resolved
    assert done.rounds == len(log) == 4


def test_everything_slow_points_at_something_shared():
    results = {p: SLOW for rnd in lz.pair_rounds(NODES, 2) for p in rnd}
    found = lz.find_culprits(results, THRESHOLD)
    assert [f.kind for f in found.findings] == ["all-slow"]
    assert found.rounds == 2  # inferred: each node was in two pairs
    assert found.plan == []


def test_failed_pair_counts_as_slow():
    results = {("a", "b"): math.nan, ("a", "c"): FAST, ("b", "d"): FAST, ("c", "d"): FAST}
    found = lz.find_culprits(results, THRESHOLD, rounds=2)
    assert found.bad_links == [("a", "b")]


def test_single_node_outliers_against_the_median():
    busbw = {"n1": 470.0, "n2": 480.0, "n3": 475.0, "n4": 300.0, "n5": None, "n6": 440.0}
    out = lz.single_node_outliers(busbw, rel_tol=0.05)
    assert [o.node for o in out] == ["n5", "n4", "n6"]
    assert out[0].busbw_gbps is None and out[0].deficit == 1.0
    assert out[1].median_gbps == 470.0
    assert out[1].deficit == pytest.approx(1 - 300 / 470)
    assert lz.single_node_outliers(busbw, rel_tol=0.1) == out[:2]
    with pytest.raises(ValueError):
        lz.single_node_outliers(busbw, rel_tol=1.5)


def test_findings_speak_the_unit_of_their_threshold():
    # pairs judged as ratios to their own same-run baseline: n3 is slow with n1 and n2, both fast elsewhere
    ratios = {("n1", "n2"): 0.9, ("n1", "n3"): 0.04, ("n2", "n3"): 0.06, ("n1", "n4"): 1.1}
    found = lz.find_culprits(ratios, 0.3, unit="of the same-run baseline")
    assert found.bad_nodes == ["n3"]
    assert found.findings[0].message == (
        "n3: slow with 2 partners that are fast elsewhere (n1: busbw 0.04 of the same-run baseline, n2: busbw 0.06 "
        "of the same-run baseline; threshold 0.3 of the same-run baseline)")
    assert "(n1: 0.04 GB/s, n2: 0.06 GB/s; threshold 0.3 GB/s)" in lz.find_culprits(ratios, 0.3).findings[0].message
