"""JobSpec -> sbatch script (pure), launchers, and the retry policy.

:func:`build_job` is the schema: its keyword arguments are the fields of :class:`JobSpec`; an unknown one is
rejected with the list of valid ones. It returns a :class:`JobRequest` (the script text plus the sbatch
arguments that cannot live in ``#SBATCH`` lines); ``slurmkit submit --dry-run`` prints it, the backend submits it.

Variables every node of a job gets (also listed in ``slurmkit submit --help``):

==========================  ================================================================================
``SLURMKIT_MASTER_ADDR``    address of the first node of the allocation (its Slurm ``NodeAddr``)
``SLURMKIT_MASTER_PORT``    rendezvous port (``master_port``, default 29500)
``SLURMKIT_NODE_RANK``      this node's index in the allocation, 0..N-1 (``$SLURM_NODEID`` expanded on the node;
                            under mpirun: the index of ``hostname -s`` in ``SLURMKIT_NODE_NAMES``)
``SLURMKIT_NNODES``         number of nodes
``SLURMKIT_NODES``          every node's address, comma-separated, in node-rank order
``SLURMKIT_NODE_NAMES``     every node's Slurm name, comma-separated, in node-rank order
``SLURMKIT_GPUS_PER_NODE``  GPUs per node (0 on CPU-only jobs)
``SLURMKIT_NGPUS``          GPUs in the whole job
``SLURMKIT_HOSTFILE``       an MPI hostfile (``NAME slots=S``, S = GPUs per node, or 1 on CPU-only jobs), in the
                            job's working directory
==========================  ================================================================================

Every value given (command, job name, env values) passes through literally: each is quoted with
:func:`shlex.quote`, and the node-side shell code is constant text that reads the command from ``"$@"``.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from slurmkit.errors import SlurmkitError
from slurmkit.resources import jinja_env
from slurmkit.slurm.commands import submit_argv
from slurmkit.slurm.parsers import JobInfo, TERMINAL_STATES, failed_nodes_from_srun

LAUNCHERS = ("torchrun", "mpirun", "srun")

ENV_VARS = {
    "SLURMKIT_MASTER_ADDR": "address of the first node of the allocation",
    "SLURMKIT_MASTER_PORT": "rendezvous port (default 29500)",
    "SLURMKIT_NODE_RANK": "this node's index in the allocation, 0..N-1",
    "SLURMKIT_NNODES": "number of nodes",
    "SLURMKIT_NODES": "all node addresses, comma-separated, in rank order",
    "SLURMKIT_NODE_NAMES": "all Slurm node names, comma-separated, in rank order",
    "SLURMKIT_GPUS_PER_NODE": "GPUs per node (0 on CPU-only jobs)",
    "SLURMKIT_NGPUS": "GPUs in the whole job",
    "SLURMKIT_HOSTFILE": "MPI hostfile path (slots = GPUs per node, or 1)",
}


class JobSpecError(SlurmkitError):
    """A job description that cannot become a valid sbatch script."""


@dataclass(frozen=True)
class JobSpec:
    command: tuple[str, ...]
    name: str = "slurmkit"
    nodes: int = 1
    gpus_per_node: int = 0
    partition: str | None = None
    time: str | None = None
    launcher: str = "srun"
    nproc_per_node: int | None = None  # torchrun/srun processes per node; default GPUs per node, or 1
    cpus_per_task: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    nccl_env: Mapping[str, str] = field(default_factory=dict)  # from slurmkit.topology.nccl_env, when known
    output: str = "slurmkit-%j.out"  # stdout and stderr together, relative to the working directory
    chdir: str | None = None
    exclude: tuple[str, ...] = ()
    master_port: int = 29500
    # False: a node failure ends the job (NODE_FAIL) instead of Slurm requeueing it; set when slurmkit retries
    # itself, so that it can exclude the failed node. None: the cluster's JobRequeue default.
    requeue: bool | None = None

    @property
    def slots(self) -> int:
        return self.gpus_per_node or 1

    @property
    def procs_per_node(self) -> int:
        return self.nproc_per_node or self.slots


@dataclass(frozen=True)
class JobRequest:
    """What will be submitted: the script (stdin of sbatch) and sbatch arguments kept out of ``#SBATCH`` lines."""

    spec: JobSpec
    script: str
    sbatch_args: tuple[str, ...]

    def dryrun_text(self) -> str:
        cmd = shlex.join(submit_argv(self.sbatch_args))
        return f"# submitted as: {cmd} < script\n{self.script}"


