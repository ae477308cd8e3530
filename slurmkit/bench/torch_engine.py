"""The torch engine of ``slurmkit bench``: nccl-tests' sweep, timing and output, through torch.distributed.

Run one process per rank::

    torchrun --nproc_per_node 8 -m slurmkit.bench.torch_engine -b 8 -e 8G -f 2 --op all_reduce --backend nccl
    srun --ntasks-per-node 8 python -m slurmkit.bench.torch_engine -b 8 -e 8G -f 2 --backend nccl

Where it stands in for nccl-tests (``all_reduce_perf`` and friends) on a machine that has torch but no
nccl-tests build, and on CPU-only machines (``--backend gloo``, the local namespace cluster).

Rank and rendezvous
    Under torchrun: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` (env://).
    Otherwise under srun (one process per task): rank = ``SLURM_PROCID``, world = ``SLURM_NTASKS``,
    local rank = ``SLURM_LOCALID``; ``MASTER_ADDR`` from the environment, else the first host of
    ``SLURM_STEP_NODELIST`` (or ``SLURM_JOB_NODELIST``); ``MASTER_PORT`` from the environment, else 29500.
    With neither, a single rank on 127.0.0.1.

What is measured, as in nccl-tests (src/common.cu, src/<op>.cu, doc/PERFORMANCE.md)
    * sizes from ``-b`` to ``-e``, multiplied by ``-f`` (or plus ``-i`` bytes when ``-f`` is 1);
      count = size / type size, then the op's divisibility: all_gather, reduce_scatter and alltoall move
      ``count // nranks`` elements per rank, the printed size is ``(count // nranks) * nranks * typesize``
      and the printed count is the per-rank count;
    * ``-w`` warm-up iterations at the largest then the smallest size; then per size and per placement
      (out-of-place, then in-place) one untimed call, a barrier, ``-n`` calls timed as one batch (the
      device synchronised once at the end), divided by ``-n``, then averaged over ranks;
    * algbw = printed size / time (GB/s = 1e9 B/s); busbw = algbw * factor, factor 2(n-1)/n for
      all_reduce, (n-1)/n for all_gather, reduce_scatter and alltoall, 1 for broadcast;
    * ``-c N`` (N >= 1): after timing, N checks of one call each on fresh data; ``#wrong`` is the number
      of elements that differ from the expected values, summed over ranks; ``-c 0`` prints ``N/A``.

Where torch differs from NCCL, and what this engine does
    * ``all_reduce`` and ``broadcast`` exist only in place in torch.distributed. The out-of-place columns
      time the same call on the send buffer (the receive buffer is not touched); the in-place columns on
      the receive buffer. Both therefore measure the same collective on different memory.
    * in-place alltoall: as in nccl-tests, the call is timed with one buffer for input and output, and
      its result is not checked (``#wrong`` is ``N/A`` in the in-place column).
    * exact checks use small integers so that every dtype represents sums exactly; ``avg`` compares
      within the dtype's rounding.

Output, on rank 0 only (rank lines gathered from every rank), in the nccl-tests 2.17 format, so the
nccl-tests parser reads it unchanged. A device is named ``cpu`` with gloo. When a collective raises,
every rank prints nccl-tests' failure lines (``HOST: Test GLOO failure FILE:LINE '...'`` and
`` .. HOST pid PID: Test failure FILE:LINE``) and the process exits 1; it also exits 1 when
a check found wrong elements, or when ``NCCL_TESTS_MIN_BW`` is set and the average bus bandwidth is
below 90% of it (as nccl-tests does).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Mapping

PROGRAM_NAMES = {
    "all_reduce": "all_reduce_perf",
    "all_gather": "all_gather_perf",
    "reduce_scatter": "reduce_scatter_perf",
    "broadcast": "broadcast_perf",
    "alltoall": "alltoall_perf",
}

# nccl-tests type names -> (torch dtype attribute, size in bytes)
DTYPES: dict[str, tuple[str, int]] = {
    "int8": ("int8", 1),
    "char": ("int8", 1),
    "uint8": ("uint8", 1),
    "int32": ("int32", 4),
    "int": ("int32", 4),
    "int64": ("int64", 8),
    "half": ("float16", 2),
    "float16": ("float16", 2),
    "float": ("float32", 4),
    "float32": ("float32", 4),
    "double": ("float64", 8),
    "float64": ("float64", 8),
    "bfloat16": ("bfloat16", 2),
}
CANONICAL_DTYPE = {"char": "int8", "int": "int32", "float16": "half", "float32": "float", "float64": "double"}

REDOPS = ("sum", "prod", "max", "min", "avg")

# Values of the check patterns cycle through 0..PATTERN_MOD-1, so that sums stay exact in every dtype.
PATTERN_MOD = 4
# Elements generated and compared at a time by the checks (their int64 temporaries are ~40x this in bytes).
CHECK_CHUNK = 1 << 24


# --------------------------------------------------------------------------------------------------
# Pure parts: sizes, counts, bandwidths, formatting, rendezvous. Unit-tested without torch.
# --------------------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """nccl-tests' size syntax: a number with an optional K, M or G suffix (powers of 1024)."""
    value = text.strip()
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    mult = 1
    if value and value[-1].lower() in units:
        mult = units[value[-1].lower()]
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (expected e.g. 8, 1K, 64M, 8G)") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}")
    return int(number * mult)


