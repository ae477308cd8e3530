"""Commands through the head node (`jobs`, `status`, `logs`, `cancel`) against OpenSSH running the same Slurm command.

Target (issue 20): each slurmkit command, as a whole process from outside the cluster, within 1.5x of
`ssh head <the same Slurm command>` measured in the same run: OpenSSH's client with the cluster file's key and
known_hosts, to the cluster's jump host (its first head, where slurmkit runs Slurm commands too).

    jobs    slurmkit jobs              vs  ssh head squeue --json
    status  slurmkit status            vs  ssh head sinfo
    logs    slurmkit logs JOBID        vs  ssh head tail -c +1 -- OUTPUT_FILE   (a finished job's output)
    cancel  slurmkit cancel JOBID      vs  ssh head scancel JOBID               (a held job each time, never reused)

The script brings up a local cluster (`slurmkit local up`, --computes compute nodes, default 2), bootstraps it,
submits the jobs it needs through OpenSSH, then runs each pair --runs times (default 9), alternating which goes
first, and prints the medians' ratio; it always takes the cluster down (`slurmkit local down`). Exit 1 when a ratio
is above --max-ratio (default 1.5). The machine's load average is printed before and after: on a busy machine both
sides slow down, the ratio less so.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

MAX_RATIO = 1.5


def sh(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,), timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_CONF", "SLURMKIT_CLUSTER")}
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} -> exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p


def timed(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    t0 = time.perf_counter()
    sh(argv, cwd, ok)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="runs of each command each way (default 9)")
    ap.add_argument("--computes", type=int, default=2)
    ap.add_argument("--prefix", default="jc", help="local cluster name prefix (a random suffix is added)")
    ap.add_argument("--max-ratio", type=float, default=MAX_RATIO)
    ap.add_argument("--commands", default="jobs,status,logs,cancel")
    args = ap.parse_args()

    py = sys.executable
    name = f"{args.prefix}{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        sh([py, "-m", "slurmkit", "local", "up", "-n", str(args.computes), "--name", name], cwd)
        try:
            return measure(args, py, cwd, name)
        finally:
            sh([py, "-m", "slurmkit", "local", "down", "--name", name], cwd, ok=(0, 1, 2))


def measure(args, py: str, cwd: Path, name: str) -> int:
    cfile = cwd / ".slurmkit" / "local" / name / "cluster.yaml"
    spec = yaml.safe_load(cfile.read_text())
    ssh_spec = spec["ssh"]
    head = ssh_spec["proxy_jump"]  # root@<the first head's address>: the jump host, where Slurm commands run
    ssh = ["ssh", "-i", ssh_spec["identity_file"], "-o", f"UserKnownHostsFile={ssh_spec['known_hosts']}",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", head]
    kit = [py, "-m", "slurmkit", "-c", str(cfile)]

    sh([*kit, "bootstrap"], cwd)
    shared = spec.get("shared_dir") or "/tmp"
    out = f"{shared}/jump-commands-%j.out"
    done = sh([*ssh, f"sbatch --parsable -o {out} --wrap 'echo jump-commands; seq 1 2000'"], cwd).stdout.strip()
    for _ in range(300):  # the job's output is complete once Slurm forgets it or reports it done
        state = sh([*ssh, f"squeue -h -j {done} -o %T"], cwd, ok=(0, 1)).stdout.strip()
        if state in ("", "COMPLETED"):
            break
        time.sleep(0.2)
    out_file = out.replace("%j", done)
    held = [sh([*ssh, "sbatch --parsable --hold --wrap 'sleep 600'"], cwd).stdout.strip()
            for _ in range(2 * args.runs)]

    pairs = {
        "jobs": (lambda i: [*kit, "jobs"], lambda i: [*ssh, "squeue --json"]),
        "status": (lambda i: [*kit, "status"], lambda i: [*ssh, "sinfo"]),
        "logs": (lambda i: [*kit, "logs", done], lambda i: [*ssh, f"tail -c +1 -- {out_file}"]),
        "cancel": (lambda i: [*kit, "cancel", held[2 * i]], lambda i: [*ssh, f"scancel {held[2 * i + 1]}"]),
    }
    load0 = os.getloadavg()
    print(f"local cluster {name}: 1 head, {args.computes} computes; {args.runs} runs each way, median; "
          f"load average {load0[0]:.2f} before")
    ok = True
    for command in args.commands.split(","):
        ours, theirs = pairs[command]
        mine, base = [], []
        for i in range(args.runs):
            first_ours = i % 2 == 0
            if first_ours:
                mine.append(timed(ours(i), cwd, ok=(0, 1)))  # status: 1 unless RUNNING
            base.append(timed(theirs(i), cwd))
            if not first_ours:
                mine.append(timed(ours(i), cwd, ok=(0, 1)))
        m, b = statistics.median(mine), statistics.median(base)
        ratio = m / b
        good = ratio <= args.max_ratio
        ok &= good
        print(f"{command:<7} slurmkit {m * 1000:6.0f} ms   ssh {b * 1000:6.0f} ms   ratio {ratio:4.2f} "
              f"(target <= {args.max_ratio:g}): {'OK' if good else 'MISSED'}")
    print(f"load average {os.getloadavg()[0]:.2f} after")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
