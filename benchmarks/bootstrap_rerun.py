"""A bootstrap with nothing to change against the first one, on the same local cluster, in the same run.

For each size (default 2 and 16 compute nodes), ``--reps`` times: `slurmkit local up`, `bootstrap --json` (the
first run: every file, key and daemon), `bootstrap --json` again (nothing to change), `local down`. The figure
is bootstrap's own "seconds" (render, connections, every host's steps, handlers, verification); the whole
command's wall time (Python start-up and imports included) is printed beside it, for information.

Target (issue 20): second/first <= 0.5 at every size, the median over the reps. Exits 1 when a size misses it
(or a run fails or changes something the second time), 0 otherwise.

    .venv/bin/python benchmarks/bootstrap_rerun.py [--sizes 2,16] [--reps 3] [--name-prefix rr]

Needs root on Linux (the local cluster). Every cluster it brings up is brought down again, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.5


def slurmkit(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slurmkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def bootstrap(file: Path, cwd: Path) -> tuple[dict, float]:
    """One `bootstrap --json`: its report and the command's wall time. Raises when it fails."""
    t = time.monotonic()
    p = slurmkit("-c", str(file), "bootstrap", "--json", cwd=cwd)
    wall = time.monotonic() - t
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"bootstrap printed no report (exit {p.returncode}):\n{p.stdout}\n{p.stderr}") from None
    if p.returncode != 0 or out.get("failed_hosts"):
        raise SystemExit(f"bootstrap failed on {out.get('failed_hosts')}:\n{p.stdout}\n{p.stderr}")
    return out, wall


def one(size: int, name: str, workdir: Path) -> dict:
    """First and second run on a fresh cluster of ``size`` compute nodes."""
    file = workdir / "cluster.yaml"
    p = slurmkit("local", "up", "-n", str(size), "--name", name, "-o", str(file), cwd=workdir)
    if p.returncode != 0:
        raise SystemExit(f"local up -n {size} --name {name} failed:\n{p.stdout}\n{p.stderr}")
    try:
        first, first_wall = bootstrap(file, workdir)
        second, second_wall = bootstrap(file, workdir)
    finally:
        slurmkit("local", "down", "--name", name, cwd=workdir)
    if second["changed"] != 0 or second["actions"]:
        raise SystemExit(f"the second run changed {second['changed']} thing(s), actions {second['actions']}")
    return {"first": first["seconds"], "second": second["seconds"], "first_wall": first_wall,
            "second_wall": second_wall, "first_changed": first["changed"]}


def load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2,16", help="compute node counts, comma-separated (default 2,16)")
    ap.add_argument("--reps", type=int, default=3, help="fresh clusters per size; the median ratio counts (default 3)")
    ap.add_argument("--name-prefix", default="rr", help="local cluster names: PREFIX<size> (default rr)")
    args = ap.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    missed = False
    print(f"bootstrap re-run vs first run (target second/first <= {TARGET:g}); load {load():.1f} on "
          f"{os.cpu_count()} CPUs at start")
    for size in sizes:
        runs = []
        for rep in range(args.reps):
            with tempfile.TemporaryDirectory(prefix=f"sk-rerun-{size}-") as tmp:
                r = one(size, f"{args.name_prefix}{size}", Path(tmp))
            r["ratio"] = r["second"] / r["first"]
            runs.append(r)
            print(f"  {size:>3} computes, rep {rep + 1}: first {r['first']:.2f} s ({r['first_changed']} changes), "
                  f"second {r['second']:.2f} s, ratio {r['ratio']:.2f}; whole command {r['first_wall']:.2f} / "
                  f"{r['second_wall']:.2f} s = {r['second_wall'] / r['first_wall']:.2f}; load {load():.1f}",
                  flush=True)
        ratio = statistics.median(r["ratio"] for r in runs)
        ok = ratio <= TARGET
        missed |= not ok
        print(f"T2/T1 at {size:>3} computes: {ratio:.2f} (median of {len(runs)}; target <= {TARGET:g})  "
              f"{'OK' if ok else 'MISSED'}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
