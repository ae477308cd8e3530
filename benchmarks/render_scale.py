"""`slurmkit render` of a 512-node cluster (a 4096-GPU 1CC-like layout with topology) against an 8-node one,
both as the real CLI in fresh processes, and in-process rendering alone. Target: the 512-node CLI run under 1 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 7
CLUSTER = """\
cluster: scale
ssh: {{user: ubuntu}}
heads: head-[1-3]
nodes:
  - names: node-[1-{n}]
    gpus: {{type: h100, count: 8}}
    sockets: 2
    cores_per_socket: 56
    threads_per_core: 2
    memory_mb: 2000000
    rails: 8
partitions:
  - {{name: gpu, default: true}}
topology: {{leaf_size: {leaf}}}
"""


def cli_time(path: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slurmkit", "-c", str(path), "render", "-o", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    from slurmkit.cluster import load_cluster
    from slurmkit.render import render_cluster

    with tempfile.TemporaryDirectory() as d:
        small, big = Path(d, "small.yaml"), Path(d, "big.yaml")
        small.write_text(CLUSTER.format(n=8, leaf=4))
        big.write_text(CLUSTER.format(n=512, leaf=32))
        cli_time(big, Path(d, "warm"))
        ts, tb = [], []
        for _ in range(RUNS):
            ts.append(cli_time(small, Path(d, "o1")))
            tb.append(cli_time(big, Path(d, "o2")))
        s, b = statistics.median(ts), statistics.median(tb)
        ins = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            render_cluster(load_cluster(big))
            ins.append(time.perf_counter() - t0)
    print(f"render CLI   8 nodes  median {s * 1000:7.1f} ms")
    print(f"render CLI 512 nodes  median {b * 1000:7.1f} ms   ratio 512/8 = {b / s:.2f}x")
    print(f"in-process 512 nodes  median {statistics.median(ins) * 1000:7.1f} ms")
    ok = b < 1.0
    print(f"512-node render under 1 s: {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
