"""`slurmkit demo`: the main job, end to end on this machine, on real daemons."""

from __future__ import annotations

import shlex
from pathlib import Path

import click


def _say(step: str) -> None:
    click.echo(click.style(f"\n==> {step}", bold=True))


@click.command()
@click.option("--name", default="demo", show_default=True, help="Name of the local cluster.")
@click.option("-n", "--computes", default=2, show_default=True, type=click.IntRange(1), help="Compute nodes.")
@click.option("--gpus-per-node", default=8, show_default=True, type=click.IntRange(0), help="Simulated GPUs per compute node.")
def demo(name, computes, gpus_per_node):
    """Local cluster up, bootstrap, a multi-node GPU job, the cluster status.

    \b
    1. `slurmkit local up`: 1 head and COMPUTES simulated 8x H100 servers (network namespaces with their own
       sshd; the compute nodes reachable only through the head, as on a Lambda 1-Click Cluster). An existing
       local cluster of that name is reused.
    2. `slurmkit bootstrap`: munge, configs, slurmctld and slurmd over SSH, exactly as on a rented cluster.
    3. `srun -N COMPUTES --gpus-per-node=G` through Slurm: each node gets its GPUs in CUDA_VISIBLE_DEVICES.
    4. The cluster's status.
    5. An acceptance bench, as `slurmkit bench --engine torch --mode cluster -N 2 --profile local -b 1M -e 16M
       -f 4 -n 3 -w 1` runs it (CPU ranks over gloo: the simulated GPUs have no CUDA), and its report.
    The cluster stays up; the last lines say how to use it and how to remove it. Needs root on Linux.
    """
    from slurmkit.bootstrap import bootstrap
    from slurmkit.cli.bootstrap import print_outcome
    from slurmkit.cluster import load_cluster
    from slurmkit.hardware import hardware_source
    from slurmkit.local import cluster as lc
    from slurmkit.paths import StateDir
    from slurmkit.remote import ClusterSSH
    from slurmkit.slurm import ConnRunner
    from slurmkit.slurm import commands as slurm_commands

    path = StateDir.here().local_cluster_file(name)
    state = lc.State.load(name)
    _say(f"local cluster {name!r}: 1 head, {computes} compute node(s) with {gpus_per_node} simulated H100 each")
    if state is not None and Path(state.cluster_file or "").exists():
        path = Path(state.cluster_file)
        click.echo(f"reusing the running local cluster {name!r} ({path})")
    else:
        if state is not None:
            lc.down(name)
        plan = lc.build_plan(name, computes, 1, gpus_per_node=gpus_per_node, gpu_type="h100")
        t = lc.up(plan, path)
        click.echo(f"{len(plan.heads) + len(plan.computes)} hosts up in {t.total:.1f} s; cluster file {path}")

    cluster = load_cluster(path)
    _say("bootstrap over SSH (through the head for the compute nodes)")
    outcome = bootstrap(cluster, path, hardware_source(cluster, path))
    print_outcome(outcome)
    if outcome.failed_hosts:
        raise click.exceptions.Exit(1)

    head = cluster.hosts()[0]
    gpus = cluster.nodes[0].gpus.count if cluster.nodes[0].gpus else 0
    n = len(cluster.compute_names)
    srun = f"srun -N{n}" + (f" --gpus-per-node={gpus}" if gpus else "") + " bash -c 'echo \"$(hostname): CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\"'"
    _say(f"a job through Slurm: {srun}")
    with ClusterSSH(cluster, path.resolve().parent) as ssh:
        conn = ssh.connect(head)
        try:
            click.echo("\n".join(sorted(conn.run(srun, timeout=120).stdout.split("\n"))).strip())
            _say("cluster status")
            click.echo(slurm_commands.overview(ConnRunner(conn, timeout=60)).rstrip())
        finally:
            conn.close()

    bench_nodes = min(2, n)
    _say(f"an acceptance bench: torch engine (gloo), all_reduce on {bench_nodes} node(s), profile 'local'")
    result = _bench(cluster, path, bench_nodes)
    click.echo(result.summary.rstrip())
    click.echo(f"  results: {result.run_dir}")
    if not result.passed:
        raise click.exceptions.Exit(1)

    key, kh = cluster.ssh.identity_file, cluster.ssh.known_hosts
    _say("the cluster stays up")
    click.echo(f"  slurmkit -c {path} bootstrap --dry-run     # nothing to change")
    click.echo(f"  ssh -i {key} -o UserKnownHostsFile={kh} root@{head.address} sinfo")
    click.echo(f"  slurmkit local down --name {shlex.quote(name)}                  # remove it")


def _bench(cluster, path: Path, nodes: int):
    """The demo's acceptance bench: small sizes, so that it takes well under a minute on 2 cores."""
    import sys

    from slurmkit.bench.run import BenchSpec, run_bench
    from slurmkit.paths import StateDir
    from slurmkit.cli.jobs import remote_runner
    from slurmkit.slurm import get_backend

    spec = BenchSpec(engine="torch", mode="cluster", nnodes=nodes, min_bytes="1M", max_bytes="16M", step_factor=4,
                     iters=3, warmup=1, python=sys.executable, chdir=cluster.shared_dir)
    base = path.expanduser().resolve().parent
    backend = get_backend("cli", remote_runner(cluster, base))
    return run_bench(spec, backend, StateDir.of(path).bench_dir, candidates=cluster.compute_names, profile="local",
                     cluster=cluster.cluster, progress=lambda m: click.echo(f"  {m}"))
