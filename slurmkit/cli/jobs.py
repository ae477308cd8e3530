"""`slurmkit submit`, `jobs`, `logs`, `cancel`, `status`: jobs and cluster state through a Slurm backend.

How Slurm is reached: locally when ``$SLURM_CONF`` is set or this machine is a host of the cluster file (the
commands run here); otherwise on the first head node over SSH (:func:`remote_runner`).

Cluster state (``slurmkit status``): :func:`slurmkit.slurm.state.cluster_state`, whose docstring gives the rules.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from dataclasses import asdict

import click

from slurmkit.errors import SlurmkitError

# ---------------------------------------------------------------------------------------------------------
# Reaching Slurm


def _shared_dir(ctx: click.Context) -> str | None:
    """The cluster file's shared_dir, when there is a cluster file that names one."""
    from slurmkit.cli.config import cluster_path

    if not cluster_path(ctx).exists():
        return None
    from slurmkit.cli.config import load

    return load(ctx).shared_dir


def remote_runner(cluster, base_dir):
    """A runner that executes Slurm commands on the cluster's first reachable head over SSH (argv items quoted one
    by one, stdin passed through: sbatch reads the script from it)."""
    from slurmkit.remote import HeadRunner

    return HeadRunner(cluster, base_dir)


def _job_nccl(ctx: click.Context, partition: str | None):
    """The NCCL env for a job on ``partition`` from the facts `slurmkit discover` cached beside the cluster file
    (see :func:`slurmkit.discovery.job_nccl_env`); None without a cluster file."""
    from slurmkit.cli.config import cluster_path, load

    path = cluster_path(ctx)
    if not path.exists():
        return None
    from slurmkit.discovery import cached_records, job_nccl_env

    cluster = load(ctx)
    return job_nccl_env(cluster, cached_records(cluster, path, cluster.compute_names), partition)


def _is_local(cluster) -> bool:
    here = {socket.gethostname(), socket.gethostname().split(".")[0]}
    return any(h.name in here for h in cluster.hosts())


def backend_for(ctx: click.Context):
    """The Slurm backend for this invocation: local with $SLURM_CONF or on a cluster host, else over SSH."""
    from slurmkit.slurm import get_backend, local_runner
    from slurmkit.slurm.commands import env_conf

    if env_conf():
        return get_backend("cli", local_runner())
    from slurmkit.cli.config import load

    from slurmkit.cli.config import cluster_path

    cluster = load(ctx)
    if _is_local(cluster):
        return get_backend("cli", local_runner())
    return get_backend("cli", remote_runner(cluster, cluster_path(ctx).expanduser().resolve().parent))


