"""Drain and resume decisions from health results, and the state that damps them. Pure but for :class:`Store`.

Rules:
- A drain's reason is ``slurmkit:<check-id> <message>`` of the first failing check (``slurmkit:gpu-count 7/8``),
  ``+N`` appended when more checks failed. Slurm keeps it as the node's Reason.
- A node is drained after ``fail_after`` consecutive failing runs (default 1: the first failure drains; a GPU that
  fell off the bus does not come back by waiting), unless it is already drained or down for another reason.
- A node is resumed only when its current Slurm reason starts with ``slurmkit:`` (slurmkit drained it, never an
  admin's drain, whatever the checks say) and after ``resume_after`` consecutive clean runs (default 2: one clean
  run after a flap is not enough). A ``slurmkit:bench`` reason is bench's to resume: health leaves it.
- An unreachable node counts as neither a failure nor a clean run: slurmkit does not drain what it could not
  check (Slurm itself marks an unresponsive node DOWN).

Whose drain a reason is (:func:`drained_by`, the one classification ``slurmkit status``, the support bundle and
the exporter use): ``slurmkit:bench ...`` is bench's (``"slurmkit:bench"``), any other ``slurmkit:<check> ...``
health's (``"slurmkit:health"``), anything else not slurmkit's (None: an admin's or Slurm's own).
:func:`drain_detail` is the evidence a person reads (``gpu-count 7/8``, ``bench busbw 12.1 < 40 GB/s``): the
reason without ``slurmkit:`` and without the ``[user@time]`` stamp ``scontrol show node`` appends.

State per node (:class:`NodeState`): consecutive failing and clean runs and the last result, kept in
``<state dir>/health/state.json``; every run is appended to ``history.jsonl`` beside it.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "slurmkit:"
BENCH_PREFIX = "slurmkit:bench"
FAIL_AFTER = 1
RESUME_AFTER = 2
HEALTH_KIND = "slurmkit:health"
BENCH_KIND = BENCH_PREFIX
REASON_MAX = 120  # a reason a person can read in sinfo -R; the rest is in the history


@dataclass
class NodeState:
    fails: int = 0  # consecutive failing runs
    cleans: int = 0  # consecutive clean runs
    last: list[dict] = field(default_factory=list)  # the failing checks of the last run
    checks: dict[str, bool] = field(default_factory=dict)  # every check's last result (id -> ok), for metrics


@dataclass
class Decision:
    node: str
    ok: bool | None  # None: not checked (unreachable)
    failing: list[dict]
    action: str  # "drain", "resume" or "none"
    reason: str | None = None  # the drain reason
    why: str = ""  # why no action, for the table (e.g. "1/2 clean runs", "admin drain kept")


def is_ours(reason: str | None) -> bool:
    return bool(reason) and reason.strip().startswith(PREFIX)


_STAMP = re.compile(r"\s*\[[^\[\]\s]*@[^\[\]]*\]\s*$")  # scontrol's " [root@2026-11-21T23:10:35]"


def drained_by(reason: str | None) -> str | None:
    """``"slurmkit:bench"``, ``"slurmkit:health"`` or None (not slurmkit's reason): see the module docstring."""
    if not is_ours(reason):
        return None
    return BENCH_KIND if drain_detail(reason).split(" ", 1)[0] == "bench" else HEALTH_KIND


def drain_detail(reason: str | None) -> str:
    """The reason without ``slurmkit:`` and Slurm's ``[user@time]`` stamp: ``gpu-count 7/8``."""
    text = _STAMP.sub("", (reason or "").strip()).strip()
    return text[len(PREFIX):].strip() if text.startswith(PREFIX) else text


def last_results(history: list[dict]) -> dict[str, dict]:
    """Each node's last checked health result in the kept ``history`` (:meth:`Store.history`): node -> ``{"time",
    "ok", "failing", "slurm_state", "slurm_reason", "action"}``. Runs where the node was not checked (unreachable,
    ``ok`` None) are skipped: the last result is the last one that says something."""
    out: dict[str, dict] = {}
    for run in history:
        for node, row in (run.get("nodes") or {}).items():
            if isinstance(row, dict) and row.get("ok") is not None:
                out[node] = {"time": run.get("time"), **{k: row.get(k) for k in
                             ("ok", "failing", "slurm_state", "slurm_reason", "action")}}
    return out


def drain_reason(failing: list[dict]) -> str:
    first = failing[0]
    reason = f"{PREFIX}{first['id']} {first['message']}".strip()
    if len(failing) > 1:
        reason += f" +{len(failing) - 1}"
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 3] + "..."


def failing_checks(result: dict) -> list[dict]:
    return [c for c in result.get("checks", []) if not c.get("ok")]


def decide(node: str, result: dict | None, state: NodeState, drained: bool, reason: str | None,
           fail_after: int = FAIL_AFTER, resume_after: int = RESUME_AFTER) -> tuple[Decision, NodeState]:
    """One node's action from this run's ``result`` (None: not checked), its kept ``state`` and what Slurm says
    now (``drained``: DRAIN/DRAINED/DRAINING or DOWN; ``reason``: its Reason). Returns the decision and the new
    state (the input is not changed)."""
    if fail_after < 1 or resume_after < 1:
        raise ValueError("fail_after and resume_after must be at least 1")
    if result is None:
        return Decision(node, None, [], "none", why="not checked"), NodeState(state.fails, state.cleans, state.last,
                                                                              dict(state.checks))
    failing = failing_checks(result)
    checks = {str(c.get("id")): bool(c.get("ok")) for c in result.get("checks", [])}
    if failing:
        new = NodeState(state.fails + 1, 0, failing, checks)
        if drained:
            why = "drained by slurmkit" if is_ours(reason) else "already drained (reason not slurmkit's: kept)"
            return Decision(node, False, failing, "none", why=why), new
        if new.fails >= fail_after:
            return Decision(node, False, failing, "drain", reason=drain_reason(failing)), new
        return Decision(node, False, failing, "none", why=f"{new.fails}/{fail_after} failing runs"), new
    new = NodeState(0, state.cleans + 1, [], checks)
    if not drained:
        return Decision(node, True, [], "none"), new
    if not is_ours(reason):
        return Decision(node, True, [], "none", why="admin drain kept"), new
    if drained_by(reason) == BENCH_KIND:
        return Decision(node, True, [], "none", why="bench's drain: bench resumes it"), new
    if new.cleans >= resume_after:
        return Decision(node, True, [], "resume"), new
    return Decision(node, True, [], "none", why=f"{new.cleans}/{resume_after} clean runs"), new


class Store:
    """The kept state and history in ``root`` (``StateDir.of(cluster_file).root / "health"``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def history_file(self) -> Path:
        return self.root / "history.jsonl"

    def load(self) -> dict[str, NodeState]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a cut-short file: counting starts again (damping only delays, it never drains)
        return {n: NodeState(int(s.get("fails", 0)), int(s.get("cleans", 0)), list(s.get("last", [])),
                             {str(k): bool(v) for k, v in (s.get("checks") or {}).items()})
                for n, s in data.get("nodes", {}).items() if isinstance(s, dict)}

    def save(self, states: dict[str, NodeState]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(".state.json.tmp")
        tmp.write_text(json.dumps({"nodes": {n: asdict(s) for n, s in states.items()}}, indent=1, sort_keys=True))
        os.replace(tmp, self.state_file)

    def append(self, run: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.history_file, "a") as f:
            f.write(json.dumps({"time": run.get("time", time.time()), **run}, sort_keys=True) + "\n")

    def history(self) -> list[dict]:
        try:
            lines = self.history_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a killed run
        return out
