"""Finding the culprit when a cluster bench is slow: a node, or the link between two nodes. Pure.

Pairwise mode (``slurmkit bench --mode pairs``)
    Nodes are benchmarked two at a time, all pairs of one round at once (the pairs of a round are disjoint,
    so no node runs two jobs). :func:`pair_rounds` builds the rounds with the circle method of round-robin
    tournaments, so that a node meets a different partner in every round. After two rounds every node has
    two partners, and :func:`find_culprits` reads the pair results:

    * a pair at or above the threshold clears both of its nodes (they can reach it);
    * a **node** is the culprit when every pair it was in is slow and at least two of those pairs were with
      cleared partners (two independent witnesses: one slow pair alone cannot tell a node from a link);
    * a **link** is the culprit when a slow pair joins two nodes that are both cleared by other pairs;
    * anything else is **unresolved**, and the findings carry a narrowing plan: rounds of extra pairs, each
      unresolved node with a cleared node it has not met yet. :func:`localize` runs rounds and plans until
      everything is resolved (or no plan can help) and reports the rounds it used;
    * when no pair reaches the threshold, nothing is cleared: the fault is shared (a switch, the fabric
      configuration) or the threshold is wrong, and the finding says so.

    A link is only checked when its pair is scheduled: ``rounds`` rounds test ``rounds`` links per node,
    ``len(nodes) - 1`` rounds test every pair.

Single-node mode (``slurmkit bench --mode nodes``)
    Every node runs the single-node bench (NVLink) alone; :func:`single_node_outliers` flags the nodes whose
    busbw is below the median by more than a relative tolerance.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable, Hashable, Mapping, Sequence

Pair = tuple[str, str]


def _key(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


def pair_rounds(nodes: Sequence[str], rounds: int = 2) -> list[list[Pair]]:
    """Rounds of disjoint pairs, every pair new (the circle method).

    With an even count every node is in exactly one pair per round. With an odd count one node must sit out
    each round (a node cannot be in two concurrent jobs); the node sitting out changes every round and one
    round is added, so every node is still in at least ``rounds`` pairs. Rounds are capped at the number a
    full round robin has (n-1 for even n, n for odd n): asking for that many schedules every pair once.
    Pairs are ``(a, b)`` in the order of ``nodes``' positions in the circle, not sorted.
    """
    names = list(dict.fromkeys(nodes))  # keep order, drop repeats
    if len(names) < 2 or rounds < 1:
        return []
    odd = len(names) % 2 == 1
    circle: list[str | None] = names + ([None] if odd else [])
    m = len(circle)
    wanted = min(rounds + (1 if odd else 0), m - 1)
    fixed, ring = circle[0], circle[1:]
    schedule: list[list[Pair]] = []
    for k in range(wanted):
        turned = ring[-k:] + ring[:-k] if k else ring
        arrangement = [fixed] + turned
        pairs: list[Pair] = []
        for i in range(m // 2):
            a, b = arrangement[i], arrangement[m - 1 - i]
            if a is not None and b is not None:
                pairs.append((a, b))
        schedule.append(pairs)
    return schedule


@dataclass(frozen=True)
class PairConclusion:
    """One conclusion drawn from pair results (an item of :attr:`PairAnalysis.findings`). ``kind``: ``node``,
    ``link``, ``unresolved`` or ``all-slow``."""

    kind: str
    nodes: tuple[str, ...]
    evidence: tuple[tuple[Pair, float], ...]
    message: str


@dataclass
class PairAnalysis:
    """The analysis of pair results (:func:`find_culprits`, :func:`localize`): what they say, and what to run next
    when they are not enough."""

    threshold: float
    rounds: int  # rounds of pairs measured to reach these findings
    findings: list[PairConclusion] = field(default_factory=list)
    slow_pairs: list[tuple[Pair, float]] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)  # nodes in at least one pair at or above the threshold
    plan: list[list[Pair]] = field(default_factory=list)  # extra rounds that would narrow the unresolved

    @property
    def bad_nodes(self) -> list[str]:
        return [f.nodes[0] for f in self.findings if f.kind == "node"]

    @property
    def bad_links(self) -> list[Pair]:
        return [(f.nodes[0], f.nodes[1]) for f in self.findings if f.kind == "link"]

    @property
    def resolved(self) -> bool:
        return not any(f.kind in ("unresolved", "all-slow") for f in self.findings)


def find_culprits(results: Mapping[tuple[str, str], float], threshold: float, rounds: int | None = None,
                  unit: str = "GB/s") -> PairAnalysis:
    """Narrow slow pairs to nodes and links (rules in the module docstring).

    ``results`` maps a measured pair to its figure: its busbw (``unit`` GB/s), or its busbw over a same-run
    baseline (``unit`` "of the same-run baseline"), in the unit of ``threshold``; a NaN or missing value
    counts as slow (the pair's run failed). ``rounds`` is how many rounds produced the results; when None it
    is taken as the most pairs any node was in (the least number of rounds of disjoint pairs that can hold
    them).
    """
    measured: dict[Pair, float] = {}
    partners: dict[str, dict[str, float]] = {}
    for (a, b), bw in results.items():
        if a == b:
            raise ValueError(f"a pair needs two nodes: ({a!r}, {b!r})")
        value = float("nan") if bw is None else float(bw)
        measured[_key(a, b)] = value
        partners.setdefault(a, {})[b] = value
        partners.setdefault(b, {})[a] = value

    def slow(bw: float) -> bool:
        return math.isnan(bw) or bw < threshold

    used = rounds if rounds is not None else max((len(p) for p in partners.values()), default=0)
    out = PairAnalysis(threshold=threshold, rounds=used)
    out.slow_pairs = sorted(((p, bw) for p, bw in measured.items() if slow(bw)), key=lambda x: x[0])
    cleared = {n for n, ps in partners.items() if any(not slow(bw) for bw in ps.values())}
    out.cleared = sorted(cleared)
    if not measured:
        return out
    if not cleared:
        out.findings.append(PairConclusion(
            "all-slow", tuple(sorted(partners)), tuple(out.slow_pairs),
            f"every measured pair is below {threshold:g} {unit}: the fault is shared by all nodes (a switch, the "
            "fabric configuration, the software stack) or the threshold is wrong",
        ))
        return out

    unresolved: list[str] = []
    bad: set[str] = set()
    for node in sorted(partners):
        ps = partners[node]
        if node in cleared:
            continue
        witnesses = [(_key(node, p), bw) for p, bw in sorted(ps.items()) if p in cleared]
        if len(witnesses) >= 2:
            bad.add(node)
            out.findings.append(PairConclusion(
                "node", (node,), tuple(witnesses),
                f"{node}: slow with {len(witnesses)} partners that are fast elsewhere "
                f"({', '.join(f'{_other(p, node)}: {_bw(bw, unit)}' for p, bw in witnesses)}; "
                f"threshold {threshold:g} {unit})",
            ))
        else:
            unresolved.append(node)

    for (a, b), bw in out.slow_pairs:
        if a in cleared and b in cleared:
            out.findings.append(PairConclusion(
                "link", (a, b), (((a, b), bw),),
                f"{a} <-> {b}: {_bw(bw, unit)} below {threshold:g} {unit} while both nodes are fast with other "
                "partners",
            ))

    for node in unresolved:
        ps = partners[node]
        out.findings.append(PairConclusion(
            "unresolved", (node,), tuple((_key(node, p), bw) for p, bw in sorted(ps.items())),
            f"{node}: every pair it was in is slow, but fewer than two of its partners are known good: "
            "a node or a link; pair it with more known-good nodes",
        ))
    out.plan = _narrowing_plan(unresolved, sorted(cleared), measured)
    return out


def _other(pair: Pair, node: str) -> str:
    return pair[1] if pair[0] == node else pair[0]


def _bw(bw: float, unit: str = "GB/s") -> str:
    return "failed" if math.isnan(bw) else (f"{bw:.2f} GB/s" if unit == "GB/s" else f"busbw {bw:.2f} {unit}")


def _narrowing_plan(unresolved: list[str], cleared: list[str], measured: Mapping[Pair, float]) -> list[list[Pair]]:
    """Rounds of disjoint pairs: each unresolved node with a cleared node it has not met, until it would have
    two cleared witnesses if it is at fault."""
    needs: dict[str, int] = {}
    for node in unresolved:
        have = sum(1 for c in cleared if _key(node, c) in measured)
        needs[node] = max(2 - have, 1)
    planned: set[Pair] = set()
    rounds: list[list[Pair]] = []
    while any(needs.values()):
        busy: set[str] = set()
        this_round: list[Pair] = []
        for node in unresolved:
            if not needs[node] or node in busy:
                continue
            for good in cleared:
                key = _key(node, good)
                if good in busy or key in measured or key in planned:
                    continue
                this_round.append((node, good))
                planned.add(key)
                busy.update((node, good))
                needs[node] -= 1
                break
            else:
                needs[node] = 0  # no cleared node left to meet
        if not this_round:
            break
        rounds.append(this_round)
    return rounds


def localize(
    nodes: Sequence[str],
    measure: Callable[[list[Pair]], Mapping[tuple[str, str], float]],
    threshold: float,
    rounds: int = 2,
    max_extra_rounds: int = 4,
    unit: str = "GB/s",
) -> PairAnalysis:
    """Run :func:`pair_rounds`, then narrowing plans, through ``measure`` until resolved.

    ``measure(round)`` runs one round's pairs (at once, on a real cluster) and returns each pair's figure, in
    the ``unit`` of ``threshold`` (see :func:`find_culprits`).
    The findings report every round measured, the narrowing ones included.
    """
    results: dict[tuple[str, str], float] = {}
    used = 0
    for rnd in pair_rounds(nodes, rounds):
        results.update(measure(rnd))
        used += 1
    found = find_culprits(results, threshold, rounds=used, unit=unit)
    extra = 0
    while found.plan and extra < max_extra_rounds:
        for rnd in found.plan[: max_extra_rounds - extra]:
            results.update(measure(rnd))
            used += 1
            extra += 1
        found = find_culprits(results, threshold, rounds=used, unit=unit)
    return found


@dataclass(frozen=True)
class Outlier:
    """A node whose single-node busbw is below the median by more than the tolerance (or whose run failed)."""

    node: str
    busbw_gbps: float | None
    median_gbps: float
    deficit: float  # 1 - busbw/median; 1.0 for a failed run


def single_node_outliers(per_node_busbw: Mapping[Hashable, float | None], rel_tol: float = 0.1) -> list[Outlier]:
    """Nodes below ``median * (1 - rel_tol)``, worst first. A None or NaN busbw (a failed run) is an outlier.

    The median is taken over the nodes that produced a number, so that one bad node (or a few) cannot move it.
    """
    if not 0 <= rel_tol < 1:
        raise ValueError(f"rel_tol must be in [0, 1), got {rel_tol}")
    values = {str(n): bw for n, bw in per_node_busbw.items()}
    numbers = [bw for bw in values.values() if bw is not None and not math.isnan(bw)]
    if not numbers:
        return [Outlier(n, None, float("nan"), 1.0) for n in sorted(values)]
    median = statistics.median(numbers)
    out: list[Outlier] = []
    for node, bw in values.items():
        if bw is None or math.isnan(bw):
            out.append(Outlier(node, None, median, 1.0))
        elif bw < median * (1 - rel_tol):
            out.append(Outlier(node, bw, median, 1 - bw / median if median else 1.0))
    return sorted(out, key=lambda o: (-o.deficit, o.node))