def sweep_sizes(min_bytes: int, max_bytes: int, step_factor: int = 2, step_bytes: int = 1024**2) -> list[int]:
    """The requested sizes, as nccl-tests' TimeTest loop walks them (before rounding to the op)."""
    if min_bytes > max_bytes:
        raise ValueError(f"invalid sizes for 'minbytes' and 'maxbytes': {min_bytes} > {max_bytes}")
    if step_factor <= 1 and step_bytes <= 0:
        raise ValueError("step must grow: -f > 1 or -i > 0")
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(size)
        nxt = size * step_factor if step_factor > 1 else size + step_bytes
        if nxt == size:  # -b 0 with a factor never grows
            break
        size = nxt
    return sizes


@dataclass(frozen=True)
class Counts:
    """Element counts of one collective call, nccl-tests' getCollByteCount."""

    send: int  # elements in the send buffer
    recv: int  # elements in the receive buffer
    param: int  # the count passed to the collective; printed in the count column

    def printed_size(self, typesize: int) -> int:
        """The size column: max(send, recv) bytes."""
        return max(self.send, self.recv) * typesize


def coll_counts(op: str, size_bytes: int, typesize: int, nranks: int) -> Counts:
    """Counts for a requested size, rounded to what the op can divide (nccl-tests' per-op files)."""
    count = size_bytes // typesize
    per_rank = count // nranks
    if op in ("all_reduce", "broadcast"):
        return Counts(send=count, recv=count, param=count)
    if op == "all_gather":
        return Counts(send=per_rank, recv=per_rank * nranks, param=per_rank)
    if op == "reduce_scatter":
        return Counts(send=per_rank * nranks, recv=per_rank, param=per_rank)
    if op == "alltoall":
        return Counts(send=per_rank * nranks, recv=per_rank * nranks, param=per_rank)
    raise ValueError(f"unknown op {op!r}; valid: {', '.join(PROGRAM_NAMES)}")


def busbw_factor(op: str, nranks: int) -> float:
    """nccl-tests' bus bandwidth factor (doc/PERFORMANCE.md)."""
    if op == "all_reduce":
        return 2 * (nranks - 1) / nranks
    if op in ("all_gather", "reduce_scatter", "alltoall"):
        return (nranks - 1) / nranks
    if op == "broadcast":
        return 1.0
    raise ValueError(f"unknown op {op!r}; valid: {', '.join(PROGRAM_NAMES)}")


