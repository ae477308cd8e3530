"""Options a user puts before or after the subcommand: `-c/--cluster FILE` and `--json`, through the real CLI."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from slurmkit.cli import NO_CLUSTER_FILE, cli

CLUSTER = """\
cluster: {name}
ssh: {{user: root}}
heads: h1
nodes:
  - {{names: "n[1-2]", sockets: 1, cores_per_socket: 2, threads_per_core: 1, memory_mb: 1000}}
shared_dir: /srv/{name}
"""

# Commands that read the cluster file, written out (not derived from the code under test).
READERS = ["validate", "render", "discover", "bootstrap", "status", "keys", "keys add", "keys remove", "keys list",
           "ssh-config", "ssh", "ssh mesh", "sync", "support-bundle", "submit", "jobs", "logs", "cancel", "bench",
           "health", "health history", "exporter"]
NON_READERS = ["init", "demo", "local", "local up", "local down", "local status", "local images", "local images build",
               "bench parse", "bench report"]


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(CLUSTER.format(name="good"))
    other = tmp_path / "other.yaml"
    other.write_text(CLUSTER.format(name="other"))
    return good, other


def _valid(r) -> dict:
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cluster_file_before_or_after_the_command(files, cli, tmp_path):
    good, _ = files
    assert _valid(cli("-c", str(good), "validate", "--json", cwd=tmp_path))["cluster"] == "good"
    assert _valid(cli("validate", "-c", str(good), "--json", cwd=tmp_path))["cluster"] == "good"
    assert _valid(cli("validate", "--json", "--cluster", str(good), cwd=tmp_path))["cluster"] == "good"
    for args in (("-c", str(good), "render", "--stdout"), ("render", "--stdout", "-c", str(good)),
                 ("render", "--cluster", str(good), "--stdout")):
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "ClusterName=good" in r.stdout


def test_flag_after_the_command_wins(files, cli, tmp_path):
    good, other = files
    assert _valid(cli("-c", str(other), "validate", "-c", str(good), "--json", cwd=tmp_path))["cluster"] == "good"
    assert _valid(cli("-c", str(good), "validate", "-c", str(other), "--json", cwd=tmp_path))["cluster"] == "other"
    r = cli("-c", str(good), "validate", "-c", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert r.returncode == 2 and "missing.yaml: 1 problem(s)" in r.stderr
    # flag over environment, wherever the flag is
    env = {"SLURMKIT_CLUSTER": str(other)}
    assert _valid(cli("validate", "-c", str(good), "--json", cwd=tmp_path, env=env))["cluster"] == "good"
    assert _valid(cli("validate", "--json", cwd=tmp_path, env=env))["cluster"] == "other"


def test_nested_groups_take_the_cluster_file_at_each_level(files, cli, tmp_path):
    good, _ = files
    missing = tmp_path / "nope.yaml"
    # the file is loaded before any SSH: a missing one names itself, so the file each placement picked shows
    for args in (("keys", "-c", str(missing), "list"), ("keys", "list", "-c", str(missing)),
                 ("-c", str(good), "keys", "list", "--cluster", str(missing)),
                 ("keys", "-c", str(good), "list", "-c", str(missing)),
                 ("ssh", "-c", str(missing), "mesh"), ("ssh", "mesh", "-c", str(missing))):
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 2 and f"{missing}: 1 problem(s)" in r.stderr, (args, r.stderr)


def test_group_level_json_sets_the_default(files, cli, tmp_path):
    good, _ = files
    assert _valid(cli("--json", "validate", "-c", str(good), cwd=tmp_path))["valid"] is True
    r = cli("-c", str(good), "validate", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(f"{good}: valid.")  # no --json anywhere: text
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: x\nssh: {user: u}\nheads: h\nnodes:\n  - names: n[1-2]\n    gpus: {type: h100, count: 0}\n")
    r = cli("--json", "-c", str(bad), "validate", cwd=tmp_path)
    assert r.returncode == 2 and json.loads(r.stdout)["valid"] is False


def test_json_of_a_nested_group_reaches_its_subcommand():
    seen = {}

    @click.group()
    def grp():
        pass

    @grp.command()
    @click.option("--json", "as_json", is_flag=True)
    def show(as_json):
        seen["as_json"] = as_json

    from slurmkit.cli import add_common_options

    add_common_options(grp, "test-group")
    root = click.Group(commands={"test-group": grp})
    runner = CliRunner()
    for args, expected in ((["test-group", "show"], False), (["test-group", "--json", "show"], True),
                           (["test-group", "show", "--json"], True)):
        result = runner.invoke(root, args, obj={})
        assert result.exit_code == 0, result.output
        assert seen.pop("as_json") is expected, args


def test_double_dash_passes_the_users_flags_untouched(files, cli, tmp_path):
    good, other = files
    r = cli("-c", str(other), "submit", "--dry-run", "-c", str(good), "--", "python", "-c", "print(1)",
            "--cluster", "x", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --chdir=/srv/good" in r.stdout  # the -c before -- chose the cluster file
    assert "python -c 'print(1)' --cluster x --json" in r.stdout


def test_options_end_at_the_users_command_as_with_srun(files, cli, tmp_path):
    good, other = files
    r = cli("-c", str(good), "submit", "--dry-run", "-N", "2", "python", "train.py", "-c", str(other), "--json",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --chdir=/srv/good" in r.stdout and "#SBATCH --nodes=2" in r.stdout
    assert f"python train.py -c {other} --json" in r.stdout


def _paths(group: click.Group, ctx: click.Context, prefix: str = ""):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = f"{prefix}{name}"
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from _paths(cmd, ctx, path + " ")


def test_help_of_every_command_shows_the_options_it_takes():
    runner = CliRunner()
    paths = dict(_paths(cli, click.Context(cli)))
    assert set(READERS) <= set(paths) and set(NON_READERS) <= set(paths)
    assert {"init", "demo", "local", "bench parse", "bench report"} == set(NO_CLUSTER_FILE)
    for path in paths:
        out = runner.invoke(cli, [*path.split(), "--help"]).output
        assert out.startswith(f"Usage: cli {path} "), out
        # bench keeps -c for its --check (nccl-tests' flag) and takes the cluster file as --cluster
        short = "--cluster FILE" if path == "bench" else "-c, --cluster FILE"
        if path in NON_READERS:
            assert "--cluster" not in out, path
        else:
            assert short in out and "this one wins" in out, path
    for group in ("keys", "ssh", "local"):
        assert "the default of --json for the command" in runner.invoke(cli, [group, "--help"]).output, group
    top = runner.invoke(cli, ["--help"]).output
    assert "-c, --cluster FILE" in top and "the one after wins" in top and "--json" in top


def test_bench_takes_the_cluster_file_as_long_option_only(files, cli, tmp_path):
    good, _ = files
    missing = tmp_path / "nope.yaml"
    # -c 1 is nccl-tests' --check; --cluster after `bench` wins over -c before it
    r = cli("-c", str(good), "bench", "-c", "1", "--cluster", str(missing), cwd=tmp_path)
    assert r.returncode == 2 and f"{missing}: 1 problem(s)" in r.stderr, r.stderr
    r = cli("bench", "-c", str(missing), cwd=tmp_path)
    assert r.returncode == 2 and "-c" in r.stderr and "not a valid integer range" in r.stderr, r.stderr
