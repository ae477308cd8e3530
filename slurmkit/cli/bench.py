"""`slurmkit bench`: acceptance runs and their results. Thin: the work is in slurmkit.bench."""

from __future__ import annotations

import io
import json

import click

FORMATS = ("table", "csv", "json", "parquet")
#: `bench parse` names at most this many failed runs on stderr, then how many more failed.
MAX_FAILED_SHOWN = 10


_RUN_HELP = """Acceptance runs: NCCL sweeps through Slurm, parse, verdict, culprits, report.

\b
Without a subcommand, run a bench:
  slurmkit bench -N 2 --profile h100-ndr-8rail                 # nccl-tests on 2 nodes
  slurmkit bench --engine torch --mode cluster -N 2 --profile local
  slurmkit bench --engine torch --mode pairs --profile local   # find a slow node or link
\b
Modes:
  cluster  one job on N nodes (-N, default all compute nodes; or --nodes)
  nodes    every node alone, all jobs at once; nodes below the median by > 10% are named
  pairs    rounds of disjoint 2-node jobs (each round at once), then narrowing rounds, until the slow node
           or link is named; the number of rounds is reported. Needs --profile or --expect (the threshold,
           compared with each pair's out-of-place busbw at the largest size; with a profile's baseline, each
           pair's busbw over its own job's baseline at the largest size)
\b
Same-run baseline: a profile with `baseline:` (the `local` profile) runs, in every multi-node job and just
before the measured step, the same bench with the same ranks on the job's first node (no network between
nodes), and judges the measured busbw as a ratio to it ("busbw 0.22 GB/s = 0.61 of the same-run baseline
0.36 GB/s, needs >= 0.3"). --expect replaces the profile's rule with an absolute one (no baseline step).
\b
--drain (pairs mode): the node it names is drained through scontrol on the head, with the evidence as its
reason ("slurmkit:bench busbw 0.01 < 0.3 of the same-run baseline", or "... < 40 GB/s"). A node an earlier
--drain bench drained is resumed for the re-check just before the next --drain bench over it, stays in service
when that bench passes and is drained again when it does not. A drain whose reason is not slurmkit:bench (an
admin's, `slurmkit health`'s) is never touched.
\b
Engines:
  nccl-tests  DIR/<op>_perf -b -e -f -g 1 -c -n -w (built with MPI=1), one rank per GPU (--gpus-per-node,
              default the cluster file's or the discovered count), under srun (--mpi, default pmix) or
              mpirun over the job's hostfile, with the NCCL variables of the cached discovery facts.
              NOTE: this engine is tested by script generation and by parsing real nccl-tests logs only
              (no GPU where slurmkit is developed).
  torch       PYTHON -m slurmkit.bench.torch_engine (same flags, nccl-tests output) under srun: one task per
              GPU with NCCL, or one task per node with gloo on CPU nodes. The nodes need torch and slurmkit
              installed for PYTHON (--python: default this interpreter on a `profile: local` cluster, whose
              nodes share this filesystem, else python3).
\b
Sweep defaults: GPUs -b 8 -e 8G -f 2 -n 20 -w 5; CPU (torch, gloo) -b 1M -e 64M -f 4 -n 5 -w 2; -c 1.
\b
Results: one directory per run under -o (default .slurmkit/bench beside the cluster file): logs/,
rows.parquet, meta.json, report.html. Progress goes to stderr; the summary and the report path to stdout
(--json: one JSON object instead).
\b
Exit codes: 0 pass, 1 fail (the culprit named when one was found), 2 could not run.
"""


@click.group("bench", invoke_without_command=True, help=_RUN_HELP)
@click.option("--engine", type=click.Choice(["nccl-tests", "torch"]), default="nccl-tests", show_default=True,
              help="Benchmark program (see above).")
@click.option("--op", default="all_reduce", show_default=True,
              type=click.Choice(["all_reduce", "all_gather", "reduce_scatter", "broadcast", "alltoall"]),
              help="Collective.")
