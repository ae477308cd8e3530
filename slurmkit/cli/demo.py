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
    The cluster stays up; the last lines say how to use it and how to remove it. Needs root on Linux.
    """
    from slurmkit.bootstrap import bootstrap
    from slurmkit.cli.bootstrap import print_outcome
    from slurmkit.cluster import load_cluster
    from slurmkit.facts_cache import hardware_source
    from slurmkit.local import cluster as lc
    from slurmkit.remote import ClusterSSH

    path = Path(".slurmkit") / "local" / name / "cluster.yaml"
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
            click.echo(conn.run("scontrol ping; sinfo -N -l", timeout=60).stdout.rstrip())
        finally:
            conn.close()

    key, kh = cluster.ssh.identity_file, cluster.ssh.known_hosts
    _say("the cluster stays up")
    click.echo(f"  slurmkit -c {path} bootstrap --dry-run     # nothing to change")
    click.echo(f"  ssh -i {key} -o UserKnownHostsFile={kh} root@{head.address} sinfo")
    click.echo(f"  slurmkit local down --name {shlex.quote(name)}                  # remove it")
