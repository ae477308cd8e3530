"""Capture real Slurm outputs from a bootstrapped image cluster (tests/live/test_bootstrap_images.py) into a
fixtures directory: each command's stdout verbatim (``.stderr`` / ``.rc`` beside it where not empty / not 0), and a
SOURCES.md naming this cluster (image, Slurm version), the exact command and the date.

Run through the live test: ``SLURMKIT_CAPTURE_DIR=tests/fixtures pytest tests/live/test_bootstrap_images.py``."""

from __future__ import annotations

import datetime
import re
import shlex
import time
from pathlib import Path


def capture(c, dest: Path) -> None:
    head = c.plan.heads[0]
    dest.mkdir(parents=True, exist_ok=True)
    version = c.run(head, "sinfo --version").strip()
    job = c.run(head, "sbatch --parsable --job-name sleeper --wrap 'sleep 60'").strip().split(";")[0]
    for _ in range(60):  # until the job runs (its state read from Slurm, not from a sleep's length)
        if c.run(head, f"squeue -h -j {job} -o %T").strip() == "RUNNING":
            break
        time.sleep(1)
    commands = [
        ("sinfo-version.txt", "sinfo --version"),
        ("squeue-json-running.json", "squeue --json"),
        ("sinfo-json-mixed.json", "sinfo --json"),
        ("scontrol-o-show-node-alloc.txt", "scontrol -o show node"),
        ("scontrol-o-show-job-running.txt", f"scontrol -o show job {job}"),
        ("scontrol-ping.txt", "scontrol ping"),
        ("sinfo-N-l.txt", "sinfo -N -l"),
        ("sacct-parsable2.txt", f"sacct -j {job} --parsable2 -n"),
    ]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for fname, cmd in commands:
        r = c.ssh(head, cmd)
        stem = re.sub(r"\.(txt|json)$", "", fname)
        (dest / fname).write_text(r.stdout)
        extra = []
        if r.stderr:
            (dest / f"{stem}.stderr").write_text(r.stderr)
            extra.append(f"{stem}.stderr")
        if r.returncode:
            (dest / f"{stem}.rc").write_text(f"{r.returncode}\n")
            extra.append(f"{stem}.rc (exit {r.returncode})")
        rows.append(f"| {' / '.join([fname, *extra])} | `{cmd}` | {date} |")
    c.ssh(head, f"scancel {job}")
    nodes = ", ".join(f"{n.name} ({n.role})" for n in c.plan.nodes)
    (dest / "SOURCES.md").write_text(
        f"# {version} outputs (`{c.image}` image, Debian's own Slurm packages)\n\n"
        f"Captured by `tests/live/capture_outputs.py` (through `tests/live/test_bootstrap_images.py` with "
        f"`SLURMKIT_CAPTURE_DIR`) on the project's machine from a local image cluster "
        f"(`slurmkit local up --image {c.image} -n 2 --heads 1`, cluster `{c.name}`: {nodes}; systemd-nspawn "
        f"nodes, Slurm installed by `slurmkit bootstrap` from the image's site mirror, configs rendered by slurmkit, "
        f"no slurmdbd). Each command ran on the head over SSH, as root, with job {job} "
        f"(`sbatch --parsable --job-name sleeper --wrap 'sleep 60'`) RUNNING; stdout saved verbatim, stderr / exit "
        f"status where named `.stderr` / `.rc`.\n\n"
        "| file | exact command | date |\n|---|---|---|\n" + "\n".join(rows) + "\n")