@click.option("--mode", type=click.Choice(["cluster", "nodes", "pairs"]), default="cluster", show_default=True,
              help="What to run (see above).")
@click.option("-N", "--nnodes", type=click.IntRange(1), default=None,
              help="cluster mode: number of nodes (default: every compute node).")
@click.option("--nodes", "nodes_", metavar="HOSTS", default=None,
              help="Hostlist of the nodes to use (e.g. node-[1-4]); default: the cluster file's compute nodes.")
@click.option("-b", "--minbytes", default=None, help="Smallest size (nccl-tests syntax: 8, 1K, 64M, 8G).")
@click.option("-e", "--maxbytes", default=None, help="Largest size.")
@click.option("-f", "--stepfactor", type=click.IntRange(2), default=None, help="Size multiplier between steps.")
@click.option("-n", "--iters", type=click.IntRange(1), default=None, help="Timed iterations per size.")
@click.option("-w", "--warmup", type=click.IntRange(0), default=None, help="Warm-up iterations.")
@click.option("-c", "--check", type=click.IntRange(0, 1), default=1, show_default=True,
              help="Check results (#wrong); 0 skips the check.")
@click.option("--profile", default=None, metavar="NAME",
              help="Expectation from slurmkit/bench/profiles.yaml (h100-nvlink-8gpu, h100-ndr-8rail, ndr-1rail, "
                   "local).")
@click.option("--expect", type=float, default=None, metavar="GBPS",
              help="Expected busbw in GB/s (overrides the profile's); judged at the largest size without a profile.")
@click.option("--min-size", "min_size", default=None, metavar="SIZE",
              help="Judge the rows at or above this size (nccl-tests syntax; overrides the profile's).")
@click.option("--nccl-tests-dir", default="/opt/nccl-tests/build", show_default=True, metavar="DIR",
              help="Directory of the nccl-tests binaries on the nodes.")
@click.option("--launcher", type=click.Choice(["srun", "mpirun"]), default="srun", show_default=True,
              help="nccl-tests: srun (PMIx) or mpirun over the job's hostfile. torch: srun only.")
@click.option("--mpi", default="pmix", show_default=True,
              help="srun's MPI plugin for nccl-tests (see `srun --mpi=list` on the cluster).")
@click.option("--gpus-per-node", type=click.IntRange(0), default=None,
              help="GPUs (ranks) per node. Default: the cluster file's GPU count; 0 on a local cluster (its GPUs "
                   "are simulated). 0 with torch: gloo, one rank per node.")
@click.option("--partition", "-p", default=None, help="Slurm partition (default: the cluster's default).")
@click.option("--python", "python", default=None, metavar="PATH",
              help="torch: the interpreter on the nodes (default: this one on a local cluster, else python3).")
@click.option("--time", "time_", default="30", show_default=True, help="Time limit of each job (Slurm syntax).")
@click.option("-o", "--output", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Results directory (default: .slurmkit/bench beside the cluster file).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--drain", is_flag=True,
              help="pairs mode: drain the node it names (reason `slurmkit:bench busbw ...`); resume a node an "
                   "earlier --drain bench drained once a bench over it passes (never another reason's drain).")
@click.pass_context
def bench(ctx: click.Context, **options) -> None:
    if ctx.invoked_subcommand is not None:
        return
    run_command(ctx, **options)


def _gpus_per_node(cluster, path, candidates) -> int:
    """GPUs of the first node to run on: declared in the cluster file, else from the cached facts; 0 on a local
    cluster (its GPUs are simulated: no CUDA behind them)."""
    from slurmkit.hardware import hardware_source

    if cluster.profile == "local":
        return 0
    name = candidates[0] if candidates else cluster.compute_names[0]
    hw = hardware_source(cluster, path)(name, cluster.group_of(name))
    return hw.gpu_total if hw is not None else 0  # every GPU type of the node