def _json_out(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


# ---------------------------------------------------------------------------------------------------------
# Commands

class _SubmitCommand(click.Command):
    """`submit`, whose help epilog (the job environment, from :data:`slurmkit.jobs.ENV_VARS`) is built when help is
    shown: importing slurmkit.jobs for it cost every command ~27 ms at start-up."""

    @property
    def epilog(self):
        from slurmkit.jobs import ENV_VARS

        return "\b\nEvery node of the job gets:\n" + "\n".join(f"  {k:<24}{v}" for k, v in ENV_VARS.items())

    @epilog.setter
    def epilog(self, value):  # click.Command.__init__ sets it; the text comes from the property
        pass


# Options end at the command, as with sbatch/srun: `submit -N 2 python train.py -c cfg` passes `-c cfg` to it.
@click.command(cls=_SubmitCommand, context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@click.option("-N", "--nodes", type=int, default=1, show_default=True, help="Number of nodes.")
@click.option("--gpus-per-node", type=int, default=0, show_default=True, help="GPUs per node (0: CPU-only).")
@click.option("--nproc-per-node", type=int, default=None, help="Processes per node (torchrun/srun). Default: GPUs per node, or 1.")
@click.option("--partition", "-p", default=None, help="Slurm partition. Default: the cluster's default partition.")
@click.option("--time", "-t", "time_", default=None, help="Time limit (MM, HH:MM:SS, D-HH:MM).")
@click.option("--launcher", type=click.Choice(["torchrun", "mpirun", "srun"]), default="srun", show_default=True, help="How the command starts on the nodes.")
@click.option("--name", "-J", default="slurmkit", show_default=True, help="Job name (any text; passed literally).")
@click.option("--env", "-e", "env", multiple=True, metavar="KEY=VALUE", help="Environment variable for the job (repeatable; the value passes literally).")
@click.option("--output", "-o", default="slurmkit-%j.out", show_default=True, help="Output file (stdout and stderr), relative to the working directory.")
@click.option("--chdir", default=None, help="Working directory of the job. Default: the cluster file's shared_dir (a directory every node sees), else the directory sbatch runs in.")
@click.option("--exclude", "-x", multiple=True, help="Node to keep the job off (repeatable).")
@click.option("--master-port", type=int, default=29500, show_default=True, help="Rendezvous port (SLURMKIT_MASTER_PORT).")
@click.option("--retries", type=int, default=0, show_default=True, help="On a node failure (NODE_FAIL, or failed on one node only), resubmit without that node, at most K times. Implies --wait.")
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 1 unless it COMPLETED.")
@click.option("--dry-run", is_flag=True, help="Print the sbatch script and submit nothing.")
@click.option("--no-nccl-env", is_flag=True, help="Do not export the NCCL environment derived by `slurmkit discover`.")
@click.argument("command", nargs=-1, required=True)
@click.pass_context
def submit(ctx, nodes, gpus_per_node, nproc_per_node, partition, time_, launcher, name, env, output, chdir, exclude,
           master_port, retries, wait, dry_run, no_nccl_env, command):
    """Submit CMD as a multi-node job through sbatch:  slurmkit submit -N 2 --launcher torchrun -- python train.py

    \b
    When `slurmkit discover` has cached facts for the job's partition (--partition, else the cluster file's
    default one), the NCCL environment of its node group (NCCL_IB_HCA, NCCL_SOCKET_IFNAME, as `discover
    --nccl-env` prints) is exported into the job; --env values win over it. When the partition's nodes have
    different NCCL environments none is exported and one line on stderr says why. --no-nccl-env: none.
    """
    from slurmkit.jobs import build_job, run_with_retries

    env_map = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"--env {item!r}: expected KEY=VALUE")
        env_map[key] = value
    if chdir is None:
        chdir = _shared_dir(ctx)
    nccl = None if no_nccl_env else _job_nccl(ctx, partition)
    if nccl is not None and nccl.note:
        click.echo(f"warning: {nccl.note}", err=True)
    spec = dict(command=list(command), name=name, nodes=nodes, gpus_per_node=gpus_per_node,
                nproc_per_node=nproc_per_node, partition=partition, time=time_, launcher=launcher, env=env_map,
                nccl_env=nccl.env if nccl else {}, output=output, chdir=chdir, exclude=list(exclude),
                master_port=master_port)
    request = build_job(**spec)
    if dry_run:
        if nccl is not None and nccl.env:
            click.echo(f"# NCCL env from discovered facts of partition {nccl.partition}: "
                       + " ".join(f"{k}={v}" for k, v in nccl.env.items()))
        click.echo(request.dryrun_text(), nl=False)
        return
    backend = backend_for(ctx)
    if retries > 0 or wait:
        def report(a):
            if a.note:
                click.echo(f"attempt {a.number + 1}: {a.note}")
                return
            click.echo(f"attempt {a.number + 1}: job {a.job_id} {a.state}"
                       + (f" exit code {a.exit_code}" if a.exit_code is not None else "")
                       + (f" on {','.join(a.nodes)}" if a.nodes else "")
                       + (f"; excluded {','.join(a.excluded)}" if a.excluded else "")
                       + (f"; blamed {','.join(a.blamed)}" if a.blamed else ""))

        attempts = run_with_retries(backend, spec, retries, report=report)
        ctx.exit(0 if attempts[-1].state == "COMPLETED" else 1)
    job_id = backend.submit(request.script, request.sbatch_args)
    click.echo(job_id)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON: a list of job records.")
@click.pass_context
def jobs(ctx, as_json):
    """List the jobs the controller knows (pending, running, recently ended)."""
    found = backend_for(ctx).jobs()
    if as_json:
        _json_out([asdict(j) for j in found])
        return
    click.echo(f"{'JOBID':<8} {'STATE':<14} {'NODES':<20} {'EXIT':<5} NAME")
    for j in found:
        name = j.name.replace("\n", "\\n")
        click.echo(f"{j.job_id:<8} {j.state:<14} {','.join(j.nodes) or '-':<20} "
                   f"{'' if j.exit_code is None else j.exit_code!s:<5} {name}")


@click.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the job ends.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between reads with -f.")
@click.pass_context
def logs(ctx, job_id, follow, interval):
    """Print a job's output (stdout; stderr too when it goes to another file)."""
    from slurmkit.slurm import TERMINAL_STATES

    backend = backend_for(ctx)
    info = backend.job(job_id)
    if info.state == "UNKNOWN":
        raise SlurmkitError(f"job {job_id}: unknown to Slurm (never existed, or forgotten)")
    paths = [p for p in dict.fromkeys([info.stdout, info.stderr]) if p]
    if not paths:
        raise SlurmkitError(f"job {job_id}: Slurm reports no output file")
    offsets = {p: 0 for p in paths}
    while True:
        ended = info.state in TERMINAL_STATES
        for p in paths:
            text = backend.read_file(p, offsets[p])
            if text:
                offsets[p] += len(text.encode())
                sys.stdout.write(text)
                sys.stdout.flush()
        if not follow or ended:
            return
        time.sleep(interval)
        info = backend.job(job_id)


@click.command()
@click.argument("job_id")
@click.pass_context
def cancel(ctx, job_id):
    """Cancel a job."""
    backend_for(ctx).cancel(job_id)
    click.echo(f"cancelled {job_id}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON: state, reasons, controllers, nodes, partitions, jobs.")
@click.pass_context
def status(ctx, as_json):
    """Nodes with their Slurm states and reasons, partitions, controllers, running jobs, and ONE cluster state.

    \b
    Cluster state, the highest priority found (FAILED > DEGRADED > CONFIGURING > RUNNING):
      FAILED       no slurmctld answers; no nodes; or every node down
      DEGRADED     primary slurmctld down (a backup answers); a node DOWN/FAIL/INVAL/not responding; a node DRAIN
      CONFIGURING  a node UNKNOWN, FUTURE, powering up or rebooting
      RUNNING      every node IDLE/ALLOCATED/MIXED/COMPLETING, every controller up
    A node slurmkit drained (its reason starts ``slurmkit:``: a failed health check or bench's slow node) is shown
    as "drained by slurmkit: <check> <evidence>"; --json gives every node "drained_by": "slurmkit:health",
    "slurmkit:bench" or null. Exit code 0 when RUNNING, 1 otherwise.
    """
    from concurrent.futures import ThreadPoolExecutor

    from slurmkit.errors import CommandError

    backend = backend_for(ctx)
    # The four reads at once (through the head: one round trip, not four); results and errors are taken in the
    # order below, so the first error raised is the one the reads one after another would raise.
    with ThreadPoolExecutor(max_workers=4) as pool:
        calls = [pool.submit(f) for f in (backend.controllers, backend.nodes, backend.partitions, backend.jobs)]
    try:
        controllers = calls[0].result()
    except CommandError:
        controllers = []
    try:
        nodes, partitions = calls[1].result(), calls[2].result()
        running = [j for j in calls[3].result() if j.state == "RUNNING"]
    except CommandError as exc:
        if controllers and any(c.up for c in controllers):
            raise
        nodes, partitions, running = [], [], []
        click.echo(f"warning: {exc}", err=True)
    from slurmkit.health.policy import drain_detail, drained_by
    from slurmkit.slurm import cluster_state

    state, reasons = cluster_state(nodes, controllers)
    # Whose drain: "slurmkit:health", "slurmkit:bench" or None (not drained, or an admin's / Slurm's own drain).
    by = {n.name: drained_by(n.reason) if n.is_drained else None for n in nodes}
    if as_json:
        _json_out({"state": state, "reasons": reasons, "controllers": [asdict(c) for c in controllers],
                   "nodes": [{**asdict(n), "drained_by": by[n.name]} for n in nodes],
                   "partitions": [asdict(p) for p in partitions],
                   "jobs": [asdict(j) for j in running]})
    else:
        click.echo(f"cluster: {state}" + "".join(f"\n  - {r}" for r in reasons))
        click.echo("controllers:")
        for c in controllers:
            click.echo(f"  {c.host:<20} {c.role:<8} {'UP' if c.up else 'DOWN'}")
        click.echo("nodes:")
        for n in nodes:
            why = (f"  drained by slurmkit: {drain_detail(n.reason)}" if by[n.name]
                   else f"  reason: {n.reason}" if n.reason else "")
            click.echo(f"  {n.name:<20} {n.state_text:<22} cpus={n.cpus} mem={n.memory_mb}MB gres={n.gres or '-'}{why}")
        click.echo("partitions:")
        for p in partitions:
            click.echo(f"  {p.name + ('*' if p.default else ''):<20} {p.state:<6} nodes={p.nodes}")
        click.echo(f"running jobs: {len(running)}")
        for j in running:
            click.echo(f"  {j.job_id:<8} {','.join(j.nodes):<20} {j.name}")
    ctx.exit(0 if state == "RUNNING" else 1)
