"""`slurmkit init`, `validate`, `render`: the cluster file and the configs rendered from it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from slurmkit.cli.adopt import adopt_options
from slurmkit.errors import ConfigError, Problem


def cluster_path(ctx: click.Context) -> Path:
    return Path(ctx.obj["cluster_file"]).expanduser()


def load(ctx: click.Context, check_env: bool = False):
    """Load the cluster file named by -c / $SLURMKIT_CLUSTER / ./cluster.yaml; raise ConfigError on problems."""
    from slurmkit.cluster import check_environment, load_cluster

    path = cluster_path(ctx)
    cluster = load_cluster(path)
    if check_env:
        problems = check_environment(cluster, path.parent)
        if problems:
            raise ConfigError(str(path), problems)
    return cluster


@click.command()
@click.option("--lambda-nodes", type=click.Path(dir_okay=False), help="A Lambda 1CC node list: one name per line, <cluster>-head-N and <cluster>-node-N.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), help="With --lambda-nodes: the cluster's SSH config (~/.ssh/config.d/config.<cluster>); User, IdentityFile and ProxyJump are read from it. With --from-head: how to reach the head.")
@click.option("--dstack-fleet", type=click.Path(dir_okay=False), help="A dstack SSH fleet file (type: fleet, ssh_config.hosts).")
@click.option("--tensorpool", "tensorpool_id", metavar="ID", help="A TensorPool cluster id: ID-jumphost is the head, workers ID-0..ID-(N-1).")
@click.option("--workers", type=int, help="With --tensorpool: the number of worker nodes.")
@click.option("--user", default="ubuntu", show_default=True, help="With --tensorpool or --from-head: the SSH user.")
@click.option("--identity-file", help="With --tensorpool or --from-head: the SSH private key.")
@click.option("--gpu-type", help="GPU type for the compute nodes (h100, h200, ...). Lambda: h100.")
@click.option("--gpus-per-node", type=int, help="GPUs per compute node. Lambda: 8.")
@click.option("-o", "--output", default="cluster.yaml", show_default=True, type=click.Path(dir_okay=False), help="Where to write the cluster file.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@adopt_options
def init(lambda_nodes, ssh_config, dstack_fleet, tensorpool_id, workers, user, identity_file, gpu_type, gpus_per_node, output, force,
         from_slurm_conf, gres_conf, topology_conf, known_hosts, from_head):
    """Write a cluster file from what you already have.

    \b
    Exactly one source:
      --lambda-nodes nodes.txt [--ssh-config ~/.ssh/config.d/config.us-east-2-1cc]
      --dstack-fleet fleet.dstack.yml
      --tensorpool tp-abc123 --workers 2 [--gpu-type h200 --gpus-per-node 8]
      --from-slurm-conf /etc/slurm/slurm.conf [--gres-conf F] [--topology-conf F]
      --from-head HOST [--ssh-config F] [--user U] [--identity-file K] [--known-hosts F]

    Adopting (--from-slurm-conf, --from-head) keeps what the model does not own verbatim in slurm_conf: and
    partition options:, prints each inconsistency of the originals as a finding (exit 0) and each line that
    cannot be kept as "not kept:" (also as comments in the file); --from-head also saves the cluster's munge key
    beside the file, so bootstrap keeps it.

    The result passes `slurmkit validate`; hardware left out is found by `slurmkit discover`.
    Nothing is written when the input has a problem.
    """
    from slurmkit import importers
    from slurmkit.cluster import dump_cluster, parse_cluster

    if from_slurm_conf or from_head:
        if lambda_nodes or dstack_fleet or tensorpool_id or (from_slurm_conf and from_head):
            raise click.UsageError("give exactly one of --lambda-nodes, --dstack-fleet, --tensorpool, --from-slurm-conf, "
                                   "--from-head")
        from slurmkit.cli.adopt import run_adopt

        return run_adopt(from_slurm_conf=from_slurm_conf, gres_conf=gres_conf, topology_conf=topology_conf,
                         from_head=from_head, ssh_config=ssh_config, user=user, identity_file=identity_file,
                         output=output, force=force, known_hosts=known_hosts)
    sources = [s for s in (lambda_nodes, dstack_fleet, tensorpool_id) if s]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --lambda-nodes, --dstack-fleet, --tensorpool")
    if ssh_config and not lambda_nodes:
        raise click.UsageError("--ssh-config goes with --lambda-nodes")
    if tensorpool_id and workers is None:
        raise click.UsageError("--tensorpool needs --workers N")
    out = Path(output)
    if out.exists() and not force:
        raise ConfigError(str(out), [Problem("", "already exists; use --force to overwrite, or -o another path")])

    if lambda_nodes:
        text = _read(lambda_nodes)
        names = [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]
        from slurmkit.remote import read_ssh_config

        resolved = read_ssh_config(ssh_config, names) if ssh_config else None
        data = importers.from_lambda_nodes(
            text, lambda_nodes, resolved, ssh_config, gpu_type=gpu_type or "h100", gpus_per_node=gpus_per_node or 8
        )
        origin = f"Lambda 1CC node list {lambda_nodes}"
    elif dstack_fleet:
        data = importers.from_dstack_fleet(_read(dstack_fleet), dstack_fleet, gpu_type, gpus_per_node)
        origin = f"dstack fleet {dstack_fleet}"
    else:
        data = importers.from_tensorpool(tensorpool_id, workers, user, identity_file, gpu_type, gpus_per_node)
        origin = f"TensorPool cluster {tensorpool_id}"
    text = (f"# slurmkit cluster file, written by `slurmkit init` from {origin}.\n# Keys: see README.md (Cluster file).\n"
            "# Names may be placeholders: Slurm calls each host by its own hostname, which `slurmkit discover` finds\n"
            "# (slurm_names); addresses are how slurmkit and Slurm reach the hosts.\n" + dump_cluster(data))
    parse_cluster(text, str(out))  # never write a file that validate would reject
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(f"wrote {out}: cluster {data['cluster']}. Next: slurmkit -c {out} validate")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [Problem("", f"cannot read: {exc}")]) from None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def validate(ctx, as_json):
    """Load and check the cluster file; list every problem with its path in the file.

    Checks keys and values, hostlists, nodes in two groups, heads listed as compute nodes, partitions, the
    switch layout, and that the SSH files it names exist; where `slurmkit discover` cached a node's facts, that
    the hardware declared for it does not contradict them (`nodes[0].cores_per_socket: node-3 has 48, declared
    56`), and that the hostnames found can be the hosts' Slurm names (`slurm_names: as-written` names that
    are not hostnames, two hosts with one hostname). Exit 0 when valid, 2 otherwise; writes nothing.
    """
    from slurmkit.hardware import cached_records, refuse_bad_names, refuse_contradictions, slurm_target

    path = cluster_path(ctx)
    try:
        cluster = load(ctx, check_env=True)
        records = cached_records(cluster, path)
        # declared hardware contradicted by facts `slurmkit discover` cached
        refuse_contradictions(cluster, path, {h: r for h, r in records.items() if h in set(cluster.compute_names)})
        # Slurm names (own hostnames) that cannot work: as-written names that are not hostnames, duplicates
        refuse_bad_names(cluster, path, records)
        # the Slurm release the nodes run, against the pin (slurm_version) and each other
        target = slurm_target(cluster, path, records)
    except ConfigError as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "file": exc.source, "problems": [{"path": p.path, "message": p.message} for p in exc.problems]}))
            ctx.exit(2)
        raise
    from slurmkit.cluster import cluster_notes

    notes = [str(n) for n in cluster_notes(cluster)]  # allowed, worth saying: a head that is also a compute node
    groups = len(cluster.nodes)
    gpus = sum(len(cluster.compute_names_of(g)) * g.gpu_count for g in cluster.nodes)
    summary = {
        "valid": True,
        "file": str(path),
        "cluster": cluster.cluster,
        "heads": cluster.head_names,
        "compute_nodes": len(cluster.compute_names),
        "groups": groups,
        "gpus": gpus,
        "partitions": [p.name for p in cluster.partitions],
        "slurm_version": target.release,
        "slurm_version_source": target.source,
        "notes": notes,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"{path}: valid. Cluster {cluster.cluster}: {len(cluster.head_names)} head(s) "
            f"({', '.join(cluster.head_names)}), {len(cluster.compute_names)} compute node(s) in {groups} group(s), "
            f"{gpus} GPU(s), partitions {', '.join(summary['partitions'])}."
        )
        click.echo(f"Slurm {target.release} ({_target_why(target)}).")
        if target.note:
            click.echo(f"note: {target.note}", err=True)
        for n in notes:
            click.echo(f"note: {n}", err=True)


def _target_why(target) -> str:
    """Why this release: ``from the nodes' facts``, ``pinned by slurm_version``, ``the default``."""
    return {"nodes": "from the nodes' facts", "pin": "pinned by slurm_version; no facts to check it against",
            "default": "the default: no facts, no pin"}.get(target.source, target.source)


@click.command()
@click.option("-o", "--output", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False), help="Directory to write the files into.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the files instead of writing them.")
@click.pass_context
def render(ctx, out_dir, to_stdout):
    """Write slurm.conf, gres.conf, topology.conf and cgroup.conf for the cluster.

    Pure: no SSH. Hardware comes from the cluster file, or from facts cached by `slurmkit discover` for
    groups that leave it out (declared hardware that cached facts contradict is an error, as in `validate`).
    gres.conf is written when any node has GPUs, topology.conf when the cluster file
    has a `topology:` layout. Files are replaced atomically.
    """
    from slurmkit.hardware import hardware_source
    from slurmkit.render import render_cluster

    cluster = load(ctx)
    # refuses declared hardware that cached facts contradict, as validate does
    rendered = render_cluster(cluster, hardware_source(cluster, cluster_path(ctx)))
    if rendered.target is not None and rendered.target.note:
        click.echo(f"note: {rendered.target.note}", err=True)
    if to_stdout:
        for name, text in rendered.files.items():
            click.echo(f"==> {name} <==\n{text}")
        return
    for p in rendered.write(out_dir):
        click.echo(f"wrote {p}")
