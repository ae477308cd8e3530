"""bench --drain's pure decisions (slurmkit.bench.drain): the reason, what is re-checked, drained and resumed."""

from slurmkit.bench.drain import Action, after_bench, drain_reason, to_recheck
from slurmkit.health.policy import REASON_MAX

RATIO = {"node": "bn-3", "kind": "node", "message": "bn-3: slow", "ratio": 0.0123, "threshold": 0.3}
ABS = {"node": "bn-2", "kind": "node", "message": "bn-2: slow", "busbw_gbps": 12.14, "threshold": 40.0}


def test_reason_names_bench_and_the_evidence():
    assert drain_reason(RATIO) == "slurmkit:bench busbw 0.0123 < 0.3 of the same-run baseline"
    assert drain_reason(ABS) == "slurmkit:bench busbw 12.1 < 40 GB/s"
    assert drain_reason({**ABS, "busbw_gbps": None}) == "slurmkit:bench failed pairs (needs >= 40 GB/s)"


def test_reason_is_cut_to_slurms_length():
    long = drain_reason({**ABS, "threshold": 1e200, "busbw_gbps": 1e199})
    assert len(long) <= REASON_MAX and long.startswith("slurmkit:bench busbw ")


def test_only_bench_drains_are_rechecked():
    slurm = {"a": (True, "slurmkit:bench busbw 0.01 < 0.3 of the same-run baseline"), "b": (True, "maintenance"),
             "c": (True, "slurmkit:gpu-count 7/8"), "d": (False, None), "e": (True, "slurmkit:bench x")}
    assert to_recheck(["a", "b", "c", "d"], slurm) == {"a": slurm["a"][1]}  # e: not in this bench


def test_a_node_culprit_is_drained_a_link_is_not():
    link = {"link": ["a", "b"], "kind": "link", "message": "a-b", "ratio": 0.1, "threshold": 0.3}
    acts = after_bench([RATIO, link], False, {}, {})
    assert acts == [Action("bn-3", "drain", drain_reason(RATIO))]


def test_an_admin_or_health_drain_is_left_alone():
    for reason in ("maintenance", "slurmkit:gpu-count 7/8"):
        assert after_bench([RATIO], False, {}, {"bn-3": (True, reason)}) == []


def test_a_rechecked_node_resumes_only_after_a_passing_bench():
    old = "slurmkit:bench busbw 0.01 < 0.3 of the same-run baseline"
    assert after_bench([], True, {"bn-3": old}, {"bn-3": (True, old)}) == [Action("bn-3", "resume")]
    # failed without naming it: drained again with its earlier reason
    assert after_bench([], False, {"bn-3": old}, {"bn-3": (True, old)}) == [Action("bn-3", "drain", old)]
    # named again: the new evidence
    assert after_bench([RATIO], False, {"bn-3": old}, {"bn-3": (True, old)}) == [
        Action("bn-3", "drain", drain_reason(RATIO))]


def test_drain_needs_pairs_mode():
    from click.testing import CliRunner

    from slurmkit.cli import cli

    r = CliRunner().invoke(cli, ["bench", "--mode", "nodes", "--drain", "--profile", "local"])
    assert r.exit_code == 2 and "--drain needs --mode pairs" in r.output, r.output