def bandwidths(op: str, size_bytes: int, seconds: float, nranks: int) -> tuple[float, float]:
    """(algbw, busbw) in GB/s for a call that moved the printed size in ``seconds``."""
    algbw = size_bytes / 1.0e9 / seconds if seconds > 0 else 0.0
    return algbw, algbw * busbw_factor(op, nranks)


def float_str(value: float, width: int) -> str:
    """nccl-tests' getFloatStr (src/util.cu): as many decimals as the width allows."""
    if value != value or value in (float("inf"), float("-inf")):
        return f"{value:>{width}}"
    power, val = 0, 1
    while value >= val:
        power += 1
        val *= 10
    if power < width - 2:
        return f"{value:{width}.2f}"
    if power < width - 1:
        return f"{value:{width}.1f}"
    if power < width + 1:
        return f"{value:{width}.0f}"
    if width >= 7:
        return f"{value:{width}.1e}"
    return f"{value:{width}.0e}"


def format_row_start(size: int, count: int, type_name: str, redop: str, root: int) -> str:
    return f"{size:12d}  {count:12d}  {type_name:>8}  {redop:>6}  {root:6d}"


def format_result(time_us: float, algbw: float, busbw: float, wrong: int | None) -> str:
    """One placement's columns; ``wrong`` None prints N/A (no check)."""
    head = f"  {float_str(time_us, 7)}  {float_str(algbw, 6)}  {float_str(busbw, 6)}"
    return head + ("    N/A" if wrong is None else f"  {float(wrong):6g}")


def header_lines() -> list[str]:
    """The three table header lines of nccl-tests 2.17 (writeResultHeader)."""
    e = ""
    return [
        f"# {e:>10}  {e:>12}  {e:>8}  {e:>6}  {e:>6}           out-of-place                       in-place          ",
        f"# {'size':>10}  {'count':>12}  {'type':>8}  {'redop':>6}  {'root':>6}  {'time':>7}  {'algbw':>6}  "
        f"{'busbw':>6}  {'#wrong':>6}  {'time':>7}  {'algbw':>6}  {'busbw':>6}  {'#wrong':>6} ",
        f"# {'(B)':>10}  {'(elements)':>12}  {e:>8}  {e:>6}  {e:>6}  {'(us)':>7}  {'(GB/s)':>6}  "
        f"{'(GB/s)':>6}  {e:>6}  {'(us)':>7}  {'(GB/s)':>6}  {'(GB/s)':>6}  {e:>6} ",
    ]


def rank_line(rank: int, pid: int, host: str, device: int, bus: str, name: str) -> str:
    return f"#  Rank {rank:2d} Group {0:2d} Pid {pid:6d} on {host:>10} device {device:2d} [{bus}] {name}"


def short_hostname() -> str:
    """The host name up to the first dot, as nccl-tests' getHostName."""
    return socket.gethostname().split(".")[0]


