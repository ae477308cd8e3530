"""`slurmkit bench`: acceptance runs and their results. Thin: the work is in slurmkit.bench."""

from __future__ import annotations

import json

import click

FORMATS = ("table", "csv", "json", "parquet")


@click.group("bench")
def bench() -> None:
    """Acceptance runs: NCCL all-reduce sweeps, parse, verdict, report."""


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

    Exit codes: 0 every run passed, 1 a run failed (a test failure, a cut-off or unreadable row, wrong
    elements, no rows), 2 a log could not be read.
    """
    from slurmkit.bench.parse import parse_file, runs_to_frame, runs_to_json

    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet needs -o FILE")
    runs = [run for path in logs for run in parse_file(path)]

    if fmt == "parquet":
        runs_to_frame(runs).to_parquet(output, index=False)
    else:
        if fmt == "csv":
            text = runs_to_frame(runs).to_csv(index=False)
        elif fmt == "json":
            text = json.dumps(runs_to_json(runs), indent=2) + "\n"
        else:
            text = format_table(runs)
        if output is None:
            click.echo(text, nl=False)
        else:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)

    # Problems go to stderr so that csv and json on stdout stay machine-readable.
    found = {path: False for path in logs}
    failed = False
    for run in runs:
        found[run.source] = True
        if run.failed:
            failed = True
            if fmt != "table" or output is not None:
                click.echo(f"{run.source}: run {run.run} failed: {_reason(run)}", err=True)
    for path, any_run in found.items():
        if not any_run:
            failed = True
            click.echo(f"{path}: no nccl-tests output found", err=True)
    if failed:
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
