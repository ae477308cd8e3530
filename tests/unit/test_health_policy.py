"""Drain/resume policy: reasons, damping, never an admin's drain; the kept state and history."""

from __future__ import annotations

import pytest

from slurmkit.health import policy as P

FAIL = {"checks": [{"id": "gpu-count", "ok": False, "message": "7/8"},
                   {"id": "mount", "ok": False, "message": "/shared missing"},
                   {"id": "munge", "ok": True, "message": "ok"}]}
CLEAN = {"checks": [{"id": "gpu-count", "ok": True, "message": "8/8"}]}


def run(results, drained_by=None, fail_after=1, resume_after=2, reason=None):
    """Feed results one run after another, with Slurm's state following our actions (as scontrol would)."""
    state, drained, actions = P.NodeState(), reason is not None, []
    for r in results:
        d, state = P.decide("n1", r, state, drained, reason, fail_after, resume_after)
        actions.append(d.action)
        if d.action == "drain":
            drained, reason = True, d.reason
        elif d.action == "resume":
            drained, reason = False, None
    return actions, reason


def test_reason_names_slurmkit_and_the_check():
    assert P.drain_reason(P.failing_checks(FAIL)) == "slurmkit:gpu-count 7/8 +1"
    assert P.drain_reason([{"id": "gpu-count", "message": "7/8"}]) == "slurmkit:gpu-count 7/8"
    long = P.drain_reason([{"id": "ib-rate", "message": "x" * 500}])
    assert len(long) == P.REASON_MAX and long.endswith("...")


def test_first_failure_drains_by_default_and_clean_runs_resume():
    actions, reason = run([CLEAN, CLEAN, CLEAN, FAIL, FAIL, CLEAN, CLEAN, CLEAN])
    assert actions == ["none"] * 3 + ["drain", "none", "none", "resume", "none"]
    assert reason is None


def test_damping_both_ways():
    actions, _ = run([FAIL, CLEAN, FAIL, FAIL, FAIL, CLEAN, CLEAN, FAIL, CLEAN, CLEAN, CLEAN], fail_after=2,
                     resume_after=3)
    #                FAIL    CLEAN   FAIL    FAIL     FAIL    CLEAN   CLEAN   FAIL    CLEAN   CLEAN   CLEAN
    assert actions == ["none", "none", "none", "drain", "none", "none", "none", "none", "none", "none", "resume"]


def test_admin_drain_never_resumed_and_not_redrained():
    actions, reason = run([CLEAN] * 5 + [FAIL] + [CLEAN] * 5, reason="maintenance")
    assert set(actions) == {"none"} and reason == "maintenance"
    d, _ = P.decide("n1", FAIL, P.NodeState(), True, "maintenance")
    assert d.action == "none" and "not slurmkit's" in d.why
    d, _ = P.decide("n1", CLEAN, P.NodeState(cleans=9), True, "maintenance")
    assert d.action == "none" and d.why == "admin drain kept"


def test_bench_drain_left_to_bench_and_unreachable_counts_nothing():
    d, _ = P.decide("n1", CLEAN, P.NodeState(cleans=5), True, "slurmkit:bench busbw 12.1 < 40 GB/s vs peers")
    assert d.action == "none" and "bench" in d.why
    state = P.NodeState(fails=0, cleans=1)
    d, new = P.decide("n1", None, state, True, "slurmkit:gpu-count 7/8")
    assert d.action == "none" and d.ok is None and (new.fails, new.cleans) == (0, 1)
    with pytest.raises(ValueError):
        P.decide("n1", CLEAN, state, False, None, fail_after=0)


def test_store_round_trip(tmp_path):
    store = P.Store(tmp_path / "health")
    assert store.load() == {} and store.history() == []
    store.save({"n1": P.NodeState(2, 0, [{"id": "munge", "ok": False, "message": "x"}])})
    assert store.load()["n1"] == P.NodeState(2, 0, [{"id": "munge", "ok": False, "message": "x"}])
    store.append({"time": 1.0, "nodes": {"n1": {"ok": False}}})
    store.append({"time": 2.0, "nodes": {"n1": {"ok": True}}})
    with open(store.history_file, "a") as f:
        f.write('{"cut sh')
    assert [h["time"] for h in store.history()] == [1.0, 2.0]
    store.state_file.write_text("{not json")
    assert store.load() == {}


def test_drained_by_names_whose_drain_a_reason_is():
    from slurmkit.health.policy import drain_detail, drained_by

    # reasons as `scontrol -o show node` prints them, with the [user@time] stamp Slurm appends
    assert drained_by("slurmkit:gpu-count 7/8 [root@2026-11-21T23:10:35]") == "slurmkit:health"
    assert drain_detail("slurmkit:gpu-count 7/8 [root@2026-11-21T23:10:35]") == "gpu-count 7/8"
    assert drained_by("slurmkit:bench busbw 12.1 < 40 GB/s") == "slurmkit:bench"
    assert drain_detail("slurmkit:bench busbw 12.1 < 40 GB/s") == "bench busbw 12.1 < 40 GB/s"
    assert drained_by("slurmkit:benchmark-dir missing") == "slurmkit:health"  # a check named bench*, not bench
    assert drained_by("maintenance [root@2026-11-21T23:10:35]") is None
    assert drained_by("fixture: drained by hand") is None and drained_by(None) is None and drained_by("") is None
