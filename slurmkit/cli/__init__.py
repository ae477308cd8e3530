"""slurmkit's command line. Thin: each command group lives in its own module, imported only when used."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from slurmkit import __version__

# name -> "module:attribute". Modules are imported only when their command runs (or its --help is shown),
# so `slurmkit --help` does not pay for pandas, fabric or pydantic.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("slurmkit.cli.config:init", "Write a cluster file from a Lambda node list, a dstack fleet or a TensorPool cluster."),
    "validate": ("slurmkit.cli.config:validate", "Load and check the cluster file; list every problem with its path."),
    "render": ("slurmkit.cli.config:render", "Write slurm.conf, gres.conf, topology.conf and cgroup.conf (pure, no SSH)."),
    "discover": ("slurmkit.cli.discover:discover", "SSH to every node, collect hardware facts, print the topology."),
    "bootstrap": ("slurmkit.cli.bootstrap:bootstrap", "Make every node match: munge, packages, configs, services."),
    "status": ("slurmkit.cli.jobs:status", "Nodes, controllers, jobs and one cluster state."),
    "keys": ("slurmkit.cli.ops:keys", "Add, remove and list SSH public keys on every host."),
    "ssh-config": ("slurmkit.cli.ops:ssh_config", "Print an OpenSSH config for the cluster, with the jump host."),
    "ssh": ("slurmkit.cli.ops:ssh_group", "SSH between the cluster's nodes: `ssh mesh` for passwordless node-to-node SSH."),
    "sync": ("slurmkit.cli.ops:sync", "rsync a directory to every node in parallel, through the jump host."),
    "support-bundle": ("slurmkit.cli.ops:support_bundle", "Collect a scrubbed support bundle and classify findings by severity."),
    "submit": ("slurmkit.cli.jobs:submit", "Submit a multi-node job through sbatch (torchrun, mpirun or srun)."),
    "jobs": ("slurmkit.cli.jobs:jobs", "List jobs."),
    "logs": ("slurmkit.cli.jobs:logs", "Show (and follow) a job's output."),
    "cancel": ("slurmkit.cli.jobs:cancel", "Cancel a job."),
    "bench": ("slurmkit.cli.bench:bench", "Acceptance runs: NCCL all-reduce sweeps, parse, verdict, report."),
    "health": ("slurmkit.cli.health:health", "Run the node checks now; drain what fails, resume what slurmkit drained."),
    "exporter": ("slurmkit.cli.exporter:exporter", "Serve Prometheus metrics: nodes, GPUs, jobs, health checks, bench busbw."),
    "local": ("slurmkit.cli.local:local", "A real Slurm cluster on this machine, in network namespaces."),
    "demo": ("slurmkit.cli.demo:demo", "Local cluster up, bootstrap, a job, an acceptance bench, the report."),
}


def _available(target: str) -> bool:
    module = target.split(":")[0]
    return importlib.util.find_spec(module) is not None


# Commands, by their path under `slurmkit`, that do not read the cluster file (nor do their subcommands):
# they get no -c/--cluster.
NO_CLUSTER_FILE = frozenset({"init", "demo", "local", "bench parse", "bench report"})

CLUSTER_HELP = "Cluster file. Default: $SLURMKIT_CLUSTER, else ./cluster.yaml."
SUB_CLUSTER_HELP = "Cluster file (also accepted before the command; given in both places, this one wins). " + CLUSTER_HELP.split(". ", 1)[1]
GROUP_JSON_HELP = "Print JSON: the default of --json for the command that follows (for the commands that have one)."


def _set_cluster(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["cluster_file"] = value


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(dict)["json"] = True


def _json_default() -> bool:
    return bool((click.get_current_context().obj or {}).get("json"))


def _json_option(cmd: click.Command) -> click.Option | None:
    return next((p for p in cmd.params if isinstance(p, click.Option) and "--json" in p.opts), None)


def _has_json(cmd: click.Command) -> bool:
    return _json_option(cmd) is not None or (
        isinstance(cmd, click.Group) and any(_has_json(c) for c in cmd.commands.values())
    )


def add_common_options(cmd: click.Command, path: str) -> click.Command:
    """Give ``cmd`` (at ``path``, e.g. ``"keys add"``) and its subcommands the options a user may put before or
    after a subcommand, and return it.

    ``-c/--cluster FILE`` on every command that reads the cluster file (a name the command already uses for
    another option is left to it: ``bench -c`` is ``--check``); the innermost one given wins, as it is parsed
    last. ``--json`` on groups whose subcommands have one; a group-level ``--json`` (or ``slurmkit --json``)
    makes ``--json`` the default of the command that follows. Idempotent.
    """
    if getattr(cmd, "_slurmkit_common", False):
        return cmd
    cmd._slurmkit_common = True
    taken = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    words = path.split()
    if not any(" ".join(words[:i]) in NO_CLUSTER_FILE for i in range(1, len(words) + 1)):
        names = [n for n in ("-c", "--cluster") if n not in taken]
        if names:
            cmd.params.append(click.Option(
                [*names, "slurmkit_cluster_file"], metavar="FILE", type=click.Path(dir_okay=False),
                expose_value=False, callback=_set_cluster, help=SUB_CLUSTER_HELP,
            ))
    own_json = _json_option(cmd)
    if own_json is not None:
        own_json.default = _json_default
    elif isinstance(cmd, click.Group) and _has_json(cmd):
        cmd.params.append(click.Option(
            ["--json", "slurmkit_json"], is_flag=True, expose_value=False, callback=_set_json, help=GROUP_JSON_HELP,
        ))
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            add_common_options(sub, f"{path} {name}")
    return cmd


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (target, _) in COMMANDS.items() if _available(target)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None or not _available(entry[0]):
            return None
        module, attr = entry[0].split(":")
        return add_common_options(getattr(importlib.import_module(module), attr), name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above so that `--help` imports no command module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "-c",
    "--cluster",
    "cluster_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help=CLUSTER_HELP + " Also accepted after the command; given in both places, the one after wins.",
)
@click.option("--json", "as_json", is_flag=True, help=GROUP_JSON_HELP)
@click.version_option(__version__, prog_name="slurmkit")
@click.pass_context
def cli(ctx: click.Context, cluster_file: str | None, as_json: bool) -> None:
    """slurmkit: take SSH-reachable GPU machines to an accepted Slurm cluster, then use it.

    \b
    Typical flow:
      slurmkit init --lambda-nodes nodes.txt --ssh-config ~/.ssh/config.d/config.mycluster
      slurmkit validate
      slurmkit discover
      slurmkit render -o out/
      slurmkit bootstrap --dry-run && slurmkit bootstrap
      slurmkit bench -N 2 --profile h100-8x400g-ndr

    Exit codes: 0 success, 1 a check failed (a host failed, a bench failed), 2 bad input or could not run.
    """
    ctx.ensure_object(dict)
    ctx.obj["cluster_file"] = cluster_file or os.environ.get("SLURMKIT_CLUSTER") or "cluster.yaml"
    ctx.obj["json"] = as_json


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the CLI and turns slurmkit errors into a message and an exit code."""
    from slurmkit.errors import SlurmkitError

    try:
        rv = cli.main(args=argv, prog_name="slurmkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SlurmkitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    else:
        # In non-standalone mode click returns ctx.exit(N)'s code; commands themselves return None.
        sys.exit(rv if isinstance(rv, int) else 0)
