"""Rounds that `slurmkit bench --mode pairs` needs to name a slow node or link, for 2..16 nodes.

Target (bench issue): at most ceil(log2 N) + 1 rounds. What is measured here, honestly: the rounds are counted
by the same `slurmkit.bench.localize.localize()` that `bench --mode pairs` runs (pair_rounds, find_culprits and
its narrowing plans), but each pair's busbw is MODELLED, not measured: a pair is slow (12 GB/s against a 44 GB/s
threshold) when it holds the slow node or is the slow link, fast (48 GB/s) otherwise. A real pairs run on the
local cluster is tests/live/test_bench_live.py::test_pairs_mode_names_the_node_with_a_slow_link (4 nodes, one
link slowed with tc: 2 rounds, that node named).

For every N the slow node is put at every position in turn, and the slow link on every pair of nodes; the
script prints, per N, the worst rounds over those cases next to the target, and how many cases named the
culprit. A link is only tested when its pair is scheduled (2 rounds test 2 links per node), so a slow link on a
pair no round holds goes unseen: those cases are counted apart as "unseen", not as misses of the round target.
With 2 nodes a slow node and a slow link look the same (one pair, nothing to compare): reported as unresolved.
"""

from __future__ import annotations

import math
import sys
from itertools import combinations

from slurmkit.bench.localize import localize

FAST, SLOW, THRESHOLD = 48.0, 12.0, 44.0


def model(bad_node: str | None = None, bad_link: frozenset[str] | None = None):
    """measure(round) for a cluster with one slow node or one slow link; counts the rounds it is asked for."""
    asked: list[int] = []

    def measure(rnd):
        asked.append(len(rnd))
        used = [n for pair in rnd for n in pair]
        assert len(used) == len(set(used)), f"a node is in two pairs of one round: {rnd}"
        return {
            pair: SLOW if bad_node in pair or frozenset(pair) == bad_link else FAST
            for pair in rnd
        }

    return measure, asked


def main() -> int:
    print("rounds counted by slurmkit.bench.localize.localize() with modelled pair busbw (not measured);")
    print("a real 4-node pairs run on the local cluster: tests/live/test_bench_live.py (2 rounds)\n")
    print(f"{'N':>3}  {'target':>6}  {'node: worst':>11}  {'named':>7}  {'link: worst':>11}  {'named':>7}  "
          f"{'unseen':>6}  verdict")
    missed = 0
    for n in range(2, 17):
        nodes = [f"n{i:02d}" for i in range(1, n + 1)]
        target = math.ceil(math.log2(n)) + 1
        node_rounds, node_named = [], 0
        for bad in nodes:
            measure, asked = model(bad_node=bad)
            found = localize(nodes, measure, THRESHOLD)
            assert found.rounds == len(asked)
            node_rounds.append(found.rounds)
            node_named += found.bad_nodes == [bad] and not found.bad_links
        link_rounds, link_named, unseen = [], 0, 0
        for a, b in combinations(nodes, 2):
            measure, asked = model(bad_link=frozenset((a, b)))
            found = localize(nodes, measure, THRESHOLD)
            assert found.rounds == len(asked)
            if not found.slow_pairs:
                unseen += 1  # the pair was never scheduled
                continue
            link_rounds.append(found.rounds)
            link_named += {frozenset(p) for p in found.bad_links} == {frozenset((a, b))} and not found.bad_nodes
        worst = max(node_rounds + link_rounds)
        ok = worst <= target
        missed += not ok
        verdict = "OK" if ok else f"MISSED by {worst - target}"
        links_seen = len(link_rounds)
        print(f"{n:>3}  {target:>6}  {max(node_rounds):>11}  {node_named:>3}/{n:<3}  "
              f"{max(link_rounds, default=0):>11}  {link_named:>3}/{links_seen:<3}  {unseen:>6}  {verdict}")
    print(f"\n{'all N within ceil(log2 N) + 1' if not missed else f'{missed} N over the target'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