def run_command(ctx, engine, op, mode, nnodes, nodes_, minbytes, maxbytes, stepfactor, iters, warmup, check,
                profile, expect, min_size, nccl_tests_dir, launcher, mpi, gpus_per_node, partition, python, time_,
                out_dir, as_json, drain=False) -> None:
    """The bench run: build the spec from the options and the cluster file, run it, print, exit."""
    import sys
    from pathlib import Path

    from rich.console import Console

    from slurmkit import hostlist
    from slurmkit.bench.run import BenchCouldNotRun, BenchSpec, nccl_env_from_facts, run_bench
    from slurmkit.bench.verdict import get_profile
    from slurmkit.cli.config import cluster_path, load
    from slurmkit.cli.jobs import _shared_dir, backend_for
    from slurmkit.errors import SlurmkitError

    if profile:
        get_profile(profile)  # an unknown name fails now (exit 2), before any job
    if min_size is not None:
        import argparse

        from slurmkit.bench.torch_engine import parse_size

        try:
            min_size = parse_size(min_size)
        except argparse.ArgumentTypeError as exc:
            raise click.BadParameter(str(exc), param_hint="--min-size") from None
    if engine == "torch" and launcher != "srun":
        raise click.UsageError("--engine torch runs under srun only")
    if drain and mode != "pairs":
        raise click.UsageError("--drain needs --mode pairs (the mode that names a node)")
    err = Console(stderr=True, log_path=False)
    drains = None
    try:
        cluster = load(ctx)
        path = cluster_path(ctx).expanduser().resolve()
        candidates = hostlist.expand(nodes_) if nodes_ else list(cluster.compute_names)
        if gpus_per_node is None:
            gpus_per_node = _gpus_per_node(cluster, path, candidates)
        if python is None:
            python = sys.executable if cluster.profile == "local" else "python3"
        nccl_env = {}
        if engine == "nccl-tests" or gpus_per_node:
            from slurmkit.discovery import cached_records

            nccl_env, note = nccl_env_from_facts(cluster, cached_records(cluster, path, candidates), candidates)
            if note:
                err.print(f"warning: {note}", highlight=False)
        spec = BenchSpec(engine=engine, op=op, mode=mode, nodes=tuple(hostlist.expand(nodes_)) if nodes_ else (),
                         nnodes=nnodes, min_bytes=minbytes, max_bytes=maxbytes, step_factor=stepfactor, iters=iters,
                         warmup=warmup, check=check, gpus_per_node=gpus_per_node, nccl_tests_dir=nccl_tests_dir,
                         launcher=launcher, mpi=mpi, partition=partition, python=python, nccl_env=nccl_env,
                         chdir=_shared_dir(ctx), time_limit=time_)
        from slurmkit.paths import StateDir

        out = Path(out_dir) if out_dir else StateDir.of(path).bench_dir
        backend = backend_for(ctx)
        with err.status(f"bench: {engine} {op}, {mode} mode") as status:
            def progress(message: str) -> None:
                err.log(message)
                status.update(f"bench: {message}")

            def bench_now():
                return run_bench(spec, backend, out, candidates=candidates, profile=profile, expect_gbps=expect,
                                 min_size_bytes=min_size, cluster=cluster.cluster, progress=progress)

            if drain:
                result, drains = _with_drain(cluster, path, list(spec.nodes or candidates), bench_now, progress)
            else:
                result = bench_now()
    except BenchCouldNotRun:
        raise
    except SlurmkitError as exc:
        if exc.exit_code == 2:
            raise
        raise BenchCouldNotRun(f"bench could not run: {exc}") from exc
    if as_json:
        click.echo(json.dumps({**result.to_dict(), **({"drain": drains} if drains is not None else {})}, indent=2,
                              default=str))
    else:
        click.echo(result.summary, nl=False)
        if result.rounds is not None:
            click.echo(f"  pairs: {result.rounds} round(s)")
        for node, reason in (drains or {}).get("drained", {}).items():
            click.echo(f"  drained {node}: {reason}")
        for node in (drains or {}).get("resumed", []):
            click.echo(f"  resumed {node} (the bench over it passed)")
        for line in (drains or {}).get("errors", []):
            click.echo(f"  drain: {line}")
        click.echo(f"  results: {result.run_dir}")
    ctx.exit(result.exit_code)


