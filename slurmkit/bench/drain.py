"""``bench --drain``: the pure decisions that drain a node pairs mode names and resume it after a passing bench.

Rules:
- Only a ``node`` culprit is drained (a ``link`` culprit names two nodes and cannot say which one is at fault).
  The reason names slurmkit, bench and the evidence: ``slurmkit:bench busbw 0.01 < 0.3 of the same-run baseline``
  (a profile's baseline ratio) or ``slurmkit:bench busbw 12.1 < 40 GB/s`` (an absolute threshold), cut to
  :data:`slurmkit.health.policy.REASON_MAX` characters like the health checks' reasons.
- A drained node runs no job, so a bench cannot measure it while drained: before a ``--drain`` bench, the nodes
  it covers whose Slurm reason starts with ``slurmkit:bench`` are resumed for the re-check (:func:`to_recheck`);
  never a node drained by an admin or by ``slurmkit health``. After the run (:func:`after_bench`), a re-checked
  node stays in service only when the bench passed; otherwise it is drained again (with the new evidence when the
  bench named it, else with its earlier reason).
- A culprit already drained or down for a reason that is not bench's is left as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from slurmkit.health.policy import BENCH_PREFIX, REASON_MAX


@dataclass(frozen=True)
class Action:
    node: str
    action: str  # "drain" or "resume" (resume: a re-checked node kept in service)
    reason: str | None = None


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def drain_reason(culprit: Mapping[str, Any]) -> str:
    """The Slurm reason of a ``node`` culprit: its lowest figure against the threshold it missed."""
    threshold = culprit.get("threshold")
    if "ratio" in culprit:
        value, unit = culprit.get("ratio"), "of the same-run baseline"
    else:
        value, unit = culprit.get("busbw_gbps"), "GB/s"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = f"{BENCH_PREFIX} failed pairs" + (f" (needs >= {threshold:g} {unit})" if threshold is not None else "")
    elif threshold is None:
        text = f"{BENCH_PREFIX} busbw {_num(value)} {unit}"
    else:
        text = f"{BENCH_PREFIX} busbw {_num(value)} < {threshold:g} {unit}"
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 3] + "..."


def is_bench_reason(reason: str | None) -> bool:
    """A drain of bench's own (:func:`slurmkit.health.policy.drained_by`, the one reader of slurmkit's reasons)."""
    from slurmkit.health.policy import BENCH_KIND, drained_by

    return drained_by(reason) == BENCH_KIND


def to_recheck(nodes: Sequence[str], slurm: Mapping[str, tuple[bool, str | None]]) -> dict[str, str]:
    """The nodes of the bench (``nodes``) to resume before it: drained with a ``slurmkit:bench`` reason.
    ``slurm``: node -> (drained or down, reason). Returns node -> its reason (to drain it again with)."""
    out = {}
    for n in nodes:
        drained, reason = slurm.get(n, (False, None))
        if drained and is_bench_reason(reason):
            out[n] = reason.strip()
    return out


def after_bench(culprits: Sequence[Mapping[str, Any]], passed: bool, rechecked: Mapping[str, str],
                slurm: Mapping[str, tuple[bool, str | None]]) -> list[Action]:
    """What to do once the bench ran. ``rechecked``: :func:`to_recheck`'s answer (resumed before the run);
    ``slurm``: node -> (drained or down, reason) as Slurm said before the run."""
    actions: list[Action] = []
    named: dict[str, str] = {}
    for c in culprits:
        if c.get("kind") == "node" and c.get("node") and c["node"] not in named:
            named[c["node"]] = drain_reason(c)
    for node, reason in named.items():
        drained, now = slurm.get(node, (False, None))
        if drained and node not in rechecked and not is_bench_reason(now):
            continue  # an admin's or health's drain: not ours to change
        actions.append(Action(node, "drain", reason))
    for node, old in rechecked.items():
        if node in named:
            continue
        actions.append(Action(node, "resume") if passed else Action(node, "drain", old))
    return actions
