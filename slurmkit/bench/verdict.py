"""Pass or fail for an acceptance bench, from parsed nccl-tests runs. Pure: runs in, a Verdict out.

The rule
    * Correctness, always: a run that failed or aborted (a ``Test ... failure`` line, a cut-off row: the
      parser's ``Run.errors``), a run with no result rows, a row with ``#wrong > 0`` (out-of-place or in-place),
      or ``Out of bounds values`` > 0 fails. Old logs print a maximum error instead of ``#wrong``; it is not
      judged (its tolerance depends on the dtype and the nccl-tests version).
    * Bandwidth, when an expectation is given (``--profile`` or ``--expect``): for every run of the profile's
      collective, the **out-of-place busbw averaged over the rows whose size is at least the minimum size** must
      reach the expectation: an absolute one (``min_busbw_gbps``), a ratio to a same-run baseline
      (``baseline``), or both. The out-of-place column is the one nccl-tests' documentation and published
      acceptance figures quote; the in-place average is reported beside it. The average (not the maximum) is
      used so that one lucky size cannot pass a cluster and one noisy size cannot hide behind a good one; with a
      single-size run (``-b 16G -e 16G``, as health checks run it) it is that row's busbw. Without a minimum
      size, the rows of the largest size measured are judged.
    * Same-run baseline (a profile's ``baseline: {measure: one-node, min_ratio: R}``): in the same Slurm job,
      just before and again just after the measured step, the same bench runs with the same number of ranks on
      the job's first node (:data:`BASELINE_MEASURES`); the baseline figure is the lower of those runs'
      statistics (the same rows, the same average), and the measured busbw must reach ``R`` times it. A fixed
      number depends on how fast the machine is; a ratio to the same nodes measured around it without the
      network between them does not, and two baselines bracketing the measurement follow a load that changes
      during the job. A run without a usable baseline (its step failed, no rows) fails, naming it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Iterable, Mapping, Protocol, Sequence

from slurmkit.errors import ConfigError, Problem, SlurmkitError

PROFILE_KEYS = ("name", "description", "source", "op", "min_size_bytes", "min_busbw_gbps", "baseline")
REQUIRED_KEYS = ("name", "description", "source", "op", "min_size_bytes")
BASELINE_KEYS = ("measure", "min_ratio")
#: What a baseline can measure, and how it is run (in the same job, on the same nodes, before the measured step).
BASELINE_MEASURES = {
    "one-node": "the same bench with the same number of ranks (with GPUs: the GPUs of one node) on the job's "
                "first node, without the network between nodes",
}


class _RowLike(Protocol):
    size_bytes: int
    oop_busbw_gbps: float | None
    ip_busbw_gbps: float | None
    oop_wrong: int | None
    ip_wrong: int | None


class _RunLike(Protocol):
    source: str
    run: int
    collective: str | None
    rows: Sequence[_RowLike]
    errors: Sequence[Any]


@dataclass(frozen=True)
class Baseline:
    """A same-run baseline: what to measure (a key of :data:`BASELINE_MEASURES`) and the least ratio of the
    measured busbw to it."""

    measure: str
    min_ratio: float


@dataclass(frozen=True)
class Profile:
    """A published expectation: ``op`` must reach ``min_busbw_gbps`` busbw at sizes >= ``min_size_bytes``,
    and/or ``baseline.min_ratio`` times a baseline measured in the same job (at least one of the two)."""

    name: str
    description: str
    source: str
    op: str
    min_size_bytes: int
    min_busbw_gbps: float | None = None
    baseline: Baseline | None = None


class UnknownProfile(SlurmkitError):
    """``--profile NAME`` names no profile. The message lists the valid names."""

    exit_code = 2

    def __init__(self, name: str, valid: Iterable[str]):
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown bench profile {name!r}; valid profiles: {', '.join(self.valid)}")


def load_profiles(text: str | None = None, source: str = "slurmkit/bench/profiles.yaml") -> dict[str, Profile]:
    """The profiles by name: from ``text`` (YAML) when given, else the packaged profiles.yaml.

    Raises ConfigError listing every problem (unknown or missing keys, wrong types, duplicate names).
    """
    from slurmkit.cluster import load_yaml

    if text is None:
        text = resources.files("slurmkit.bench").joinpath("profiles.yaml").read_text(encoding="utf-8")
    data = load_yaml(text, source)[0] or {}
    problems: list[Problem] = []
    if not isinstance(data, dict) or set(data) != {"profiles"} or not isinstance(data["profiles"], list):
        raise ConfigError(source, [Problem("", "expected a mapping with one key, 'profiles', holding a list")])
    profiles: dict[str, Profile] = {}
    for i, entry in enumerate(data["profiles"]):
        path = f"profiles[{i}]"
        if not isinstance(entry, dict):
            problems.append(Problem(path, "expected a mapping"))
            continue
        for key in sorted(set(entry) - set(PROFILE_KEYS)):
            problems.append(Problem(f"{path}.{key}", f"unknown key; valid keys: {', '.join(PROFILE_KEYS)}"))
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        for key in missing:
            problems.append(Problem(f"{path}.{key}", "missing"))
        if missing:
            continue
        if "min_busbw_gbps" not in entry and "baseline" not in entry:
            problems.append(Problem(path, "needs min_busbw_gbps (GB/s), baseline ({measure, min_ratio}) or both"))
            continue
        size, bw = entry["min_size_bytes"], entry.get("min_busbw_gbps")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(Problem(f"{path}.min_size_bytes", "expected a non-negative integer"))
            continue
        if bw is not None and (not isinstance(bw, (int, float)) or isinstance(bw, bool) or bw <= 0):
            problems.append(Problem(f"{path}.min_busbw_gbps", "expected a positive number"))
            continue
        baseline = None
        if "baseline" in entry:
            baseline = _baseline(entry["baseline"], f"{path}.baseline", problems)
            if baseline is None:
                continue
        name = str(entry["name"])
        if name in profiles:
            problems.append(Problem(f"{path}.name", f"duplicate profile name {name!r}"))
            continue
        profiles[name] = Profile(name, str(entry["description"]).strip(), str(entry["source"]).strip(),
                                 str(entry["op"]), size, None if bw is None else float(bw), baseline)
    if problems:
        raise ConfigError(source, problems)
    return profiles


def _baseline(value: Any, path: str, problems: list[Problem]) -> Baseline | None:
    if not isinstance(value, dict):
        problems.append(Problem(path, "expected a mapping: {measure: one-node, min_ratio: R}"))
        return None
    before = len(problems)
    for key in sorted(set(value) - set(BASELINE_KEYS)):
        problems.append(Problem(f"{path}.{key}", f"unknown key; valid keys: {', '.join(BASELINE_KEYS)}"))
    for key in BASELINE_KEYS:
        if key not in value:
            problems.append(Problem(f"{path}.{key}", "missing"))
    measure, ratio = value.get("measure"), value.get("min_ratio")
    if "measure" in value and measure not in BASELINE_MEASURES:
        problems.append(Problem(f"{path}.measure", f"unknown measure {measure!r}; valid: "
                                                   f"{', '.join(BASELINE_MEASURES)}"))
    if "min_ratio" in value and (not isinstance(ratio, (int, float)) or isinstance(ratio, bool)
                                 or not 0 < ratio <= 1):
        problems.append(Problem(f"{path}.min_ratio", "expected a number in (0, 1]"))
    return None if len(problems) > before else Baseline(str(measure), float(ratio))


def get_profile(name: str, profiles: dict[str, Profile] | None = None) -> Profile:
    """The profile called ``name``; UnknownProfile (naming the valid ones) when there is none."""
    profiles = load_profiles() if profiles is None else profiles
    try:
        return profiles[name]
    except KeyError:
        raise UnknownProfile(name, profiles) from None


@dataclass
class RunJudgement:
    """What was found in one run. ``busbw_gbps`` is the judged out-of-place average, ``ip_busbw_gbps`` the
    in-place one over the same rows; both None when bandwidth was not judged for this run. With a same-run
    baseline: ``baseline_gbps`` (the baseline run's same statistic) and ``ratio`` (busbw / baseline)."""

    source: str
    run: int
    collective: str | None
    passed: bool
    reasons: list[str] = field(default_factory=list)
    sizes_judged: list[int] = field(default_factory=list)
    busbw_gbps: float | None = None
    ip_busbw_gbps: float | None = None
    bandwidth_judged: bool = False  # a run of the expected collective, with rows, judged on bandwidth
    baseline_gbps: float | None = None
    ratio: float | None = None


@dataclass
class Verdict:
    """The outcome: ``passed``, and every reason for a fail (empty when it passed).

    ``measured_gbps`` is the worst judged run's busbw (with a baseline: the run of the lowest ratio, and
    ``baseline_gbps`` / ``ratio`` are that run's); ``min_ratio`` and ``baseline_measure`` the baseline rule."""

    passed: bool
    reasons: list[str]
    runs: list[RunJudgement]
    profile: str | None = None
    op: str | None = None
    expect_gbps: float | None = None
    min_size_bytes: int | None = None
    measured_gbps: float | None = None
    statistic: str = "out-of-place busbw, averaged over the rows with size >= min_size_bytes"
    baseline_measure: str | None = None
    min_ratio: float | None = None
    baseline_gbps: float | None = None
    ratio: float | None = None

    @property
    def exit_code(self) -> int:
        """``slurmkit bench``'s exit code for this verdict: 0 pass, 1 fail."""
        return 0 if self.passed else 1

    def summary(self) -> str:
        """One line for people: PASS/FAIL, measured against expected (and against the same-run baseline)."""
        word = "PASS" if self.passed else "FAIL"
        at = f" at >= {human_size(self.min_size_bytes)}" if self.min_size_bytes is not None else ""
        if self.expect_gbps is None and self.min_ratio is None:
            what = "correctness only (no bandwidth expectation)"
        elif self.measured_gbps is None:
            wanted = [f">= {self.expect_gbps:g} GB/s busbw"] if self.expect_gbps is not None else []
            if self.min_ratio is not None:
                wanted.append(f">= {self.min_ratio:g} of the same-run baseline")
            what = f"expected {' and '.join(wanted)}, nothing measured"
        else:
            parts = [f"busbw {self.measured_gbps:.2f} GB/s"]
            if self.expect_gbps is not None:
                parts.append(f"(expected >= {self.expect_gbps:g}{at})")
            if self.min_ratio is not None:
                if self.ratio is None:
                    parts.append(f"= ? of the same-run baseline (none measured), needs >= {self.min_ratio:g}")
                else:
                    parts.append(f"= {self.ratio:.2f} of the same-run baseline {self.baseline_gbps:.2f} GB/s, "
                                 f"needs >= {self.min_ratio:g}")
                if self.expect_gbps is None:
                    parts.append(f"(out-of-place average{at})")
            what = " ".join(parts)
        label = f" [{self.profile}]" if self.profile else ""
        return f"{word}{label}: {what}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"summary": self.summary()}


def human_size(size: int | None) -> str:
    """8589934592 -> '8 GiB', 1536 -> '1.5 KiB'."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:g} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _norm_op(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip().lower()
    return name[: -len("_perf")] if name.endswith("_perf") else name


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None


def judge(
    runs: Sequence[_RunLike],
    profile: str | Profile | None = None,
    expect_gbps: float | None = None,
    min_size_bytes: int | None = None,
    op: str | None = None,
    baselines: Mapping[str, Sequence[_RunLike]] | None = None,
    min_ratio: float | None = None,
    use_baseline: bool = True,
) -> Verdict:
    """Judge parsed runs (``slurmkit.bench.parse.Run`` or anything with the same fields).

    ``profile`` (a name or a Profile) gives the collective, the minimum size and the expectations;
    ``expect_gbps``, ``min_size_bytes``, ``op`` and ``min_ratio`` override its values (``op`` None with no
    profile: every run's rows are judged). ``expect_gbps`` given alone replaces the profile's whole bandwidth
    rule (no baseline ratio unless ``min_ratio`` is given too). ``baselines`` maps a run's ``source`` to the
    baseline runs measured in the same job; a baseline rule with no baseline for a run fails that run;
    ``use_baseline`` False drops the profile's baseline rule (single-node jobs have no network to isolate). With
    neither profile nor expectation, only correctness is judged (baseline runs included). Raises
    UnknownProfile for a name that is not a profile.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if expect_gbps is not None:
        expect, ratio_rule = expect_gbps, min_ratio
    else:
        expect = prof.min_busbw_gbps if prof else None
        ratio_rule = min_ratio if min_ratio is not None else (
            prof.baseline.min_ratio if prof and prof.baseline and use_baseline else None)
    min_size = min_size_bytes if min_size_bytes is not None else (prof.min_size_bytes if prof else None)
    op = _norm_op(op) if op is not None else (_norm_op(prof.op) if prof else None)
    baselines = baselines or {}

    verdict = Verdict(passed=False, reasons=[], runs=[], profile=prof.name if prof else None, op=op,
                      expect_gbps=expect, min_size_bytes=min_size, min_ratio=ratio_rule,
                      baseline_measure=(prof.baseline.measure if prof and prof.baseline and ratio_rule is not None
                                        else ("one-node" if ratio_rule is not None else None)))
    if not runs:
        verdict.reasons.append("no nccl-tests run found in the output")
        return verdict

    judged: list[RunJudgement] = []
    for run in runs:
        base = None
        if ratio_rule is not None:
            base = _baseline_figure(run, baselines.get(run.source), op, min_size, verdict.reasons)
        rj = _judge_run(run, op, expect, min_size, ratio_rule, base)
        verdict.runs.append(rj)
        verdict.reasons.extend(rj.reasons)
        if rj.busbw_gbps is not None:
            judged.append(rj)

    bandwidth = expect is not None or ratio_rule is not None
    # runs without rows already have their reason; runs with rows but of another collective do not
    if bandwidth and not any(rj.bandwidth_judged for rj in verdict.runs) and any(r.rows for r in runs):
        found = sorted({rj.collective or "unknown" for rj in verdict.runs})
        verdict.reasons.append(f"no {op} run to judge bandwidth on (runs found: {', '.join(found)})")
    if judged:
        with_ratio = [rj for rj in judged if rj.ratio is not None]
        worst = min(with_ratio, key=lambda rj: rj.ratio) if with_ratio else min(judged, key=lambda rj: rj.busbw_gbps)
        verdict.measured_gbps = min(rj.busbw_gbps for rj in judged) if not with_ratio else worst.busbw_gbps
        verdict.baseline_gbps, verdict.ratio = worst.baseline_gbps, worst.ratio
    verdict.passed = not verdict.reasons
    return verdict


def _label(run: _RunLike) -> str:
    coll = getattr(run, "collective", None) or "run"
    return f"{run.source} #{run.run} ({coll})"


def _statistic(run: _RunLike, min_size: int | None) -> tuple[list, float | None]:
    """The rows judged (size >= min_size, else the largest size) and their out-of-place busbw average."""
    if not run.rows:
        return [], None
    threshold = min_size if min_size is not None else max(r.size_bytes for r in run.rows)
    rows = [r for r in run.rows if r.size_bytes >= threshold]
    return rows, _mean([r.oop_busbw_gbps for r in rows])


def _baseline_figure(run: _RunLike, base_runs: Sequence[_RunLike] | None, op: str | None, min_size: int | None,
                     reasons: list[str]) -> float | None:
    """The baseline's statistic for ``run`` (None, with a reason, when there is none to use): the lowest of the
    job's baseline runs of the collective (one before and one after the measured step). The baseline runs'
    correctness is judged as any run's."""
    label = f"{run.source} baseline"
    if not base_runs:
        reasons.append(f"{_label(run)}: no same-run baseline in the job's log (its baseline step did not run)")
        return None
    figures = []
    for b in base_runs:
        bj = _judge_run(b, None, None, None, None, None)
        reasons.extend(r.replace(_label(b), label, 1) for r in bj.reasons)
        if bj.reasons:
            return None
        collective = _norm_op(getattr(b, "collective", None))
        if op is None or collective is None or collective == op:
            rows, fig = _statistic(b, min_size)
            if not rows:
                largest = max(r.size_bytes for r in b.rows)
                reasons.append(f"{label}: no row at or above {human_size(min_size)} (largest measured: "
                               f"{human_size(largest)})")
                return None
            figures.append(fig)
    # the baselines before and after the measured step bracket it: the lower one is the slower conditions
    figure = min((f for f in figures if f is not None), default=None)
    if figure is None or figure <= 0:
        reasons.append(f"{label}: no out-of-place busbw to compare with")
        return None
    return figure


def _judge_run(run: _RunLike, op: str | None, expect: float | None, min_size: int | None,
               min_ratio: float | None = None, baseline: float | None = None) -> RunJudgement:
    collective = _norm_op(getattr(run, "collective", None))
    rj = RunJudgement(source=run.source, run=run.run, collective=collective, passed=False)
    label = _label(run)

    errors = list(getattr(run, "errors", []) or [])
    for err in errors[:3]:
        line, message = getattr(err, "line", None), getattr(err, "message", str(err))
        where = f"line {line}: " if line is not None else ""
        rj.reasons.append(f"{label}: failed: {where}{message}")
    if len(errors) > 3:
        rj.reasons.append(f"{label}: and {len(errors) - 3} more failure(s)")
    if not run.rows:
        rj.reasons.append(f"{label}: no result rows (the run failed or aborted before its first size)")

    wrong_rows = 0
    for row in run.rows:
        for place, wrong in (("out-of-place", row.oop_wrong), ("in-place", row.ip_wrong)):
            if wrong is not None and wrong > 0:
                wrong_rows += 1
                rj.reasons.append(f"{label}: {wrong} wrong element(s) {place} at {human_size(row.size_bytes)}")
    oob = getattr(run, "out_of_bounds", None)
    if oob and not wrong_rows:
        rj.reasons.append(f"{label}: Out of bounds values: {oob}")

    matches = op is None or collective is None or collective == op
    if (expect is not None or min_ratio is not None) and matches and run.rows:
        rj.bandwidth_judged = True
        threshold = min_size if min_size is not None else max(r.size_bytes for r in run.rows)
        rows, rj.busbw_gbps = _statistic(run, min_size)
        what = f"out-of-place, average over {len(rows)} size(s) >= {human_size(threshold)}"
        if not rows:
            largest = max(r.size_bytes for r in run.rows)
            rj.reasons.append(f"{label}: no row at or above {human_size(threshold)} "
                              f"(largest measured: {human_size(largest)}); run up to -e {human_size(threshold)}")
        else:
            rj.sizes_judged = [r.size_bytes for r in rows]
            rj.ip_busbw_gbps = _mean([r.ip_busbw_gbps for r in rows])
            if rj.busbw_gbps is None:
                rj.reasons.append(f"{label}: no out-of-place busbw value in the rows >= {human_size(threshold)}")
            else:
                if expect is not None and rj.busbw_gbps < expect:
                    rj.reasons.append(f"{label}: busbw {rj.busbw_gbps:.2f} GB/s < expected {expect:g} GB/s ({what})")
                if min_ratio is not None and baseline is not None:
                    rj.baseline_gbps, rj.ratio = baseline, rj.busbw_gbps / baseline
                    if rj.ratio < min_ratio:
                        rj.reasons.append(
                            f"{label}: busbw {rj.busbw_gbps:.2f} GB/s = {rj.ratio:.2f} of the same-run baseline "
                            f"{baseline:.2f} GB/s, needs >= {min_ratio:g} ({what})")
    rj.passed = not rj.reasons
    return rj
