"""CLI start-up cost: `slurmkit --help` wall time against `python -c pass`, same interpreter, same run.

Target (foundation issue): at most 150 ms more than the bare interpreter. Prints medians of N runs each,
interleaved so that machine noise hits both alike.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15
TARGET_EXTRA_MS = 150


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    base_cmd = [sys.executable, "-c", "pass"]
    cli_cmd = [sys.executable, "-m", "slurmkit", "--help"]
    timed(cli_cmd)  # warm the page cache and .pyc files
    base, cli = [], []
    for _ in range(RUNS):
        base.append(timed(base_cmd))
        cli.append(timed(cli_cmd))
    b, c = statistics.median(base), statistics.median(cli)
    extra_ms = (c - b) * 1000
    print(f"python -c pass      median {b * 1000:7.1f} ms  ({RUNS} runs)")
    print(f"slurmkit --help     median {c * 1000:7.1f} ms  ({RUNS} runs)")
    print(f"ratio help/baseline {c / b:7.2f}x;  extra {extra_ms:.1f} ms (target <= {TARGET_EXTRA_MS} ms): "
          f"{'OK' if extra_ms <= TARGET_EXTRA_MS else 'MISSED'}")
    return 0 if extra_ms <= TARGET_EXTRA_MS else 1


if __name__ == "__main__":
    sys.exit(main())