def _with_drain(cluster, path, nodes, bench_now, progress):
    """Run ``bench_now`` with ``--drain`` (the rules: :mod:`slurmkit.bench.drain`): resume the nodes a bench drained
    for the re-check, run, then drain the node the bench names (and a re-checked node again unless it passed),
    through :mod:`slurmkit.slurm.commands` on the first reachable head. Returns (result, the drain report)."""
    from slurmkit.bench.drain import after_bench, to_recheck
    from slurmkit.remote import HeadRunner
    from slurmkit.slurm import commands

    head = HeadRunner(cluster, path.parent)
    report: dict = {"drained": {}, "resumed": [], "rechecked": [], "errors": []}
    try:
        before = {n.name: (bool(n.is_drained or n.is_down), n.reason or None)
                  for n in commands.show_nodes(head)}
        rechecked = to_recheck(nodes, before)
        for node in rechecked:
            if commands.resume(head, [node]):
                report["rechecked"].append(node)
                progress(f"--drain: {node} resumed for the re-check (was: {rechecked[node]})")
            else:
                report["errors"].append(f"Slurm refused to resume {node} for the re-check")
        rechecked = {n: r for n, r in rechecked.items() if n in report["rechecked"]}
        result = None
        try:
            result = bench_now()
        finally:
            if result is None:  # the bench could not run: put the re-checked nodes back as they were
                for node, reason in rechecked.items():
                    commands.drain(head, [node], reason)
        for act in after_bench(result.culprits, result.passed, rechecked, before):
            try:
                if act.action == "drain":
                    commands.drain(head, [act.node], act.reason)
                    report["drained"][act.node] = act.reason
                    progress(f"--drain: drained {act.node}: {act.reason}")
                else:
                    report["resumed"].append(act.node)
                    progress(f"--drain: {act.node} passed: kept in service")
            except Exception as exc:
                report["errors"].append(f"{act.action} {act.node} failed: {exc}")
    finally:
        head.close()
    return result, report


