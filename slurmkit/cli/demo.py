"""`slurmkit demo`: the main job, end to end on this machine."""

from __future__ import annotations

from pathlib import Path

import click

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


@click.command()
@click.option("-o", "--output", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False), help="Where to write what the demo renders.")
def demo(out_dir):
    """Validate the example cluster files and render their Slurm configs into OUT_DIR."""
    from slurmkit.cluster import load_cluster
    from slurmkit.render import render_cluster

    for example in sorted(EXAMPLES.glob("*.yaml")):
        cluster = load_cluster(example)
        target = Path(out_dir) / example.stem
        written = render_cluster(cluster).write(target)
        click.echo(f"{example.name}: cluster {cluster.cluster}, {len(cluster.head_names)} head(s), "
                   f"{len(cluster.compute_names)} compute node(s) -> {', '.join(p.name for p in written)} in {target}")
