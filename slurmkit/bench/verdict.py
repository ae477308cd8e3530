"""Pass or fail for an acceptance bench, from parsed nccl-tests runs. Pure: runs in, a Verdict out.

The rule
    * Correctness, always: a run that failed or aborted (a ``Test ... failure`` line, a cut-off row: the
      parser's ``Run.errors``), a run with no result rows, a row with ``#wrong > 0`` (out-of-place or in-place),
      or ``Out of bounds values`` > 0 fails. Old logs print a maximum error instead of ``#wrong``; it is not
      judged (its tolerance depends on the dtype and the nccl-tests version).
    * Bandwidth, when an expectation is given (``--profile`` or ``--expect``): for every run of the profile's
      collective, the **out-of-place busbw averaged over the rows whose size is at least the minimum size** must
      reach the expectation. The out-of-place column is the one nccl-tests' documentation and published
      acceptance figures quote; the in-place average is reported beside it. The average (not the maximum) is
      used so that one lucky size cannot pass a cluster and one noisy size cannot hide behind a good one; with a
      single-size run (``-b 16G -e 16G``, as health checks run it) it is that row's busbw. Without a minimum
      size, the rows of the largest size measured are judged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Iterable, Protocol, Sequence

from slurmkit.errors import ConfigError, Problem, SlurmkitError

PROFILE_KEYS = ("name", "description", "source", "op", "min_size_bytes", "min_busbw_gbps")


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
class Profile:
    """A published expectation: ``op`` must reach ``min_busbw_gbps`` busbw at sizes >= ``min_size_bytes``."""

    name: str
    description: str
    source: str
    op: str
    min_size_bytes: int
    min_busbw_gbps: float


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
    import yaml

    if text is None:
        text = resources.files("slurmkit.bench").joinpath("profiles.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
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
        missing = [k for k in PROFILE_KEYS if k not in entry]
        for key in missing:
            problems.append(Problem(f"{path}.{key}", "missing"))
        if missing:
            continue
        size, bw = entry["min_size_bytes"], entry["min_busbw_gbps"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(Problem(f"{path}.min_size_bytes", "expected a non-negative integer"))
            continue
        if not isinstance(bw, (int, float)) or isinstance(bw, bool) or bw <= 0:
            problems.append(Problem(f"{path}.min_busbw_gbps", "expected a positive number"))
            continue
        name = str(entry["name"])
        if name in profiles:
            problems.append(Problem(f"{path}.name", f"duplicate profile name {name!r}"))
            continue
        profiles[name] = Profile(name, str(entry["description"]).strip(), str(entry["source"]).strip(),
                                 str(entry["op"]), size, float(bw))
    if problems:
        raise ConfigError(source, problems)
    return profiles


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
    in-place one over the same rows; both None when bandwidth was not judged for this run."""

    source: str
    run: int
    collective: str | None
    passed: bool
    reasons: list[str] = field(default_factory=list)
    sizes_judged: list[int] = field(default_factory=list)
    busbw_gbps: float | None = None
    ip_busbw_gbps: float | None = None
    bandwidth_judged: bool = False  # a run of the expected collective, with rows, judged on bandwidth


@dataclass
class Verdict:
    """The outcome: ``passed``, and every reason for a fail (empty when it passed)."""

    passed: bool
    reasons: list[str]
    runs: list[RunJudgement]
    profile: str | None = None
    op: str | None = None
    expect_gbps: float | None = None
    min_size_bytes: int | None = None
    measured_gbps: float | None = None  # the worst judged run's out-of-place busbw average
    statistic: str = "out-of-place busbw, averaged over the rows with size >= min_size_bytes"

    @property
    def exit_code(self) -> int:
        """``slurmkit bench``'s exit code for this verdict: 0 pass, 1 fail."""
        return 0 if self.passed else 1

    def summary(self) -> str:
        """One line for people: PASS/FAIL, measured against expected."""
        word = "PASS" if self.passed else "FAIL"
        if self.expect_gbps is None:
            what = "correctness only (no bandwidth expectation)"
        elif self.measured_gbps is None:
            what = f"expected >= {self.expect_gbps:g} GB/s busbw, nothing measured"
        else:
            at = f" at >= {human_size(self.min_size_bytes)}" if self.min_size_bytes is not None else ""
            what = f"busbw {self.measured_gbps:.2f} GB/s (expected >= {self.expect_gbps:g}{at})"
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
) -> Verdict:
    """Judge parsed runs (``slurmkit.bench.parse.Run`` or anything with the same fields).

    ``profile`` (a name or a Profile) gives the collective, the minimum size and the expected busbw;
    ``expect_gbps``, ``min_size_bytes`` and ``op`` override its values (``op`` None with no profile: every
    run's rows are judged). With neither profile nor expectation, only
    correctness is judged. Raises UnknownProfile for a name that is not a profile.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    expect = expect_gbps if expect_gbps is not None else (prof.min_busbw_gbps if prof else None)
    min_size = min_size_bytes if min_size_bytes is not None else (prof.min_size_bytes if prof else None)
    op = _norm_op(op) if op is not None else (_norm_op(prof.op) if prof else None)

    verdict = Verdict(passed=False, reasons=[], runs=[], profile=prof.name if prof else None, op=op,
                      expect_gbps=expect, min_size_bytes=min_size)
    if not runs:
        verdict.reasons.append("no nccl-tests run found in the output")
        return verdict

    judged_bw: list[float] = []
    for run in runs:
        rj = _judge_run(run, op, expect, min_size)
        verdict.runs.append(rj)
        verdict.reasons.extend(rj.reasons)
        if rj.busbw_gbps is not None:
            judged_bw.append(rj.busbw_gbps)

    # runs without rows already have their reason; runs with rows but of another collective do not
    if expect is not None and not any(rj.bandwidth_judged for rj in verdict.runs) and any(r.rows for r in runs):
        found = sorted({rj.collective or "unknown" for rj in verdict.runs})
        verdict.reasons.append(f"no {op} run to judge bandwidth on (runs found: {', '.join(found)})")
    verdict.measured_gbps = min(judged_bw) if judged_bw else None
    verdict.passed = not verdict.reasons
    return verdict


def _label(run: _RunLike) -> str:
    coll = getattr(run, "collective", None) or "run"
    return f"{run.source} #{run.run} ({coll})"


def _judge_run(run: _RunLike, op: str | None, expect: float | None, min_size: int | None) -> RunJudgement:
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
    if expect is not None and matches and run.rows:
        rj.bandwidth_judged = True
        threshold = min_size if min_size is not None else max(r.size_bytes for r in run.rows)
        rows = [r for r in run.rows if r.size_bytes >= threshold]
        if not rows:
            largest = max(r.size_bytes for r in run.rows)
            rj.reasons.append(f"{label}: no row at or above {human_size(threshold)} "
                              f"(largest measured: {human_size(largest)}); run up to -e {human_size(threshold)}")
        else:
            rj.sizes_judged = [r.size_bytes for r in rows]
            rj.busbw_gbps = _mean([r.oop_busbw_gbps for r in rows])
            rj.ip_busbw_gbps = _mean([r.ip_busbw_gbps for r in rows])
            if rj.busbw_gbps is None:
                rj.reasons.append(f"{label}: no out-of-place busbw value in the rows >= {human_size(threshold)}")
            elif rj.busbw_gbps < expect:
                rj.reasons.append(
                    f"{label}: busbw {rj.busbw_gbps:.2f} GB/s < expected {expect:g} GB/s "
                    f"(out-of-place, average over {len(rows)} size(s) >= {human_size(threshold)})"
                )
    rj.passed = not rj.reasons
    return rj