@bench.command("parse")
@click.argument("logs", nargs=-1, required=True, type=click.Path())
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output form."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here, not to stdout.")
@click.pass_context
def parse(ctx: click.Context, logs: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Read nccl-tests output (LOG...) into one table of rows.

    \b
    Columns (csv, parquet): source, run, collective, nranks, size_bytes, count, dtype, redop, root,
      oop_time_us, oop_algbw_gbps, oop_busbw_gbps, oop_wrong, oop_error,
      ip_time_us, ip_algbw_gbps, ip_busbw_gbps, ip_wrong, ip_error
    json: {"runs": [{"source", "run", "collective", "nranks", "avg_busbw_gbps", "errors", "rows"}]}

    With csv, json, parquet or -o, failed runs are named on stderr: the first 10, then how many more.

    Exit codes: 0 every run passed, 1 a run failed (a test failure, a cut-off or unreadable row, wrong
    elements, no rows), 2 a log could not be read.
    """
    from slurmkit.bench.parse import parse_file, runs_to_json_text, write_csv, write_parquet

    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs -o FILE")
    runs = [run for path in logs for run in parse_file(path)]

    # Each form is written column-wise, without pandas (see slurmkit.bench.parse: the same text and file).
    if fmt == "parquet":
        write_parquet(runs, output)
    elif fmt == "csv" and output is not None:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            write_csv(runs, fh)
    else:
        if fmt == "csv":
            buf = io.StringIO()
            write_csv(runs, buf)
            text = buf.getvalue()
        elif fmt == "json":
            text = runs_to_json_text(runs)
        else:
            text = format_table(runs)
        if output is None:
            click.echo(text, nl=False)
        else:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)

    # Problems go to stderr so that csv and json on stdout stay machine-readable: the first few failed runs, then
    # how many more (a log of a thousand failed runs is not a thousand lines).
    found = {path: False for path in logs}
    failed = [run for run in runs if run.failed]
    for run in runs:
        found[run.source] = True
    if fmt != "table" or output is not None:
        for run in failed[:MAX_FAILED_SHOWN]:
            click.echo(f"{run.source}: run {run.run} failed: {_reason(run)}", err=True)
        if len(failed) > MAX_FAILED_SHOWN:
            more = len(failed) - MAX_FAILED_SHOWN
            click.echo(f"... and {more} more failed run{'s' if more > 1 else ''} ({len(failed)} of {len(runs)} "
                       "runs failed)", err=True)
    missing = [path for path, any_run in found.items() if not any_run]
    for path in missing:
        click.echo(f"{path}: no nccl-tests output found", err=True)
    if failed or missing:
        ctx.exit(1)


def _reason(run) -> str:
    if run.errors:
        first = run.errors[0]
        more = f" (+{len(run.errors) - 1} more)" if len(run.errors) > 1 else ""
        return f"line {first.line}: {first.message}{more}"
    if not run.rows:
        return "no result rows"
    return "wrong elements reported"


def _num(value, fmt: str = "{:.10g}") -> str:
    return "-" if value is None else fmt.format(value)


def format_table(runs) -> str:
    """A human-readable listing: one block per run, its rows, then its errors."""
    lines: list[str] = []
    head = (
        f"{'size':>12} {'count':>12} {'type':>8} {'redop':>6} {'root':>5}"
        f" {'oop us':>10} {'algbw':>7} {'busbw':>7} {'wrong':>6} {'error':>6}"
        f" {'ip us':>10} {'algbw':>7} {'busbw':>7} {'wrong':>6} {'error':>6}"
    )
    for run in runs:
        where = f"{run.nranks} ranks" if run.nranks is not None else "ranks unknown"
        if run.hosts:
            where += f" on {len(run.hosts)} host(s)"
        avg = f"avg busbw {run.avg_busbw_gbps:g} GB/s" if run.avg_busbw_gbps is not None else "no avg busbw"
        verdict = "FAILED" if run.failed else "ok"
        lines.append(f"== {run.source} run {run.run}: {run.collective or '?'}, {where}, {avg}, {verdict}")
        if run.rows:
            lines.append(head)
        for r in run.rows:
            lines.append(
                f"{r.size_bytes:>12} {_num(r.count):>12} {r.dtype or '-':>8} {r.redop or '-':>6} {_num(r.root):>5}"
                f" {_num(r.oop_time_us):>10} {_num(r.oop_algbw_gbps, '{:.2f}'):>7}"
                f" {_num(r.oop_busbw_gbps, '{:.2f}'):>7} {_num(r.oop_wrong):>6} {_num(r.oop_error):>6}"
                f" {_num(r.ip_time_us):>10} {_num(r.ip_algbw_gbps, '{:.2f}'):>7}"
                f" {_num(r.ip_busbw_gbps, '{:.2f}'):>7} {_num(r.ip_wrong):>6} {_num(r.ip_error):>6}"
            )
        for issue in run.errors:
            lines.append(f"   error: line {issue.line}: {issue.message}")
        if not run.rows and not run.errors:
            lines.append("   error: no result rows")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")



@bench.command("report")
@click.argument("directory", type=click.Path(file_okay=False))
def report(directory: str) -> None:
    """Write report.html and its plots (plots/*.png) for saved bench results, and print a summary.

    DIRECTORY is one run directory (holding meta.json, rows.parquet and logs/, as `slurmkit bench -o DIR`
    writes them) or a results directory of several runs: then the latest run is judged at the top and the
    trend across runs is added. The page is self-contained (plots embedded) and is written into DIRECTORY.

    Exit codes: 0 the report was written, 2 DIRECTORY holds no saved results.
    """
    from slurmkit.bench.report import build_report

    result = build_report(directory)
    click.echo(result.text, nl=False)
