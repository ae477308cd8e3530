"""`slurmkit bench parse` throughput, as a whole process and as `parse_text` alone, on a large log of real fixtures.

Target (issue 20): the whole command (`slurmkit bench parse BIG.log --format csv|parquet|json -o FILE`: start-up,
imports, parse, table, write) at >= 50 MB/s. The log is every file of tests/fixtures/nccl-tests/ (real captured
outputs: srun labels, NCCL INFO lines, rank headers, old formats, failed runs) concatenated over and over, to about
--mb MB. The baseline, measured in the same run on the same file: a process of the same interpreter that reads the
file and splits it into lines (`python -c "open(F).read().split('\\n')"`). Each figure is printed as MB/s and as a
ratio of its time to the baseline's; the verdict is the ratio, so that machine load moves both sides: the target
is 50 MB/s at the baseline's speed on this project's machine kind, idle, where the baseline reads --baseline-mbps
MB/s (measured: 150-340 MB/s as a process on a 40 MB log at load averages 3 to 1.4 on 2 cores; 250 taken), i.e.
a ratio of at most baseline-mbps / 50 (5x).
Times are the median of --repeat runs each. `parse_text` alone (in this process, against an in-process split of
the text) is printed too: it bounds what the whole command can do.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slurmkit.bench.parse import parse_text

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "nccl-tests"
TARGET_MBPS = 50.0
BASELINE_MBPS = 250.0  # the baseline process on this machine kind (see the docstring)
FORMATS = ("csv", "parquet", "json")


def big_log(megabytes: float) -> str:
    parts = []
    for path in sorted(FIXTURES.glob("*.txt")):
        text = path.read_text()
        parts.append(text if text.endswith("\n") else text + "\n")
    one = "".join(parts)
    return one * max(1, round(megabytes * 1e6 / len(one)))


def median_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def trivial_pass(text: str) -> int:
    n = 0
    for line in text.split("\n"):
        if line.strip():
            n += 1
    return n


def run(argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} -> exit {p.returncode}\n{p.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=40.0, help="size of the log (default 40)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-mbps", type=float, default=BASELINE_MBPS,
                    help=f"the baseline's speed where the target was set (default {BASELINE_MBPS:g})")
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args()
    max_ratio = args.baseline_mbps / TARGET_MBPS

    text = big_log(args.mb)
    mb = len(text.encode()) / 1e6
    runs = parse_text(text, "big.log")
    rows = sum(len(r.rows) for r in runs)
    failed = sum(r.failed for r in runs)
    print(f"log: {mb:.1f} MB, {text.count(chr(10))} lines, {len(runs)} runs ({failed} failed), {rows} rows "
          f"({len(list(FIXTURES.glob('*.txt')))} real fixtures, concatenated); median of {args.repeat}")

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "big.log"
        log.write_text(text)
        py = sys.executable
        base = median_of(args.repeat, lambda: run([py, "-c", f"open({str(log)!r}).read().split('\\n')"]))
        print(f"baseline (a process reading and splitting the file)  {mb / base:7.1f} MB/s")
        for fmt in args.formats.split(","):
            out = Path(tmp) / f"out.{fmt}"
            # exit 1: the fixtures hold failed runs (nccl-16), which the command reports
            t = median_of(args.repeat, lambda: run([py, "-m", "slurmkit", "bench", "parse", str(log), "--format", fmt,
                                                     "-o", str(out)], ok=(0, 1)))
            ratio = t / base
            good = ratio <= max_ratio
            ok &= good
            print(f"slurmkit bench parse --format {fmt:<8} {mb / t:7.1f} MB/s  {ratio:5.2f}x the baseline's time "
                  f"(target <= {max_ratio:.2f}x, 50 MB/s at a {args.baseline_mbps:g} MB/s baseline): "
                  f"{'OK' if good else 'MISSED'}")

    # parse_text alone, in this process, against an in-process pass over the lines
    inner = median_of(args.repeat, lambda: trivial_pass(text))
    parse = median_of(args.repeat, lambda: parse_text(text, "big.log"))
    print(f"in process: split + strip each line {mb / inner:7.1f} MB/s; parse_text {mb / parse:7.1f} MB/s "
          f"({parse / inner:.1f}x the split's time)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
