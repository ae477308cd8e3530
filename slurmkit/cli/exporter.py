"""`slurmkit exporter`: serve the cluster's Prometheus metrics (:mod:`slurmkit.health.metrics`) over HTTP.

At each scrape: the nodes (``scontrol -o show node``, with AllocTRES for the GPUs) and the jobs (the Slurm
backend's) through the same runner the other commands use (local with $SLURM_CONF or on a cluster host, else
over SSH to the first head), the health state (``.slurmkit/health/state.json``) and the latest bench run
(``.slurmkit/bench``) beside the cluster file.
"""

from __future__ import annotations

import time

import click

from slurmkit.cli.config import cluster_path, load


def sources_for(ctx: click.Context, bench_dir=None):
    from slurmkit.cli.jobs import backend_for
    from slurmkit.health.metrics import Sources, latest_bench_meta
    from slurmkit.health.policy import Store
    from slurmkit.paths import StateDir
    from slurmkit.slurm import commands, parsers

    load(ctx)  # a bad cluster file fails now (exit 2), not at the first scrape
    state = StateDir.of(cluster_path(ctx))
    backend = backend_for(ctx)

    def nodes():
        text = commands.run(backend.runner, list(commands.SHOW_NODES)).stdout
        alloc = {r.get("NodeName", ""): r.get("AllocTRES", "")
                 for r in parsers.parse_scontrol_records(text, last_key="Reason")}
        return parsers.parse_scontrol_nodes(text), alloc

    return Sources(nodes=nodes, jobs=backend.jobs, health=lambda: Store(state.health_dir).load(),
                   bench=lambda: latest_bench_meta(bench_dir or state.bench_dir))


@click.command("exporter")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True, help="TCP port to serve on.")
@click.option("--bind", "bind", default="127.0.0.1", show_default=True, metavar="ADDR",
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--once", is_flag=True, help="Print the metrics once (the text a scrape returns) and exit.")
@click.pass_context
def exporter(ctx: click.Context, port: int, bind: str, once: bool) -> None:
    """Serve Prometheus metrics on http://ADDR:PORT/metrics: nodes by Slurm state, GPUs allocated/idle/drained,
    jobs by state and partition, each health check's last result per node, the latest bench run's busbw per node
    set, and slurmkit_scrape_ok per source. Runs until interrupted."""
    from prometheus_client import CollectorRegistry, generate_latest, start_http_server

    from slurmkit.health.metrics import Collector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(sources_for(ctx)))
    if once:
        click.echo(generate_latest(registry).decode(), nl=False)
        return
    server, _thread = start_http_server(port, addr=bind, registry=registry)
    click.echo(f"serving metrics on http://{bind}:{server.server_port}/metrics", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