@dataclass(frozen=True)
class Rendezvous:
    """Who this process is, and where rank 0 listens."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    launcher: str  # torchrun | slurm | single


def rendezvous_from_env(env: Mapping[str, str]) -> Rendezvous:
    """Rank and rendezvous from torchrun's variables, else from srun's (see the module docstring)."""
    if "RANK" in env and "WORLD_SIZE" in env:
        return Rendezvous(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", "29500")),
            launcher="torchrun",
        )
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        addr = env.get("MASTER_ADDR")
        if not addr:
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
            if not nodelist:
                raise ValueError("under srun without MASTER_ADDR, SLURM_STEP_NODELIST or SLURM_JOB_NODELIST is needed")
            from slurmkit import hostlist

            # the first node as Slurm lists it: the one task 0 runs on
            addr = hostlist.expand(nodelist)[0]
        return Rendezvous(
            rank=int(env["SLURM_PROCID"]),
            world_size=int(env["SLURM_NTASKS"]),
            local_rank=int(env.get("SLURM_LOCALID", "0")),
            master_addr=addr,
            master_port=int(env.get("MASTER_PORT", "29500")),
            launcher="slurm",
        )
    return Rendezvous(0, 1, 0, env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", "29500")), "single")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m slurmkit.bench.torch_engine",
        description="nccl-tests-style collective sweep through torch.distributed (one process per rank).",
    )
    p.add_argument("-b", "--minbytes", type=parse_size, default=32 * 1024**2, help="smallest size (default 32M)")
    p.add_argument("-e", "--maxbytes", type=parse_size, default=32 * 1024**2, help="largest size (default 32M)")
    p.add_argument("-f", "--stepfactor", type=int, default=1, help="multiply the size by this (default 1: use -i)")
    p.add_argument("-i", "--stepbytes", type=parse_size, default=1024**2, help="add this when -f is 1 (default 1M)")
    p.add_argument("-n", "--iters", type=int, default=20, help="timed iterations per size (default 20)")
    p.add_argument("-w", "--warmup_iters", type=int, default=5, help="warm-up iterations (default 5)")
    p.add_argument("-c", "--check", type=int, default=1, help="check iterations; 0 prints N/A (default 1)")
    p.add_argument("-d", "--datatype", default="float", choices=sorted(DTYPES), help="element type (default float)")
    p.add_argument("-o", dest="redop", default="sum", choices=REDOPS, help="reduction (default sum)")
    p.add_argument("-r", "--root", type=int, default=0, help="broadcast root (default 0)")
    p.add_argument("-T", "--timeout", type=int, default=600, help="seconds before a collective times out (default 600)")
    # nccl-tests' long name of -o is --op; here --op is the collective, as in `slurmkit bench --op`.
    p.add_argument("--op", default="all_reduce", choices=list(PROGRAM_NAMES), help="collective (default all_reduce)")
    p.add_argument("--backend", default=None, choices=["gloo", "nccl"],
                   help="torch.distributed backend (default nccl with CUDA, else gloo)")
    args = p.parse_args(argv)
    if args.minbytes > args.maxbytes:
        p.error(f"invalid sizes for 'minbytes' and 'maxbytes': {args.minbytes} > {args.maxbytes}")
    if args.iters < 1 or args.warmup_iters < 0 or args.check < 0:
        p.error("-n must be >= 1, -w and -c >= 0")
    return args


# --------------------------------------------------------------------------------------------------
# The run: torch from here on.
# --------------------------------------------------------------------------------------------------

class _Bench:
    """Buffers, data, calls and checks for one collective on one process."""

    def __init__(self, args: argparse.Namespace, rank: int, nranks: int, device):
        import torch

        self.torch = torch
        self.args = args
        self.op = args.op
        self.rank, self.nranks = rank, nranks
        self.device = device
        self.dtype = getattr(torch, DTYPES[args.datatype][0])
        self.typesize = DTYPES[args.datatype][1]
        biggest = coll_counts(self.op, args.maxbytes, self.typesize, nranks)
        # as nccl-tests, both buffers hold the largest of the two (in-place calls use the receive buffer
        # for the send side too)
        elements = max(biggest.send, biggest.recv, 1)
        self.send = torch.zeros(elements, dtype=self.dtype, device=device)
        self.recv = torch.zeros(elements, dtype=self.dtype, device=device)

    # ---- data patterns (small integers: exact in every dtype) ----
    def _pattern(self, n: int, rank: int, offset: int = 0):
        torch = self.torch
        idx = torch.arange(offset, offset + n, device=self.device, dtype=torch.int64)
        if self.args.redop == "prod":
            # one rank carries 1..3, the others 1: the product is exact and does not overflow
            vals = idx % 3 + 1 if rank == 0 else torch.ones_like(idx)
        else:
            vals = (idx + rank) % PATTERN_MOD
        return vals.to(self.dtype)

    def _reduced(self, n: int, offset: int = 0):
        """The reduction over all ranks of _pattern(n, r, offset), computed without communication."""
        torch = self.torch
        idx = torch.arange(offset, offset + n, device=self.device, dtype=torch.int64)
        redop, nr, m = self.args.redop, self.nranks, PATTERN_MOD
        if redop == "prod":
            return (idx % 3 + 1).to(self.dtype)
        partial = [(idx + j) % m for j in range(min(nr, m) if redop in ("max", "min") else nr % m)]
        if redop in ("sum", "avg"):
            total = (nr // m) * (m * (m - 1) // 2) + (sum(partial) if partial else torch.zeros_like(idx))
            if redop == "avg":
                return (total.to(torch.float64) / nr).to(self.dtype)
            return total.to(self.dtype)
        if redop == "max":
            return (torch.full_like(idx, m - 1) if nr >= m else torch.stack(partial).amax(0)).to(self.dtype)
        return (torch.zeros_like(idx) if nr >= m else torch.stack(partial).amin(0)).to(self.dtype)

    def _a2a_values(self, src: int, dst: int, start: int, end: int):
        """alltoall data: element k of the block that rank src sends to rank dst is (7*src + 3*dst + k) % 16."""
        torch = self.torch
        k = torch.arange(start, end, device=self.device, dtype=torch.int64)
        return ((7 * src + 3 * dst + k) % 16).to(self.dtype)

    def _fill(self, buf, values: Callable[[int, int], object]) -> None:
        """buf[s:e] = values(s, e), a chunk at a time (the int64 temporaries stay small)."""
        for start in range(0, buf.numel(), CHECK_CHUNK):
            end = min(buf.numel(), start + CHECK_CHUNK)
            buf[start:end] = values(start, end)

    def _mismatches(self, got, want: Callable[[int, int], object]) -> int:
        torch = self.torch
        approx = self.args.redop == "avg" and self.op in ("all_reduce", "reduce_scatter")
        wrong = 0
        for start in range(0, got.numel(), CHECK_CHUNK):
            end = min(got.numel(), start + CHECK_CHUNK)
            g, w = got[start:end], want(start, end)
            if approx:
                bad = ~torch.isclose(g.double(), w.double(), rtol=1e-2, atol=1e-2)
            else:
                bad = g != w
            wrong += int(bad.sum().item())
        return wrong

    # ---- the call ----
    def call(self, counts: Counts, in_place: bool) -> None:
        import torch.distributed as dist

        op, r, c = self.op, self.rank, counts.param
        red = self._reduce_op()
        if op == "all_reduce":
            dist.all_reduce((self.recv if in_place else self.send)[: counts.send], op=red)
        elif op == "broadcast":
            dist.broadcast((self.recv if in_place else self.send)[: counts.send], src=self.args.root)
        elif op == "all_gather":
            src = self.recv[r * c:(r + 1) * c] if in_place else self.send[:c]
            _all_gather(self.recv[: counts.recv], src)
        elif op == "reduce_scatter":
            src = self.recv[: counts.send] if in_place else self.send[: counts.send]
            dst = self.recv[r * c:(r + 1) * c] if in_place else self.recv[:c]
            _reduce_scatter(dst, src, red)
        elif op == "alltoall":
            src = self.recv[: counts.send] if in_place else self.send[: counts.send]
            dist.all_to_all_single(self.recv[: counts.recv], src)

    def _reduce_op(self):
        import torch.distributed as dist

        return {"sum": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT, "max": dist.ReduceOp.MAX,
                "min": dist.ReduceOp.MIN, "avg": dist.ReduceOp.AVG}[self.args.redop]

    def checked(self, in_place: bool) -> bool:
        """Whether this placement's result is checked (not for in-place alltoall, as in nccl-tests)."""
        return self.args.check > 0 and not (self.op == "alltoall" and in_place)

    # ---- check ----
    def init_data(self, counts: Counts, in_place: bool) -> None:
        op, r, c, n = self.op, self.rank, counts.param, self.nranks
        self.recv.zero_()
        if op in ("all_reduce", "reduce_scatter"):
            buf = (self.recv if in_place else self.send)[: counts.send]
            self._fill(buf, lambda s, e: self._pattern(e - s, r, offset=s))
        elif op == "broadcast":
            buf = (self.recv if in_place else self.send)[: counts.send]
            if r == self.args.root:
                self._fill(buf, lambda s, e: self._pattern(e - s, r, offset=s))
            else:
                buf.zero_()
        elif op == "all_gather":
            buf = self.recv[r * c:(r + 1) * c] if in_place else self.send[:c]
            self._fill(buf, lambda s, e: self._pattern(e - s, r, offset=s))
        elif op == "alltoall":
            buf = (self.recv if in_place else self.send)[: counts.send]
            for dst in range(n):
                self._fill(buf[dst * c:(dst + 1) * c], lambda s, e, d=dst: self._a2a_values(r, d, s, e))

    def count_wrong(self, counts: Counts, in_place: bool) -> int:
        op, r, c, n = self.op, self.rank, counts.param, self.nranks
        if op == "all_reduce":
            got = (self.recv if in_place else self.send)[: counts.send]
            return self._mismatches(got, lambda s, e: self._reduced(e - s, offset=s))
        if op == "broadcast":
            got = (self.recv if in_place else self.send)[: counts.send]
            return self._mismatches(got, lambda s, e: self._pattern(e - s, self.args.root, offset=s))
        if op == "reduce_scatter":
            got = self.recv[r * c:(r + 1) * c] if in_place else self.recv[:c]
            return self._mismatches(got, lambda s, e: self._reduced(e - s, offset=r * c + s))
        wrong = 0
        for j in range(n):  # all_gather: block j from rank j; alltoall: block j sent by rank j to this rank
            got = self.recv[j * c:(j + 1) * c]
            if op == "all_gather":
                wrong += self._mismatches(got, lambda s, e, j=j: self._pattern(e - s, j, offset=s))
            else:
                wrong += self._mismatches(got, lambda s, e, j=j: self._a2a_values(j, r, s, e))
        return wrong


