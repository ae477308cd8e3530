"""``slurmkit bench``: a BenchSpec becomes Slurm jobs, their logs a verdict, and the verdict a saved run.

Build, then execute:

* pure: :func:`engine_command` (the benchmark's argv for nccl-tests or the torch engine),
  :func:`job_request` (the sbatch request for one job on a node set), :func:`plan` (the jobs of the ``cluster``
  and ``nodes`` modes), :func:`judged_busbw` (a log's busbw at its largest size), :func:`nccl_env_from_facts`;
* through a :class:`slurmkit.slurm.Backend`: :func:`run_jobs` submits a batch of jobs at once and waits for all
  of them, :func:`run_bench` runs a mode (for ``pairs``, round after round through
  :func:`slurmkit.bench.localize.localize`), judges, localises and saves the run
  (:func:`slurmkit.bench.results.save_run`) with its report.

Engines
    ``nccl-tests``: ``<dir>/<op>_perf -b -e -f -g 1 -c -n -w``, one rank per GPU, under ``srun`` (the MPI
    plugin given by ``SLURM_MPI_TYPE``, default ``pmix``: the variable is srun's ``--mpi``) or ``mpirun`` over
    the job's hostfile. Tested here by the generated script and by parsing real logs only (no GPU here).
    ``torch``: ``PYTHON -m slurmkit.bench.torch_engine`` with the same flags, under srun, one task per GPU with
    NCCL, or one task per node with gloo on CPU nodes (``gpus_per_node`` 0). The nodes need torch and slurmkit
    importable by PYTHON. Rank 0 prints ``# torch version X`` (from the installed package metadata) first.

Same-run baseline
    With ``BenchSpec.baseline`` (``one-node``: set by :func:`run_bench` from a profile's ``baseline:``), every
    job of two or more nodes runs the same engine command as a step of its own on the job's first node, with the
    same number of ranks (with GPUs: that node's GPUs), before and again after the measured step. Each step's
    output follows a marker line (:data:`STEP_MARKER`); :func:`split_steps` cuts the log there, and the verdict
    divides each measured run's busbw by its own job's baseline figure: the lower of the two baselines that
    bracket it (a machine that got busier, or quieter, during the job is judged by its slower conditions; one
    baseline taken before a load came measured healthy pairs at 0.21 of it). Single-node jobs (``nodes`` mode) run no
    baseline: they are judged against each other (the median).

Outcomes
    A job that ends in any state but COMPLETED, or whose log holds no nccl-tests run, is a failed run in the
    verdict (never dropped). A job that cannot be submitted raises :class:`BenchCouldNotRun` (exit code 2) after
    cancelling the jobs of its batch that were submitted.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from slurmkit.errors import SlurmkitError

ENGINES = ("nccl-tests", "torch")
MODES = ("cluster", "nodes", "pairs")
BENCH_LAUNCHERS = ("srun", "mpirun")
OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "alltoall")
DEFAULT_NCCL_TESTS_DIR = "/opt/nccl-tests/build"

# Sweeps when -b/-e/-f/-n/-w are not given: nccl-tests' usual acceptance sweep on GPUs (up to the 8 GiB the
# published profiles are judged at), a small one for CPU ranks over gloo.
GPU_SWEEP = {"min_bytes": "8", "max_bytes": "8G", "step_factor": 2, "iters": 20, "warmup": 5}
CPU_SWEEP = {"min_bytes": "1M", "max_bytes": "64M", "step_factor": 4, "iters": 5, "warmup": 2}

#: Printed before each step of a job with a baseline: ``# slurmkit bench step: baseline`` / ``... measured``.
STEP_MARKER = "# slurmkit bench step: "
BASELINE_MEASURES = ("one-node",)

_TORCH_VERSION_RE = re.compile(r"^# torch version (\S+)", re.M)
# The rendezvous address is the job's SLURMKIT_MASTER_ADDR (node 0's NodeAddr) unless MASTER_ADDR is set; rank 0
# prints the torch version without importing torch (package metadata); then every rank runs the engine.
_TORCH_PRELUDE = (
    'export MASTER_ADDR="${MASTER_ADDR:-${SLURMKIT_MASTER_ADDR:-}}"; [ -n "$MASTER_ADDR" ] || unset MASTER_ADDR; '
    '[ "${SLURM_PROCID:-0}" != 0 ] || "$1" -c '
    '"import importlib.metadata as m; print(\'# torch version \' + m.version(\'torch\'), flush=True)" || true; '
    'exec "$@"'
)


class BenchCouldNotRun(SlurmkitError):
    """The bench could not run (a job could not be submitted, no nodes to run on): exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class BenchSpec:
    """What to run. ``nodes``: explicit node names (``--nodes``); ``nnodes``: how many for ``cluster`` mode when
    no names are given. Sweep fields left None take :data:`GPU_SWEEP` or :data:`CPU_SWEEP`."""

    engine: str = "nccl-tests"
    op: str = "all_reduce"
    mode: str = "cluster"
    nodes: tuple[str, ...] = ()
    nnodes: int | None = None
    min_bytes: str | None = None
    max_bytes: str | None = None
    step_factor: int | None = None
    iters: int | None = None
    warmup: int | None = None
    check: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None  # default: GPUs per node, or 1
    nccl_tests_dir: str = DEFAULT_NCCL_TESTS_DIR
    launcher: str = "srun"
    mpi: str = "pmix"
    partition: str | None = None
    python: str = "python3"
    nccl_env: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    chdir: str | None = None
    time_limit: str | None = "30"
    master_port: int = 29500
    baseline: str | None = None  # a same-run baseline step in every job of >= 2 nodes (BASELINE_MEASURES)

    def __post_init__(self) -> None:
        problems = []
        if self.baseline is not None and self.baseline not in BASELINE_MEASURES:
            problems.append(f"baseline {self.baseline!r} is not one of {', '.join(BASELINE_MEASURES)}")
        if self.engine not in ENGINES:
            problems.append(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.op not in OPS:
            problems.append(f"op {self.op!r} is not one of {', '.join(OPS)}")
        if self.launcher not in BENCH_LAUNCHERS:
            problems.append(f"launcher {self.launcher!r} is not one of {', '.join(BENCH_LAUNCHERS)}")
        if self.engine == "torch" and self.launcher != "srun":
            problems.append("the torch engine runs under srun only (--launcher srun)")
        if self.nnodes is not None and self.nnodes < 1:
            problems.append("-N must be >= 1")
        if self.check not in (0, 1):
            problems.append("-c must be 0 or 1")
        if problems:
            raise SlurmkitError("bad bench: " + "; ".join(problems))

    @property
    def sweep(self) -> dict[str, Any]:
        """The sweep as run: given values, defaults for the rest."""
        base = GPU_SWEEP if (self.engine == "nccl-tests" or self.gpus_per_node) else CPU_SWEEP
        given = {"min_bytes": self.min_bytes, "max_bytes": self.max_bytes, "step_factor": self.step_factor,
                 "iters": self.iters, "warmup": self.warmup}
        out = {k: (given[k] if given[k] is not None else v) for k, v in base.items()}
        out["check"] = self.check
        return out

    @property
    def ranks_per_node(self) -> int:
        return self.tasks_per_node or self.gpus_per_node or 1

    @property
    def torch_backend(self) -> str:
        return "nccl" if self.gpus_per_node else "gloo"


# ---------------------------------------------------------------------------------------------------------
# Pure: command lines and job requests


def engine_command(spec: BenchSpec) -> list[str]:
    """The argv every rank runs."""
    s = spec.sweep
    flags = ["-b", str(s["min_bytes"]), "-e", str(s["max_bytes"]), "-f", str(s["step_factor"])]
    timing = ["-c", str(s["check"]), "-n", str(s["iters"]), "-w", str(s["warmup"])]
    if spec.engine == "nccl-tests":
        return [f"{spec.nccl_tests_dir.rstrip('/')}/{spec.op}_perf", *flags, "-g", "1", *timing]
    return ["bash", "-c", _TORCH_PRELUDE, "slurmkit-bench", spec.python, "-m", "slurmkit.bench.torch_engine",
            *flags, *timing, "--op", spec.op, "--backend", spec.torch_backend]


def job_request(spec: BenchSpec, nodes: Sequence[str] = (), nnodes: int | None = None, name: str = "bench"):
    """The sbatch request (:class:`slurmkit.jobs.JobRequest`) of one bench job: on ``nodes`` when given (pinned
    with ``--nodelist``), else on any ``nnodes`` nodes."""
    from slurmkit import hostlist
    from slurmkit.jobs import build_job

    count = len(nodes) if nodes else (nnodes or 1)
    env = dict(spec.env)
    if spec.launcher == "srun" and spec.engine == "nccl-tests":
        env["SLURM_MPI_TYPE"] = spec.mpi  # srun reads its --mpi from this variable
    if spec.engine == "torch":
        env["MASTER_PORT"] = str(spec.master_port)
    request = build_job(
        command=engine_command(spec), name=f"slurmkit-{name}", nodes=count, gpus_per_node=spec.gpus_per_node,
        nproc_per_node=spec.ranks_per_node, partition=spec.partition, time=spec.time_limit,
        launcher=spec.launcher, env=env, nccl_env=dict(spec.nccl_env), output="slurmkit-bench-%j.out",
        chdir=spec.chdir, master_port=spec.master_port,
    )
    if nodes:
        request = dataclasses.replace(request, sbatch_args=(*request.sbatch_args,
                                                            f"--nodelist={hostlist.fold(list(nodes))}"))
    if spec.baseline and count >= 2:
        body, launch = request.script.rstrip("\n").rsplit("\n", 1)
        base = baseline_line(spec, count)
        steps = "\n".join([f"echo {shlex.quote(STEP_MARKER + 'baseline ' + spec.baseline)}", base,
                           f"echo {shlex.quote(STEP_MARKER + 'measured')}", launch,
                           f"echo {shlex.quote(STEP_MARKER + 'baseline ' + spec.baseline + ' after')}", base])
        request = dataclasses.replace(request, script=f"{body}\n{steps}\n")
    return request


def baseline_ranks(spec: BenchSpec, nnodes: int) -> int:
    """Ranks of the ``one-node`` baseline: the GPUs of one node with GPUs, else as many CPU ranks as the job
    runs in all (they share the node's cores, as the job's ranks share the nodes')."""
    return spec.gpus_per_node if spec.gpus_per_node else nnodes * spec.ranks_per_node


def baseline_line(spec: BenchSpec, nnodes: int) -> str:
    """The shell line of the baseline step: the engine command on the job's first node (``--overcommit``: CPU
    ranks may outnumber the CPUs the job holds there), its rendezvous on the next port."""
    n = baseline_ranks(spec, nnodes)
    gpus = [f"--gpus-per-node={spec.gpus_per_node}"] if spec.gpus_per_node else []
    srun = ["srun", "--nodes=1", f"--ntasks={n}", f"--ntasks-per-node={n}", *gpus, "--overcommit",
            "--kill-on-bad-exit=1"]
    env = f"MASTER_PORT={spec.master_port + 1} " if spec.engine == "torch" else ""
    return (f'{env}{" ".join(srun)} --nodelist="${{SLURMKIT_NODE_NAMES%%,*}}" '
            f"{' '.join(shlex.quote(a) for a in engine_command(spec))}")


def split_steps(log: str) -> tuple[str | None, str]:
    """(baseline output or None, measured output) of a job's log, cut at the :data:`STEP_MARKER` lines. A log
    without markers is all measured; what precedes the first marker goes with the measured output."""
    if STEP_MARKER not in log:
        return None, log
    baseline: list[str] = []
    measured: list[str] = []
    into = measured
    for line in log.splitlines(keepends=True):
        if line.startswith(STEP_MARKER):
            into = baseline if line[len(STEP_MARKER):].startswith("baseline") else measured
            continue
        into.append(line)
    return "".join(baseline), "".join(measured)


@dataclass(frozen=True)
class PlannedJob:
    """One job of a batch: its label (file name of its log), pinned nodes (may be empty) and node count."""

    label: str
    nodes: tuple[str, ...]
    nnodes: int
    attempt: int = 0


def plan(spec: BenchSpec, nodes: Sequence[str]) -> list[PlannedJob]:
    """The jobs of ``cluster`` mode (one job) or ``nodes`` mode (one per node, all at once). ``nodes``: the
    candidate nodes (``--nodes``, else the cluster's compute nodes). ``pairs`` is planned round by round by
    :func:`slurmkit.bench.localize.pair_rounds`."""
    if spec.mode == "cluster":
        if spec.nodes:
            return [PlannedJob("cluster", tuple(spec.nodes), len(spec.nodes))]
        n = spec.nnodes or len(nodes)
        if nodes and n > len(nodes):
            raise BenchCouldNotRun(f"-N {n}: the cluster has {len(nodes)} compute node(s)")
        return [PlannedJob("cluster", (), n)]
    if spec.mode == "nodes":
        return [PlannedJob(f"node-{n}", (n,), 1) for n in nodes]
    raise ValueError("pairs mode is planned round by round (slurmkit.bench.localize.pair_rounds)")


def pair_jobs(round_pairs: Sequence[tuple[str, str]], round_index: int) -> list[PlannedJob]:
    """The jobs of one ``pairs`` round: one 2-node job per pair."""
    return [PlannedJob(f"r{round_index}-{a}-{b}", (a, b), 2, round_index) for a, b in round_pairs]


def judged_busbw(runs) -> float:
    """The out-of-place busbw at the largest size of the first run with rows; NaN when a run failed or none
    has rows (a failed pair or node counts as slow)."""
    if not runs or any(r.failed for r in runs):
        return float("nan")
    for r in runs:
        if r.rows:
            top = max(r.rows, key=lambda row: row.size_bytes)
            return float("nan") if top.oop_busbw_gbps is None else float(top.oop_busbw_gbps)
    return float("nan")


def bracketed_busbw(runs) -> float:
    """The lower of the baseline runs' :func:`judged_busbw` (the runs before and after the measured step); NaN
    when there is none or one failed."""
    figures = [judged_busbw([r]) for r in runs if r.rows or r.failed]
    if not figures or any(math.isnan(f) for f in figures):
        return float("nan")
    return min(figures)


def nccl_env_from_facts(cluster, records: Mapping[str, Mapping[str, Any]], nodes: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """The NCCL variables for a bench on ``nodes``, from their cached discovery facts
    (:func:`slurmkit.discovery.group_nccl`): exported only when every node with facts has the same environment.
    Returns (env, note): the note says why nothing is exported when the nodes disagree."""
    import json

    from slurmkit.discovery import group_nccl

    addresses = {h.name: h.address for h in cluster.hosts()}
    group = group_nccl(list(nodes), records, addresses)
    envs = {json.dumps(env, sort_keys=True) for env in group.env.values()}
    if not envs:
        return {}, None
    if len(envs) > 1:
        return {}, "the nodes' discovered NCCL environments differ (run `slurmkit discover` for details); none exported"
    return json.loads(envs.pop()), None


# ---------------------------------------------------------------------------------------------------------
# Executing through a backend


@dataclass
class JobOutcome:
    """A job that ran: its state, exit code, nodes and output text."""

    planned: PlannedJob
    job_id: str
    state: str
    exit_code: int | None
    nodes: list[str]
    log: str

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED" and not self.exit_code

    def failure(self) -> str | None:
        if self.ok:
            return None
        code = "" if self.exit_code is None else f", exit code {self.exit_code}"
        where = ",".join(self.nodes or self.planned.nodes) or "?"
        return f"job {self.job_id} ({self.planned.label} on {where}) ended {self.state}{code}"


Progress = Callable[[str], None]


def run_jobs(backend, spec: BenchSpec, jobs: Sequence[PlannedJob], *, progress: Progress = lambda m: None,
             poll: float = 2.0, timeout: float = 1800.0, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> list[JobOutcome]:
    """Submit every job at once, wait for all of them, read their logs. A job still unfinished after
    ``timeout`` seconds is cancelled and reported TIMEOUT. Raises BenchCouldNotRun when a submission fails."""
    from slurmkit.slurm import TERMINAL_STATES

    submitted: list[tuple[PlannedJob, str]] = []
    for job in jobs:
        request = job_request(spec, job.nodes, job.nnodes, job.label)
        try:
            job_id = backend.submit(request.script, request.sbatch_args)
        except SlurmkitError as exc:
            for _, jid in submitted:
                _cancel_quietly(backend, jid)
            raise BenchCouldNotRun(f"could not submit the {job.label} job: {exc}") from exc
        submitted.append((job, job_id))
        progress(f"submitted job {job_id} ({job.label}" + (f" on {','.join(job.nodes)})" if job.nodes
                                                            else f", {job.nnodes} node(s))"))
    infos: dict[str, Any] = {}
    deadline = clock() + timeout
    while len(infos) < len(submitted):
        for job, job_id in submitted:
            if job_id in infos:
                continue
            info = backend.job(job_id)
            if info.state in TERMINAL_STATES or info.state == "UNKNOWN":
                infos[job_id] = info
                progress(f"job {job_id} ({job.label}) {info.state}")
        if len(infos) < len(submitted):
            if clock() > deadline:
                for job, job_id in submitted:
                    if job_id not in infos:
                        _cancel_quietly(backend, job_id)
                        infos[job_id] = dataclasses.replace(backend.job(job_id), state="TIMEOUT")
                        progress(f"job {job_id} ({job.label}) cancelled after {timeout:.0f} s")
                break
            sleep(poll)
    outcomes = []
    for job, job_id in submitted:
        info = infos[job_id]
        path = info.stdout or (f"{spec.chdir.rstrip('/')}/slurmkit-bench-{job_id}.out" if spec.chdir else "")
        log = backend.read_file(path) if path else ""
        outcomes.append(JobOutcome(job, job_id, info.state, info.exit_code, list(info.nodes) or list(job.nodes),
                                   log))
    return outcomes


def _cancel_quietly(backend, job_id: str) -> None:
    try:
        backend.cancel(job_id)
    except SlurmkitError:
        pass


@dataclass
class BenchResult:
    """What :func:`run_bench` did: the verdict, the culprits, the rounds (``pairs``), the saved run."""

    verdict: Any
    culprits: list[dict[str, Any]]
    outcomes: list[JobOutcome]
    run_dir: Path | None = None
    report: Path | None = None
    summary: str = ""
    rounds: int | None = None
    findings: Any = None

    @property
    def passed(self) -> bool:
        return bool(self.verdict.passed) and not self.culprits

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "exit_code": self.exit_code, "verdict": self.verdict.to_dict(),
            "culprits": self.culprits, "rounds": self.rounds,
            "jobs": [{"job_id": o.job_id, "label": o.planned.label, "nodes": o.nodes, "state": o.state,
                      "exit_code": o.exit_code, "round": o.planned.attempt} for o in self.outcomes],
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "report": str(self.report) if self.report else None,
        }


def _parse(outcome: JobOutcome):
    from slurmkit.bench.parse import parse_text

    return parse_text(split_steps(outcome.log)[1], f"logs/{outcome.planned.label}.log")


def _parse_baseline(outcome: JobOutcome):
    from slurmkit.bench.parse import parse_text

    text = split_steps(outcome.log)[0]
    return [] if text is None else parse_text(text, f"logs/{outcome.planned.label}-baseline.log")


def pair_ratio(outcome: JobOutcome) -> float:
    """A pair's busbw over its same-run baseline, both at the largest size (:func:`judged_busbw`); NaN when
    either is missing or the baseline is not positive."""
    measured, base = judged_busbw(_parse(outcome)), bracketed_busbw(_parse_baseline(outcome))
    if math.isnan(measured) or math.isnan(base) or base <= 0:
        return float("nan")
    return measured / base


def run_bench(spec: BenchSpec, backend, out_dir: str | Path, *, candidates: Sequence[str] = (),
              profile: str | None = None, expect_gbps: float | None = None, min_size_bytes: int | None = None,
              cluster: str | None = None, progress: Progress = lambda m: None, poll: float = 2.0,
              job_timeout: float = 1800.0, rel_tol: float = 0.1,
              sleep: Callable[[float], None] = time.sleep) -> BenchResult:
    """Run the mode, judge it, localise, save the run and its report.

    ``candidates``: the nodes the ``nodes``/``pairs`` modes cover when ``spec.nodes`` is empty (the cluster's
    compute nodes). ``min_size_bytes`` overrides the profile's smallest judged size. ``pairs`` needs a
    threshold: the profile's ``min_busbw_gbps`` or ``expect_gbps``, or the profile's baseline ratio (each
    pair's busbw over its own job's baseline). A profile with a ``baseline:`` (and no ``expect_gbps``) runs the
    baseline step in every multi-node job (see the module docstring).
    """
    from slurmkit.bench.localize import localize, single_node_outliers
    from slurmkit.bench.verdict import get_profile, judge

    prof = get_profile(profile) if profile else None
    min_ratio = prof.baseline.min_ratio if (prof and prof.baseline and expect_gbps is None) else None
    if min_ratio is not None and spec.mode != "nodes":
        spec = dataclasses.replace(spec, baseline=prof.baseline.measure)
    threshold = expect_gbps if expect_gbps is not None else (prof.min_busbw_gbps if prof else None)
    nodes = list(spec.nodes or candidates)
    if spec.mode in ("nodes", "pairs") and not nodes:
        raise BenchCouldNotRun(f"{spec.mode} mode: no nodes to run on (give --nodes)")
    if spec.mode == "pairs":
        if threshold is None and min_ratio is None:
            raise BenchCouldNotRun("pairs mode needs a threshold: --profile NAME or --expect GBPS")
        if len(nodes) < 2:
            raise BenchCouldNotRun("pairs mode needs at least 2 nodes")
    started = _utcnow()
    wait = dict(progress=progress, poll=poll, timeout=job_timeout, sleep=sleep)

    outcomes: list[JobOutcome] = []
    culprits: list[dict[str, Any]] = []
    extra_reasons: list[str] = []
    rounds = findings = None
    if spec.mode == "pairs":
        by_ratio = threshold is None

        def measure(round_pairs):
            index = len({o.planned.attempt for o in outcomes})
            progress(f"pairs round {index + 1}: {', '.join(f'{a}+{b}' for a, b in round_pairs)}")
            done = run_jobs(backend, spec, pair_jobs(round_pairs, index), **wait)
            outcomes.extend(done)
            return {o.planned.nodes: pair_ratio(o) if by_ratio else judged_busbw(_parse(o)) for o in done}

        findings = localize(nodes, measure, min_ratio if by_ratio else threshold,
                            unit="of the same-run baseline" if by_ratio else "GB/s")
        rounds = findings.rounds
        for f in findings.findings:
            vals = [bw for _, bw in f.evidence if not math.isnan(bw)]
            entry = {"kind": f.kind, "message": f.message}
            entry |= {"ratio": min(vals) if vals else None} if by_ratio else {"busbw_gbps": min(vals) if vals else None}
            entry["threshold"] = min_ratio if by_ratio else threshold  # the evidence of a --drain reason
            if f.kind == "node":
                culprits.append({"node": f.nodes[0], **entry})
            elif f.kind == "link":
                culprits.append({"link": list(f.nodes), **entry})
            else:
                extra_reasons.append(f.message)
        progress(f"pairs: {rounds} round(s)")
    else:
        jobs = plan(spec, nodes)
        outcomes = run_jobs(backend, spec, jobs, **wait)
        if spec.mode == "nodes":
            per_node = {o.planned.nodes[0]: judged_busbw(_parse(o)) for o in outcomes}
            for out in single_node_outliers(per_node, rel_tol):
                what = "failed" if out.busbw_gbps is None else (
                    f"busbw {out.busbw_gbps:.2f} GB/s, {out.deficit:.0%} below the median {out.median_gbps:.2f}")
                culprits.append({"node": out.node, "kind": "node", "busbw_gbps": out.busbw_gbps,
                                 "message": f"{out.node}: {what}"})

    runs = [r for o in outcomes for r in _parse(o)]
    baselines = {f"logs/{o.planned.label}.log": _parse_baseline(o) for o in outcomes}
    verdict = judge(runs, profile=prof, expect_gbps=expect_gbps, min_size_bytes=min_size_bytes, op=spec.op,
                    baselines=baselines, use_baseline=bool(spec.baseline))
    for o in outcomes:
        if o.failure():
            verdict.reasons.append(o.failure())
        elif not _parse(o):
            verdict.reasons.append(f"job {o.job_id} ({o.planned.label}): no nccl-tests output in its log")
    verdict.reasons.extend(extra_reasons)
    verdict.passed = not verdict.reasons

    result = BenchResult(verdict, culprits, outcomes, rounds=rounds, findings=findings)
    result.run_dir, result.report, result.summary = _save(spec, out_dir, outcomes, result, backend, cluster,
                                                          started, nodes)
    return result


def versions_of(logs: Sequence[str], backend=None) -> dict[str, str | None]:
    """Slurm's version (from the backend) and torch's (the engine's ``# torch version`` line)."""
    out: dict[str, str | None] = {}
    for text in logs:
        m = _TORCH_VERSION_RE.search(text)
        if m:
            out["torch"] = m.group(1)
            break
    if backend is not None:
        try:
            ok, version = backend.available()
        except SlurmkitError:
            ok, version = False, ""
        if ok:
            out["slurm"] = version.split()[-1] if version else None
    return out


def _utcnow():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def _save(spec: BenchSpec, out_dir, outcomes: Sequence[JobOutcome], result: BenchResult, backend, cluster,
          started, nodes) -> tuple[Path, Path, str]:
    from slurmkit.bench.report import build_report
    from slurmkit.bench.results import RunLog, save_run

    logs = []
    for o in outcomes:
        base, measured = split_steps(o.log)
        logs.append(RunLog(text=measured, name=f"{o.planned.label}-{o.job_id}.log", nodes=o.nodes,
                           attempt=o.planned.attempt))
        if base is not None:
            logs.append(RunLog(text=base, name=f"{o.planned.label}-{o.job_id}-baseline.log", nodes=o.nodes[:1],
                               attempt=o.planned.attempt))
    every = list(dict.fromkeys([n for o in outcomes for n in o.nodes] or nodes))
    sweep = {**spec.sweep, "op": spec.op, "gpus_per_node": spec.gpus_per_node, "ranks_per_node": spec.ranks_per_node,
             "launcher": spec.launcher, "command": shlex.join(engine_command(spec)),
             "jobs": [{"job_id": o.job_id, "label": o.planned.label, "state": o.state, "exit_code": o.exit_code,
                       "round": o.planned.attempt} for o in outcomes]}
    if spec.engine == "nccl-tests" and spec.launcher == "srun":
        sweep["mpi"] = spec.mpi
    if result.rounds is not None:
        sweep["rounds"] = result.rounds
    if spec.baseline:
        n = max((o.planned.nnodes for o in outcomes), default=2)
        sweep["baseline"] = {"measure": spec.baseline, "ranks": baseline_ranks(spec, n),
                             "command": baseline_line(spec, n)}
    run_dir = save_run(out_dir, logs, mode=spec.mode, engine=spec.engine, op=spec.op, cluster=cluster, nodes=every,
                       sweep=sweep, versions=versions_of([o.log for o in outcomes], backend),
                       environment=dict(spec.nccl_env), verdict=result.verdict, culprits=result.culprits,
                       when=started)
    report = build_report(run_dir)
    return run_dir, report.html, report.text
