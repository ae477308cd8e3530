"""`slurmkit local up|down|status`: a cluster of real hosts (namespaces + sshd) on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("local")
def local() -> None:
    """A cluster of real hosts on this machine, for slurmkit to bootstrap over SSH as it would a rented one.

    \b
    Each head and compute node is a network + UTS + mount namespace with its own hostname, /etc/hosts,
    /etc/slurm, /etc/munge, /run, /var/log/slurm, /var/spool, a neutral /root (overlay) and its own sshd.
    Heads sit on a management bridge the machine reaches; computes only on a private bridge shared with
    the heads (reach them through the first head, as on a Lambda 1-Click Cluster). No Slurm is installed
    or started: run `slurmkit -c CLUSTER_FILE bootstrap` next. Needs root on Linux.

    \b
    With `local up --image NAME` (see `local images`) the nodes are machines: each boots its own Debian root
    filesystem (an overlay over the image) with systemd as PID 1, its own /etc, dpkg database and packages;
    only the shared dir is common. Without --image (the light mode) nodes share this machine's filesystem.
    """


@local.command("up")
@click.option("-n", "--computes", default=2, show_default=True, type=click.IntRange(1), help="Compute nodes.")
@click.option("--heads", default=1, show_default=True, type=click.IntRange(1), help="Head nodes (the first is the jump host).")
@click.option("--name", default="local", show_default=True, help="Cluster name (Slurm ClusterName; host names NAME-head-K, NAME-node-K).")
@click.option(
    "-o",
    "--output",
    "cluster_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Cluster file to write. Default: .slurmkit/local/NAME/cluster.yaml.",
)
@click.option(
    "--gpus-per-node",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="SIMULATED GPUs per compute node: character devices /dev/slurmkit/NAME/nvidia0..G-1 (major 241) "
    "declared as gres; no real GPU, no CUDA. Jobs get CUDA_VISIBLE_DEVICES and device cgroups as on a GPU server.",
)
@click.option("--gpu-type", default="h100", show_default=True, help="GPU type name for the simulated GPUs (gres gpu:TYPE:G).")
@click.option(
    "--image",
    default=None,
    metavar="NAME",
    help="Nodes that are machines: each boots its own root filesystem (an overlay over OS image NAME: debian-12, "
    "debian-13, debian-sid; built first if missing or stale, see `local images`), with systemd as PID 1, its own "
    "/etc, dpkg database and packages; only the shared dir is common. No Slurm installed. Default: light mode "
    "(nodes share this machine's filesystem).",
)
@click.option("--no-boot", is_flag=True,
              help="With --image: no systemd; each node's sshd runs directly in a chroot of its own root filesystem.")
def up(computes: int, heads: int, name: str, cluster_file: Path | None, gpus_per_node: int, gpu_type: str,
       image: str | None, no_boot: bool) -> None:
    """Create the hosts, start their sshd and write the cluster file.

    A failed `up` removes what it made; `local down` removes the cluster file too. The key pair,
    known_hosts and per-node files live in /var/lib/slurmkit/local/NAME, a tmpfs mounted by `up` (a local
    cluster does not outlive a reboot; `down` unmounts it); its `shared/` directory is the same path on every
    node. Node names resolve (inside the cluster) to their private addresses.
    """
    from slurmkit.local import cluster as lc

    plan = lc.build_plan(name, computes, heads, gpus_per_node=gpus_per_node, gpu_type=gpu_type, image=image,
                         log_stream=lambda m: click.echo(m, err=True), boot=False if no_boot else None)
    path = cluster_file or Path(".slurmkit") / "local" / name / "cluster.yaml"
    timings = lc.up(plan, path)
    _print_hosts(plan, None)
    head = plan.heads[0]
    example = plan.computes[0]
    click.echo(
        f"\nLocal cluster {name!r} is up: {len(plan.heads)} head(s), {len(plan.computes)} compute node(s) "
        f"in {timings.total:.1f} s"
        + (f", {gpus_per_node} simulated {gpu_type} GPU(s) per compute node" if gpus_per_node else "")
        + (f", image {image} ({'systemd as PID 1' if plan.boot else 'sshd in a chroot'})" if image else "")
        + "."
    )
    click.echo(f"  cluster file  {path.absolute()}")
    click.echo(f"  ssh key       {plan.key_path}")
    click.echo(f"  known_hosts   {plan.known_hosts_path}")
    click.echo(f"  shared dir    {plan.shared_dir}  (same path on every node)")
    click.echo("\nNext:")
    click.echo(f"  slurmkit -c {path} bootstrap")
    click.echo(
        f"  ssh -i {plan.key_path} -o UserKnownHostsFile={plan.known_hosts_path} "
        f"-J root@{head.mgmt_address} root@{example.private_address}   # {example.name}"
    )
    click.echo(f"  slurmkit local down --name {name}")


@local.command("down")
@click.option("--name", default="local", show_default=True, help="Cluster name.")
def down(name: str) -> None:
    """Stop every process of the cluster's hosts and remove namespaces, bridges, devices, cgroups and state.

    Idempotent: safe to run twice, or after a failed `up`.
    """
    from slurmkit.local import cluster as lc

    removed = lc.down(name)
    if removed:
        click.echo(f"Local cluster {name!r} removed: " + "; ".join(removed))
    else:
        click.echo(f"Local cluster {name!r}: nothing to remove.")


@local.group("images", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def images(ctx: click.Context, as_json: bool) -> None:
    """OS images for `local up --image NAME`: which are built, where, size, age, what each holds.

    \b
    An image is a Debian root filesystem made once with `debootstrap --variant=minbase` from this machine's
    Debian archive, plus what a rented node always has (openssh-server, systemd, iproute2, procps, python3,
    sudo, ca-certificates); no Slurm and no munge (bootstrap installs them). Cached in
    /var/cache/slurmkit/images/NAME; rebuilt when its recipe changed or it is older than 30 days.
    Beside it, NAME/repo/: a package repository of the .debs slurmctld, slurmd, slurm-client, munge, slurmdbd
    and mariadb-server need on that image (downloaded once from Debian's archive, rebuilt with the image). `local
    up --image` serves it from the first head (http://HEAD-PRIVATE-ADDRESS/, an HTTP server in that head's
    network namespace, ended by `local down`) and makes it every node's only apt source, as a site mirror would
    be: the nodes have no route out. A real cluster's nodes install from their distribution's own archive.
    """
    if ctx.invoked_subcommand is not None:
        return
    from slurmkit.local import images as li

    found = li.list_images()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in found], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"local images  ({li.CACHE_ROOT})")
    for col in ("image", "suite", "built", "size", "age", "holds", "slurm in its archive", "site mirror (repo)",
                "nodes boot", "path"):
        table.add_column(col)
    for i in found:
        built = "yes" if i.built and not i.stale else ("stale: " + i.stale if i.built else "no")
        size = f"{i.size_bytes / 2**20:.0f} MiB" if i.size_bytes else "-"
        age = f"{i.age_days:.1f} d" if i.age_days is not None else "-"
        repo = (f"slurm {i.repo_slurm}, {(i.repo_size_bytes or 0) / 2**20:.0f} MiB" if i.repo_slurm else "-") + (
            f" ({i.repo_stale})" if i.repo_stale and i.built else "")
        table.add_row(i.name, i.suite, built, size, age, i.os_release or f"Debian {i.release}",
                      i.slurm_candidate or "-", repo, "systemd (nspawn)" if i.boot else "sshd (chroot)", i.path)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


@images.command("build")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild even when the cached image is fresh.")
def images_build(name: str, force: bool) -> None:
    """Build image NAME (debian-12, debian-13, debian-sid) and its package repository unless fresh ones are cached."""
    from slurmkit.local import images as li

    i = li.build(name, force=force, log_stream=lambda m: click.echo(m, err=True))
    click.echo(f"image {i.name}: {i.os_release}, {(i.size_bytes or 0) / 2**20:.0f} MiB in {i.path}"
               + (f", built in {i.build_seconds:.0f} s" if i.build_seconds else ""))
    r = li.build_repo(name, force=force, log_stream=lambda m: click.echo(m, err=True))
    click.echo(f"repository {li.repo_dir(name)}: slurm {r['slurm_version']}, {r['debs']} .debs, "
               f"{r['size_bytes'] / 2**20:.0f} MiB, built in {r['build_seconds']:.0f} s")


@local.command("status")
@click.option("--name", default="local", show_default=True, help="Cluster name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(name: str, as_json: bool) -> None:
    """Hosts, addresses, and whether sshd, munged, slurmctld and slurmd run in each."""
    from slurmkit.local import cluster as lc

    plan, hosts = lc.status(name)
    if as_json:
        data = {
            "cluster": plan.name,
            "mgmt_subnet": plan.mgmt_subnet,
            "private_subnet": plan.private_subnet,
            "state_dir": plan.state_dir,
            "shared_dir": str(plan.shared_dir),
            "image": plan.image,
            "boot": plan.boot,
            "hosts": [h.to_dict() for h in hosts],
        }
        click.echo(json.dumps(data, indent=2))
        return
    _print_hosts(plan, hosts)


def _print_hosts(plan, hosts) -> None:
    from rich.console import Console
    from rich.table import Table

    from slurmkit.local.cluster import DAEMONS

    table = Table(title=f"local cluster {plan.name}  (mgmt {plan.mgmt_subnet}, private {plan.private_subnet})")
    for col in ("host", "role", "mgmt address", "private address"):
        table.add_column(col)
    if hosts is not None:
        table.add_column("holder")
        for d in DAEMONS:
            table.add_column(d)
        for h in hosts:
            marks = ["up" if h.holder else "-"] + ["running" if h.daemons[d] else "-" for d in DAEMONS]
            table.add_row(h.name, h.role, h.mgmt_address or "", h.private_address, *marks)
    else:
        for n in plan.nodes:
            table.add_row(n.name, n.role, n.mgmt_address or "", n.private_address)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)
