"""slurmkit as a Python tool: a wheel built from the tree, installed with its dependencies into a fresh venv (no
system site-packages, from the package index pip is configured with, as `scripts/setup.sh` uses), serves every
command from a directory that is not the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from slurmkit.cli import cli as checkout_cli
from tests.conftest import FIXTURES, ROOT, run_slurmkit

pytestmark = pytest.mark.wheel

# What the build reads: metadata, the build hook, the package and the data folders the hook copies in.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "slurmkit", "templates", "playbooks")
# pip's words for "the index has no such package": the only failure that skips (no index reachable), with its tail.
NOT_FETCHABLE = ("No matching distribution found", "Could not find a version that satisfies")

CLUSTER = """\
cluster: wheel-test
ssh: {user: root}
heads: wt-head
nodes:
  - {names: "wt-node-[1-2]", gpus: {type: h100, count: 8}, sockets: 2, cores_per_socket: 4, threads_per_core: 1,
     memory_mb: 64000}
"""
LOG = FIXTURES / "nccl-tests" / "nccl-10-a3mega-2node-h100-rankheader.txt"


def _run(cmd, timeout, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, env, work dir): the wheel installed into a fresh venv; env runs its `slurmkit` outside the tree."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}))
    dist = base / "dist"
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(src)], 900, cwd=base)
    if r.returncode != 0 and any(s in r.stdout + r.stderr for s in NOT_FETCHABLE):
        pytest.skip(f"pip cannot fetch the build backend (setuptools) from its index: {(r.stdout + r.stderr)[-300:]}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = dist.glob("slurmkit-*.whl")

    venv = base / "venv"
    r = _run([sys.executable, "-m", "venv", str(venv)], 300)
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    r = _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], 1800, cwd=base)
    if r.returncode != 0 and any(s in r.stdout + r.stderr for s in NOT_FETCHABLE):
        pytest.skip(f"pip cannot fetch slurmkit's dependencies from its index: {(r.stdout + r.stderr)[-300:]}")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    print(f"wheel install with dependencies: {time.monotonic() - t0:.1f} s")

    work = base / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SLURMKIT_CLUSTER", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    (work / "cluster.yaml").write_text(CLUSTER)
    return venv, env, work


def _sk(installed, *args, timeout=300) -> subprocess.CompletedProcess:
    venv, env, work = installed
    return _run([str(venv / "bin" / "slurmkit"), *args], timeout, cwd=work, env=env)


def _paths(group: click.Group, ctx: click.Context, prefix: str = ""):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            yield from _paths(cmd, ctx, f"{prefix}{name} ")


def test_the_wheel_is_what_runs(installed):
    venv, env, work = installed
    probe = ("import slurmkit, slurmkit.render as r, slurmkit.provision as p; "
             "print(slurmkit.__file__); print(r.TEMPLATE_DIR); print(p.PLAYBOOK_DIR)")
    r = _run([str(venv / "bin" / "python"), "-c", probe], 120, cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    for line in r.stdout.split():
        assert Path(line).is_relative_to(venv) and not Path(line).is_relative_to(ROOT), line
    # every file of the data folders is in the package
    package, templates, playbooks = (Path(p) for p in r.stdout.split())
    for installed_dir, source in ((templates, ROOT / "templates"), (playbooks, ROOT / "playbooks")):
        assert sorted(p.relative_to(installed_dir) for p in installed_dir.rglob("*") if p.is_file()) == \
            sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())


def test_help_of_every_command(installed):
    paths = list(_paths(checkout_cli, click.Context(checkout_cli)))
    assert "bench parse" in paths and "local up" in paths
    for path in ["", *paths]:
        r = _sk(installed, *path.split(), "--help")
        assert r.returncode == 0, (path, r.stderr)
        assert r.stdout.startswith(f"Usage: slurmkit {path}".rstrip() + " "), (path, r.stdout[:200])


def test_validate_and_render(installed, tmp_path):
    r = _sk(installed, "validate", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["valid"], summary["cluster"], summary["compute_nodes"], summary["gpus"]) == (True, "wheel-test", 2, 16)
    r = _sk(installed, "render", "-o", "out")
    assert r.returncode == 0, r.stderr
    _, _, work = installed
    out = work / "out"
    assert sorted(p.name for p in out.iterdir()) == ["cgroup.conf", "gres.conf", "slurm.conf"]
    slurm_conf = (out / "slurm.conf").read_text()
    assert "ClusterName=wheel-test" in slurm_conf and "Gres=gpu:h100:8" in slurm_conf
    # the same files as the checkout renders
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    assert run_slurmkit("render", "-o", "out", cwd=tmp_path).returncode == 0
    for name in ("cgroup.conf", "gres.conf", "slurm.conf"):
        assert (out / name).read_text() == (tmp_path / "out" / name).read_text(), name


def test_submit_dry_run(installed, tmp_path):
    args = ("submit", "--dry-run", "-N", "2", "--gpus-per-node", "8", "--launcher", "torchrun", "--",
            "python", "train.py", "-c", "x")
    r = _sk(installed, *args)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --nodes=2" in r.stdout and "#SBATCH --gpus-per-node=8" in r.stdout
    assert "train.py -c x" in r.stdout
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    assert r.stdout == run_slurmkit(*args, cwd=tmp_path).stdout


def test_bench_parse(installed):
    r = _sk(installed, "bench", "parse", str(LOG))
    assert r.returncode == 0, r.stderr
    assert "16 ranks on 2 host(s)" in r.stdout
    r = _sk(installed, "bench", "parse", "--format", "csv", str(LOG))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("source,run,collective,nranks,size_bytes") and len(lines) > 10
    assert r.stdout == run_slurmkit("bench", "parse", "--format", "csv", str(LOG)).stdout
