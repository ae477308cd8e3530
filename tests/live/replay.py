"""Replayed hardware for live tests and the demo: a SIMULATION, never used against a real cluster.

A local-cluster node is made to answer some discovery commands with real captured outputs (the fixtures of
tests/fixtures/hardware): for each tool replayed, a tiny ``sh`` script that ``cat``s the captured output of the
exact argument list discovery sends (``nvidia-smi topo -m``, ``ibstat``) and, for any other argument list,
says on stderr that nothing was captured and exits 2 (what discovery records as "no output": e.g.
``nvidia-smi --query-gpu=...``, for which no fixture holds discovery's fields; the GPU count then comes from
the topo matrix). Only tools with fixtures are replayed: ``lscpu``, ``numactl``, ``slurmd -C`` and ``ip`` stay
real, because Slurm on that node really has this machine's CPUs and memory.

How the directory gets first on PATH for that node only: sshd runs a remote command through root's login
shell, ``bash -c``, and Debian's bash (built with SSH_SOURCE_BASHRC) sources ``~/.bashrc`` for such
non-interactive SSH commands. ``~`` of a local node is its own overlay of /root (slurmkit.local.cluster
node_mounts), so a PATH line put first in that node's ``~/.bashrc`` (before its ``[ -z "$PS1" ] && return``)
reaches every command slurmkit runs there over SSH, and no other node's. /usr is shared by all nodes, so a
wrapper there would not be per node; no change to the local cluster itself is needed.

The scripts and outputs live in a directory of the machine the tests run on (the local cluster's nodes
share its filesystem); :func:`unreplay` takes the PATH line out again.
"""

from __future__ import annotations

import shlex
from pathlib import Path

MARK = "# slurmkit replay (simulation, tests/demo only)"


def _script(tool: str, answers: dict[str, Path]) -> str:
    lines = ["#!/bin/sh", f"{MARK}: captured outputs of {tool}, not the real tool", 'case "$*" in']
    for args, path in answers.items():
        lines.append(f"  {shlex.quote(args)}) exec cat {shlex.quote(str(path))} ;;")
    lines += [
        "esac",
        f'echo "slurmkit replay: no captured output for: {tool} $*" >&2',
        "exit 2",
    ]
    return "\n".join(lines) + "\n"


def write_replay(directory: Path, outputs: dict[str, str]) -> Path:
    """Write the scripts answering ``outputs`` (command line -> captured text, e.g. ``{"nvidia-smi topo -m":
    text}``) under ``directory``; returns the ``bin`` directory to put first on PATH. Outputs are written
    byte-exact (a fixture without a final newline stays so)."""
    bin_dir, out_dir = directory / "bin", directory / "outputs"
    bin_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_tool: dict[str, dict[str, Path]] = {}
    for k, (command, text) in enumerate(outputs.items()):
        tool, _, args = command.partition(" ")
        path = out_dir / f"{k:02d}-{tool}.txt"
        path.write_bytes(text.encode())
        by_tool.setdefault(tool, {})[args] = path
    for tool, answers in by_tool.items():
        script = bin_dir / tool
        script.write_text(_script(tool, answers))
        script.chmod(0o755)
    return bin_dir


def replay(lc, node: str, directory: Path, outputs: dict[str, str]) -> Path:
    """Make ``node`` of local cluster ``lc`` answer ``outputs`` (see :func:`write_replay`): the scripts go
    under ``directory``, a PATH line first in the node's own ``~/.bashrc``. Replaces an earlier replay."""
    bin_dir = write_replay(directory, outputs)
    unreplay(lc, node)
    line = f"export PATH={shlex.quote(str(bin_dir))}:$PATH {MARK}"
    lc.on(node, f"printf '%s\\n' {shlex.quote(line)} | cat - ~/.bashrc > ~/.bashrc.new && mv ~/.bashrc.new ~/.bashrc")
    return bin_dir


def unreplay(lc, node: str) -> None:
    """Take the replay PATH line out of the node's ``~/.bashrc``: its real tools answer again."""
    lc.on(node, f"sed -i {shlex.quote('/' + MARK.replace('/', chr(92) + '/') + '/d')} ~/.bashrc")