_PARTITION = re.compile(r"^[A-Za-z0-9_.-]+$")
_TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^(\d+-\d+)$|^(INFINITE|UNLIMITED)$")
_NODE = re.compile(r"^[A-Za-z0-9_.\-\[\],]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def build_job(**kwargs) -> JobRequest:
    """Build the sbatch request from JobSpec fields given as keyword arguments (pure)."""
    valid = [f.name for f in dataclasses.fields(JobSpec)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise JobSpecError(f"unknown job parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    if "command" not in kwargs:
        raise JobSpecError("a job needs a command")
    kwargs["command"] = tuple(kwargs["command"])
    kwargs["exclude"] = tuple(kwargs.get("exclude") or ())
    kwargs["env"] = dict(kwargs.get("env") or {})
    kwargs["nccl_env"] = dict(kwargs.get("nccl_env") or {})
    spec = JobSpec(**kwargs)
    check_spec(spec)
    return render_job(spec)


def check_spec(s: JobSpec) -> None:
    problems = []
    if not s.command or not s.command[0]:
        problems.append("command: empty")
    if s.nodes < 1:
        problems.append("nodes: must be >= 1")
    if s.gpus_per_node < 0:
        problems.append("gpus_per_node: must be >= 0")
    if s.nproc_per_node is not None and s.nproc_per_node < 1:
        problems.append("nproc_per_node: must be >= 1")
    if s.launcher not in LAUNCHERS:
        problems.append(f"launcher: {s.launcher!r} is not one of {', '.join(LAUNCHERS)}")
    if s.partition is not None and not _PARTITION.match(s.partition):
        problems.append(f"partition: {s.partition!r} is not a partition name")
    if s.time is not None and not _TIME.match(s.time):
        problems.append(f"time: {s.time!r} is not a Slurm time (MM, HH:MM:SS, D-HH:MM, INFINITE)")
    for n in s.exclude:
        if not _NODE.match(n):
            problems.append(f"exclude: {n!r} is not a node name")
    if not s.output or any(c.isspace() for c in s.output):
        problems.append("output: must be a path without spaces")
    if not 0 < s.master_port < 65536:
        problems.append("master_port: must be 1..65535")
    for k in (*s.env, *s.nccl_env):
        if not _ENV_NAME.match(k) or k.startswith("SLURMKIT_"):
            problems.append(f"env: {k!r} is not a variable name slurmkit can set")
    if problems:
        raise JobSpecError("bad job: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------------------
# Launchers: each builds the one launch line of the script. Node-side shell code is constant; the user's
# command follows as quoted positional arguments ("$@").


def _quote_all(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


_SET_RANK = "export SLURMKIT_NODE_RANK=$SLURM_NODEID; "


class SrunLauncher:
    """``srun`` one task per process on every node (``nproc_per_node``, default GPUs per node or 1)."""

    name = "srun"

    def line(self, s: JobSpec) -> str:
        body = _SET_RANK + 'exec "$@"'
        return (f"srun --ntasks-per-node={s.procs_per_node} --kill-on-bad-exit=1 bash -c {shlex.quote(body)} "
                f"slurmkit {_quote_all(s.command)}")


class TorchrunLauncher:
    """One ``torchrun`` per node (through srun), static rendezvous on the master node; rank 0 is node 0.
    ``python X.py ...`` runs as ``python -m torch.distributed.run ... X.py ...`` with that interpreter."""

    name = "torchrun"

    def split(self, command: Sequence[str]) -> tuple[list[str], list[str]]:
        first = Path(command[0]).name
        if re.fullmatch(r"python[0-9.]*", first):
            return [command[0], "-m", "torch.distributed.run"], list(command[1:])
        if first.endswith(".py"):
            return ["torchrun"], list(command)
        return ["torchrun"], ["--no-python", *command]

    def line(self, s: JobSpec) -> str:
        prefix, rest = self.split(s.command)
        n = len(prefix)
        body = (
            _SET_RANK
            + f'exec "${{@:1:{n}}}" --nnodes="$SLURMKIT_NNODES" --node_rank="$SLURMKIT_NODE_RANK" '
            f"--nproc_per_node={s.procs_per_node} --rdzv_backend=static "
            '--rdzv_endpoint="$SLURMKIT_MASTER_ADDR:$SLURMKIT_MASTER_PORT" --rdzv_id="$SLURM_JOB_ID" '
            f'"${{@:{n + 1}}}"'
        )
        return (f"srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c {shlex.quote(body)} "
                f"slurmkit {_quote_all(prefix + rest)}")


class MpirunLauncher:
    """``mpirun`` from the batch host over the hostfile: slots per node = GPUs per node (or 1)."""

    name = "mpirun"

    def line(self, s: JobSpec) -> str:
        body = ('r=0; for n in ${SLURMKIT_NODE_NAMES//,/ }; do [ "$n" = "$(hostname -s)" ] && break; r=$((r+1)); done; '
                'export SLURMKIT_NODE_RANK=$r; exec "$@"')
        exports = " ".join(f"-x {v}" for v in (*ENV_VARS, *s.env, *s.nccl_env) if v != "SLURMKIT_NODE_RANK")
        return (f'mpirun --hostfile "$SLURMKIT_HOSTFILE" -np $(( SLURMKIT_NNODES * {s.slots} )) {exports} '
                f"bash -c {shlex.quote(body)} slurmkit {_quote_all(s.command)}")


LAUNCHER_CLASSES = {c.name: c for c in (TorchrunLauncher, MpirunLauncher, SrunLauncher)}


def directives(s: JobSpec) -> list[str]:
    out = [f"--nodes={s.nodes}", "--ntasks-per-node=" + str(1 if s.launcher in ("torchrun", "mpirun") else s.procs_per_node)]
    if s.launcher == "mpirun":
        out[-1] = f"--ntasks-per-node={s.slots}"
    if s.cpus_per_task:
        out.append(f"--cpus-per-task={s.cpus_per_task}")
    if s.gpus_per_node:
        out.append(f"--gpus-per-node={s.gpus_per_node}")
    if s.partition:
        out.append(f"--partition={s.partition}")
    if s.time:
        out.append(f"--time={s.time}")
    out.append(f"--output={s.output}")
    if s.chdir:
        out.append(f"--chdir={s.chdir}")
    if s.exclude:
        from slurmkit import hostlist

        out.append(f"--exclude={hostlist.fold(s.exclude)}")
    if s.requeue is not None:
        out.append("--requeue" if s.requeue else "--no-requeue")
    return out


def render_job(s: JobSpec) -> JobRequest:
    from slurmkit import __version__

    env = jinja_env(templates=True)
    values = [(k, shlex.quote(str(v))) for k, v in {**s.nccl_env, **s.env}.items()]
    script = env.get_template("sbatch/job.sh.j2").render(
        header=f"Generated by slurmkit {__version__}: {s.nodes} node(s), launcher {s.launcher}. Submit with sbatch.",
        directives=directives(s), env=values, master_port=s.master_port, gpus_per_node=s.gpus_per_node,
        slots=s.slots, launcher=s.launcher, launch=LAUNCHER_CLASSES[s.launcher]().line(s),
    )
    # The job name may hold anything (spaces, newlines, quotes): an argv item, never an #SBATCH line.
    return JobRequest(s, script, (f"--job-name={s.name}",))


# ---------------------------------------------------------------------------------------------------------
# Retries


@dataclass
class Attempt:
    number: int
    job_id: str
    state: str
    nodes: list[str]
    excluded: list[str]
    exit_code: int | None = None
    blamed: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    blamed: tuple[str, ...]
    why: str


def decide_retry(info: JobInfo, log: str = "", down_nodes: Sequence[str] = ()) -> RetryDecision:
    """Whether an ended job counts as a node failure, and which nodes to exclude next time.

    - NODE_FAIL: the job's nodes that Slurm now marks down (``down_nodes``: ``NodeInfo.is_down``) are blamed;
      if none is known, every node of the job is blamed.
    - FAILED on a multi-node job whose srun output names failed tasks on exactly one node: that node is blamed.
    - Anything else (COMPLETED, CANCELLED, TIMEOUT, a program error on every node or on a one-node job): no retry.
    """
    if info.state == "NODE_FAIL":
        blamed = [n for n in info.nodes if n in set(down_nodes)] or list(info.nodes)
        return RetryDecision(True, tuple(blamed), "NODE_FAIL")
    if info.state == "FAILED" and len(info.nodes) > 1:
        failed = [n for n in failed_nodes_from_srun(log) if n in info.nodes]
        if len(failed) == 1:
            return RetryDecision(True, tuple(failed), f"failed on one node ({failed[0]}) only")
    return RetryDecision(False, (), f"ended {info.state}")


def wait_job(backend, job_id: str, poll: float = 2.0, timeout: float | None = None,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> JobInfo:
    """Poll until the job reaches a terminal state (or UNKNOWN: the controller forgot it)."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        info = backend.job(job_id)
        if info.state in TERMINAL_STATES or info.state == "UNKNOWN":
            return info
        if deadline is not None and clock() > deadline:
            raise SlurmkitError(f"job {job_id} still {info.state} after {timeout:.0f} s")
        sleep(poll)


def run_with_retries(backend, spec_kwargs: dict, retries: int, report: Callable[[Attempt], None] = lambda a: None,
                     poll: float = 2.0, timeout: float | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> list[Attempt]:
    """Submit, wait, and on a node failure resubmit with the blamed nodes excluded, at most ``retries`` times.
    ``report`` is called after each attempt. Returns every attempt; the last one is the outcome."""
    excluded = list(spec_kwargs.get("exclude") or ())
    attempts: list[Attempt] = []
    for number in range(retries + 1):
        # slurmkit retries itself: a node failure must end the job, not requeue it behind our back.
        req = build_job(**{**spec_kwargs, "exclude": excluded, **({"requeue": False} if retries else {})})
        job_id = backend.submit(req.script, req.sbatch_args)
        info = wait_job(backend, job_id, poll=poll, timeout=timeout, sleep=sleep)
        log = backend.read_file(info.stdout) if info.state == "FAILED" and info.stdout else ""
        down = [n.name for n in backend.nodes() if n.is_down] if info.state == "NODE_FAIL" else []
        decision = decide_retry(info, log, down)
        attempt = Attempt(number, job_id, info.state, list(info.nodes), list(excluded), info.exit_code,
                          list(decision.blamed))
        attempts.append(attempt)
        report(attempt)
        if not decision.retry or number == retries:
            break
        excluded += [n for n in decision.blamed if n not in excluded]
        usable = usable_nodes(backend, spec_kwargs.get("partition"), excluded)
        if len(usable) < int(spec_kwargs.get("nodes") or 1):
            attempt.note = (f"no retry: {len(usable)} usable node(s) left ({','.join(usable) or 'none'}) for a "
                            f"{spec_kwargs.get('nodes') or 1}-node job once {','.join(excluded)} are excluded")
            report(attempt)
            break
    return attempts


def usable_nodes(backend, partition: str | None, excluded: Sequence[str]) -> list[str]:
    """Nodes a resubmitted job could run on: in the partition (or any), not excluded, usable
    (``NodeInfo.is_usable``: not down, not drained)."""
    return [n.name for n in backend.nodes() if n.name not in excluded and n.is_usable
            and not (partition and n.partitions and partition not in n.partitions)]