def _all_gather(out, inp) -> None:
    import torch.distributed as dist

    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    fn(out, inp)


def _reduce_scatter(out, inp, op) -> None:
    import torch.distributed as dist

    fn = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    fn(out, inp, op=op)


def _run(args: argparse.Namespace, rv: Rendezvous, out: Callable[[str], None]) -> int:
    import datetime

    import torch
    import torch.distributed as dist

    backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(rv.local_rank)
        device = torch.device("cuda", rv.local_rank)
        sync = torch.cuda.synchronize
    else:
        device = torch.device("cpu")
        sync = lambda: None  # noqa: E731 - gloo calls on CPU tensors return when done

    os.environ.setdefault("MASTER_ADDR", rv.master_addr)
    os.environ.setdefault("MASTER_PORT", str(rv.master_port))
    dist.init_process_group(
        backend, init_method="env://", rank=rv.rank, world_size=rv.world_size,
        timeout=datetime.timedelta(seconds=args.timeout),
    )
    rank, nranks = dist.get_rank(), dist.get_world_size()
    main = rank == 0
    emit = out if main else (lambda line: None)

    host = short_hostname()
    if backend == "nccl":
        props = torch.cuda.get_device_properties(rv.local_rank)
        bus = "%04x:%02x:%02x" % (getattr(props, "pci_domain_id", 0), getattr(props, "pci_bus_id", 0),
                                  getattr(props, "pci_device_id", 0))
        mine = rank_line(rank, os.getpid(), host, rv.local_rank, bus, props.name)
    else:
        mine = rank_line(rank, os.getpid(), host, rv.local_rank, "cpu", "cpu")
    lines: list[str | None] = [None] * nranks
    dist.all_gather_object(lines, mine)

    step = args.stepfactor if args.stepfactor > 1 else args.stepbytes
    emit(f"# Collective test starting: {PROGRAM_NAMES[args.op]}")
    emit(f"# nThread 1 nGpus 1 minBytes {args.minbytes} maxBytes {args.maxbytes} "
         f"step: {step}({'factor' if args.stepfactor > 1 else 'bytes'}) warmup iters: {args.warmup_iters} "
         f"iters: {args.iters} agg iters: 1 validation: {args.check} graph: 0")
    emit("#")
    emit("# Using devices")
    for line in lines:
        emit(str(line))
    emit("#")
    for line in header_lines():
        emit(line)

    bench = _Bench(args, rank, nranks, device)
    type_name = CANONICAL_DTYPE.get(args.datatype, args.datatype)
    redop = args.redop if args.op in ("all_reduce", "reduce_scatter") else "none"
    root = args.root if args.op == "broadcast" else -1

    def average_over_ranks(value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t.item()) / nranks

    def sum_over_ranks(value: int) -> int:
        t = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(t)
        return int(t.item())

    # warm-up at the largest, then the smallest size, out of place (TimeTest)
    for size in (args.maxbytes, args.minbytes):
        counts = coll_counts(args.op, size, bench.typesize, nranks)
        for _ in range(args.warmup_iters):
            bench.call(counts, in_place=False)
        sync()

    local_errors, bw_sum, bw_count = 0, 0.0, 0
    for size in sweep_sizes(args.minbytes, args.maxbytes, args.stepfactor, args.stepbytes):
        counts = coll_counts(args.op, size, bench.typesize, nranks)
        row = format_row_start(counts.printed_size(bench.typesize), counts.param, type_name, redop, root)
        for in_place in (False, True):
            if args.check:
                bench.init_data(counts, in_place)
            bench.call(counts, in_place)
            sync()
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(args.iters):
                bench.call(counts, in_place)
            sync()
            seconds = average_over_ranks((time.perf_counter() - t0) / args.iters)
            algbw, busbw = bandwidths(args.op, counts.printed_size(bench.typesize), seconds, nranks)
            wrong: int | None = None
            if bench.checked(in_place):
                wrong = 0
                for _ in range(args.check):
                    bench.init_data(counts, in_place)
                    bench.call(counts, in_place)
                    sync()
                    mine_wrong = bench.count_wrong(counts, in_place)
                    local_errors += 1 if mine_wrong else 0
                    wrong = sum_over_ranks(mine_wrong)
                    if wrong:
                        break
            row += format_result(seconds * 1e6, algbw, busbw, wrong)
            bw_sum += busbw
            bw_count += 1
        emit(row)

    errors = sum_over_ranks(local_errors)
    avg_bw = bw_sum / bw_count if bw_count else 0.0
    min_bw_env = os.environ.get("NCCL_TESTS_MIN_BW")
    min_bw = float(min_bw_env) if min_bw_env else -1.0
    bw_word = "" if min_bw == -1 else ("FAILED" if avg_bw < min_bw * 0.9 else "OK")
    emit(f"# {'Out of bounds values':<20} : {errors} {'FAILED' if errors else 'OK'}")
    emit(f"# {'Avg bus bandwidth':<20} : {avg_bw:g} {bw_word}")
    emit("#")
    emit(f"# Collective test concluded: {PROGRAM_NAMES[args.op]}")
    emit("#")
    emit("")
    dist.barrier()
    dist.destroy_process_group()
    return 1 if errors or (min_bw != -1 and avg_bw < min_bw * 0.9) else 0


def _failure_lines(exc: BaseException, backend: str) -> list[str]:
    """nccl-tests' failure stanza (NCCLCHECK then TESTCHECK in src/common.h), for this file."""
    here = os.path.abspath(__file__)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == here]
    line = frames[-1].lineno if frames else 0
    where = f"{os.path.basename(here)}:{line}"
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    host = short_hostname()
    return [
        f"{host}: Test {backend.upper()} failure {where} '{message}'",
        f" .. {host} pid {os.getpid()}: Test failure {where}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    try:
        rv = rendezvous_from_env(os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        return _run(args, rv, out)
    except Exception as exc:  # a collective (or the rendezvous) raised: report it the nccl-tests way
        import torch

        backend = args.backend or ("nccl" if torch.cuda.is_available() else "gloo")
        for line in _failure_lines(exc, backend):
            print(line, flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # the process group may be half torn down; do not wait on its destructor
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
