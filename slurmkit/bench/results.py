"""The results store of ``slurmkit bench``: one directory per bench run, readable back as pandas.

Layout of a run directory, ``<out>/<UTC time>-<mode>-<engine>/`` (e.g. ``20250301T120000Z-pairs-torch``)::

    logs/<name>.log   the raw stdout of every job step, as captured (a job's same-run baseline step, when it
                      ran one, in ``logs/<name>-baseline.log``)
    rows.parquet      the parse frame (DESIGN.md columns; ``source`` is ``logs/<name>.log``) plus
                      ``log`` (file name), ``attempt`` (Int64: retry or pairs round), ``node_set`` (folded
                      hostlist, e.g. ``node-[1-2]``) and ``nnodes`` (Int64)
    meta.json         what was run and what was concluded (see below)

``meta.json`` (``schema`` 1)::

    {
      "schema": 1,
      "id": "20250301T120000Z-pairs-torch",        # the directory name
      "time": "2025-03-01T12:00:00Z",              # UTC, when the run started
      "cluster": "us-east-2-1cc" | null,
      "mode": "cluster" | "nodes" | "pairs",
      "engine": "nccl-tests" | "torch",
      "op": "all_reduce",
      "nodes": ["node-1", ...],                    # every node of the run
      "node_set": "node-[1-4]",
      "sweep": {...},                              # sizes and flags as given: min_bytes, max_bytes,
                                                   # step_factor, iters, warmup, check, ... (free form)
      "versions": {"slurmkit": "0.1.0", "slurm": str|null, "nccl_tests": str|null, "nccl": str|null,
                   "torch": str|null},             # given ones win; nccl-tests/NCCL read from the logs
      "environment": {"NCCL_IB_HCA": "^mlx5_0", ...},   # NCCL_* variables only
      "verdict": {"passed": bool, "reasons": [str], "summary": str, ...} | null,
      "culprits": [{"node"|"nodes"|"link": ..., "message": str, "busbw_gbps": float|null, ...}],
      "logs": [{"file": "logs/x.log", "nodes": [...], "node_set": str, "attempt": int,
                "runs": int, "failed_runs": int}],
      "runs": [{"source", "run", "collective", "nranks", "hosts", "avg_busbw_gbps", "failed",
                "errors": [{"line", "message"}]}]
    }

The verdict may be given as ``slurmkit.bench.verdict.Verdict`` (anything with ``to_dict()``) or as a plain dict
``{"passed": bool, "reasons": [str, ...], "culprits": [...]}``; extra keys (``summary``, ``expect_gbps``,
``min_size_bytes``, ``profile``, ``op``, ...) are kept, and the report uses ``expect_gbps`` and
``min_size_bytes`` for its threshold line. Culprits given in the verdict dict and through ``culprits=`` are
stored together under ``meta["culprits"]``; a culprit may be a string (kept as ``{"message": str}``) or a dict.

pandas is imported only inside the functions that need it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from slurmkit.errors import SlurmkitError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

SCHEMA = 1
META = "meta.json"
ROWS = "rows.parquet"
LOGS = "logs"
#: Columns rows.parquet adds to the parse frame.
EXTRA_COLUMNS = ("log", "attempt", "node_set", "nnodes")
MODES = ("cluster", "nodes", "pairs")
#: A job's same-run baseline step is saved beside its measured step as ``logs/<name>-baseline.log``.
BASELINE_SUFFIX = "-baseline.log"


class NoResults(SlurmkitError):
    """A directory holds no saved bench run (no ``meta.json`` in it or in its subdirectories)."""

    exit_code = 2

    def __init__(self, path: str | os.PathLike, reason: str = "no bench results found"):
        self.path = str(path)
        super().__init__(f"{path}: {reason} (expected a run directory with {META}, or a directory of them)")


@dataclass
class RunLog:
    """One log of a bench run: the stdout of one job step, with the nodes it ran on.

    Give ``path`` (a file to copy) or ``text``. ``name`` is the file name under ``logs/`` (default: the path's
    name, else ``log-<i>.log``). ``nodes`` empty: the hosts of the log's rank lines. ``attempt`` counts retries,
    or the round in ``pairs`` mode, from 0.
    """

    path: str | os.PathLike | None = None
    text: str | None = None
    name: str | None = None
    nodes: list[str] = field(default_factory=list)
    attempt: int = 0


@dataclass
class SavedRun:
    """A run directory read back: its metadata and its rows (the parse frame plus :data:`EXTRA_COLUMNS`)."""

    path: Path
    meta: dict[str, Any]
    rows: pandas.DataFrame

    @property
    def id(self) -> str:
        return self.meta.get("id") or self.path.name

    @property
    def logs(self) -> list[Path]:
        return sorted((self.path / LOGS).glob("*"))


def nccl_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The ``NCCL_*`` variables of ``env``, sorted by name."""
    return {k: env[k] for k in sorted(env) if k.startswith("NCCL_")}


_NCCL_TESTS_RE = re.compile(r"nccl-tests version (\S+)")
_NCCL_RE = re.compile(r"NCCL INFO NCCL version (\S+)")


def versions_from_logs(texts: Iterable[str]) -> dict[str, str]:
    """``nccl_tests`` (from ``# nccl-tests version X``) and ``nccl`` (from ``NCCL INFO NCCL version X``), the
    first seen of each, when the logs print them."""
    found: dict[str, str] = {}
    for text in texts:
        for key, rx in (("nccl_tests", _NCCL_TESTS_RE), ("nccl", _NCCL_RE)):
            if key not in found:
                m = rx.search(text)
                if m:
                    found[key] = m.group(1)
    return found


def _jsonable(value: Any) -> Any:
    """``value`` with NaN/inf as None, tuples as lists, dataclasses as dicts, unknown objects as str."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)


def verdict_to_dict(verdict: Any) -> dict[str, Any] | None:
    """A JSON-ready verdict dict from a Verdict-like object (``to_dict()``), a dataclass or a plain dict.

    The result always has ``passed`` (bool), ``reasons`` (list of str) and ``culprits`` (list).
    """
    if verdict is None:
        return None
    if hasattr(verdict, "to_dict"):
        data = verdict.to_dict()
    elif is_dataclass(verdict) and not isinstance(verdict, type):
        data = asdict(verdict)
    elif isinstance(verdict, Mapping):
        data = dict(verdict)
    else:
        raise TypeError(f"verdict must be a dict or have to_dict(), not {type(verdict).__name__}")
    if "passed" not in data:
        raise ValueError("verdict dict needs 'passed'")
    data = _jsonable(data)
    data["passed"] = bool(data["passed"])
    data["reasons"] = [str(r) for r in data.get("reasons") or []]
    data["culprits"] = list(data.get("culprits") or [])
    return data


def _culprit(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"message": value}
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    data = _jsonable(value)
    if not isinstance(data, dict):
        return {"message": str(value)}
    return data


def _run_dir_name(when: datetime, mode: str, engine: str) -> str:
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", s)  # noqa: E731
    return f"{stamp}-{safe(mode)}-{safe(engine)}"


def _safe_log_name(name: str, used: set[str]) -> str:
    stem = Path(name).stem if Path(name).suffix else Path(name).name
    base = (re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "log") + ".log"
    candidate, i = base, 2
    while candidate in used:
        candidate = f"{base[:-4]}-{i}.log"
        i += 1
    used.add(candidate)
    return candidate


def save_run(
    out_dir: str | os.PathLike,
    logs: Sequence[RunLog | str | os.PathLike],
    *,
    mode: str = "cluster",
    engine: str = "nccl-tests",
    op: str = "all_reduce",
    cluster: str | None = None,
    nodes: Sequence[str] | None = None,
    sweep: Mapping[str, Any] | None = None,
    versions: Mapping[str, str | None] | None = None,
    environment: Mapping[str, str] | None = None,
    verdict: Any = None,
    culprits: Sequence[Any] = (),
    when: datetime | None = None,
) -> Path:
    """Store one bench run under ``out_dir`` and return its directory.

    ``logs``: :class:`RunLog` s (or paths); each is copied to ``logs/`` and parsed. ``nodes``: every node of the
    run (default: the union of the logs' node sets). ``environment``: the job's environment, of which the
    ``NCCL_*`` variables are kept (default: this process's). ``versions``: what the caller knows (Slurm,
    torch); slurmkit's own version and what the logs print are added. ``verdict``: a Verdict or the plain dict
    described in the module docstring. ``when``: the start time (default: now, UTC).
    """
    import pandas as pd

    from slurmkit import __version__, hostlist
    from slurmkit.bench.parse import read_log, runs_to_frame

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = _run_dir_name(when, mode, engine)
    run_dir, i = out / name, 2
    while run_dir.exists():
        run_dir, i = out / f"{name}-{i}", i + 1
    (run_dir / LOGS).mkdir(parents=True)

    entries = [item if isinstance(item, RunLog) else RunLog(path=item) for item in logs]
    used: set[str] = set()
    frames: list[pandas.DataFrame] = []
    log_meta: list[dict[str, Any]] = []
    run_meta: list[dict[str, Any]] = []
    texts: list[str] = []
    all_nodes: list[str] = []
    for idx, entry in enumerate(entries):
        if entry.text is None and entry.path is None:
            raise ValueError(f"log {idx}: give a path or a text")
        text = entry.text if entry.text is not None else read_log(entry.path)
        texts.append(text)
        fname = _safe_log_name(entry.name or (Path(entry.path).name if entry.path else f"log-{idx}.log"), used)
        (run_dir / LOGS / fname).write_text(text, encoding="utf-8")
        source = f"{LOGS}/{fname}"
        runs = _parse(text, source)
        hosts = list(entry.nodes) or list(dict.fromkeys(h for r in runs for h in r.hosts))
        all_nodes.extend(hosts)
        node_set = hostlist.fold(h for h in hosts if h)
        frame = runs_to_frame(runs)
        frame["log"] = pd.array([fname] * len(frame), dtype="string")
        frame["attempt"] = pd.array([entry.attempt] * len(frame), dtype="Int64")
        frame["node_set"] = pd.array([node_set or None] * len(frame), dtype="string")
        frame["nnodes"] = pd.array([len(hosts) or None] * len(frame), dtype="Int64")
        frames.append(frame)
        log_meta.append({"file": source, "nodes": hosts, "node_set": node_set, "attempt": entry.attempt,
                         "runs": len(runs), "failed_runs": sum(r.failed for r in runs)})
        for r in runs:
            run_meta.append({
                "source": r.source, "run": r.run, "collective": r.collective, "nranks": r.nranks,
                "hosts": r.hosts, "avg_busbw_gbps": r.avg_busbw_gbps, "failed": r.failed,
                "node_set": node_set, "attempt": entry.attempt,
                "errors": [{"line": e.line, "message": e.message} for e in r.errors],
            })

    rows = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
    rows.to_parquet(run_dir / ROWS, index=False)

    every = list(dict.fromkeys(nodes if nodes is not None else all_nodes))
    vers: dict[str, Any] = {"slurmkit": __version__, "slurm": None, "nccl_tests": None, "nccl": None,
                            "torch": None}
    vers.update(versions_from_logs(texts))
    vers.update({k: v for k, v in (versions or {}).items() if v is not None})
    vdict = verdict_to_dict(verdict)
    found = [_culprit(c) for c in (vdict or {}).get("culprits", [])] + [_culprit(c) for c in culprits]
    if vdict is not None:
        vdict.pop("culprits", None)
    meta = {
        "schema": SCHEMA,
        "id": run_dir.name,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cluster": cluster,
        "mode": mode,
        "engine": engine,
        "op": op,
        "nodes": every,
        "node_set": hostlist.fold(n for n in every if n),
        "sweep": dict(sweep or {}),
        "versions": vers,
        "environment": nccl_environment(os.environ if environment is None else environment),
        "verdict": vdict,
        "culprits": found,
        "logs": log_meta,
        "runs": run_meta,
    }
    (run_dir / META).write_text(json.dumps(_jsonable(meta), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return run_dir


def _parse(text: str, source: str):
    from slurmkit.bench.parse import parse_text

    return parse_text(text, source)


def _empty_frame() -> pandas.DataFrame:
    import pandas as pd

    from slurmkit.bench.parse import runs_to_frame

    frame = runs_to_frame([])
    for col, dtype in zip(EXTRA_COLUMNS, ("string", "Int64", "string", "Int64")):
        frame[col] = pd.array([], dtype=dtype)
    return frame


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a saved run (holds ``meta.json``)."""
    return (Path(path) / META).is_file()


def load_run(run_dir: str | os.PathLike) -> SavedRun:
    """Read a run directory back. Raises :class:`NoResults` when it is none."""
    import pandas as pd

    path = Path(run_dir)
    if not is_run_dir(path):
        raise NoResults(path)
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NoResults(path, f"unreadable {META}: {exc}") from None
    rows = pd.read_parquet(path / ROWS) if (path / ROWS).is_file() else _empty_frame()
    return SavedRun(path=path, meta=meta, rows=rows)


def find_runs(path: str | os.PathLike) -> list[Path]:
    """The run directories at ``path``: itself when it is one, else its subdirectories that are, oldest first
    (by ``meta.json`` time, then name). Raises :class:`NoResults` when there are none."""
    root = Path(path)
    if not root.is_dir():
        raise NoResults(root, "not a directory")
    if is_run_dir(root):
        return [root]
    found = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    if not found:
        raise NoResults(root)

    def key(p: Path) -> tuple[str, str]:
        try:
            return (str(json.loads((p / META).read_text(encoding="utf-8")).get("time") or ""), p.name)
        except (OSError, ValueError):
            return ("", p.name)

    return sorted(found, key=key)


#: Columns of :func:`history`, in order.
HISTORY_COLUMNS = (
    "time", "id", "cluster", "mode", "engine", "op", "node_set", "nnodes", "passed",
    "collective", "size_bytes", "node_sets", "oop_busbw_gbps", "oop_busbw_min_gbps", "ip_busbw_gbps",
    "oop_time_us", "ip_time_us", "wrong",
)  # fmt: skip


def history(out_dir: str | os.PathLike) -> pandas.DataFrame:
    """Every saved run under ``out_dir`` (or the one run it is) as one DataFrame, sorted by time.

    One row per run, collective and message size. Over the run's node sets and attempts (``nodes``/``pairs``
    modes), ``oop_busbw_gbps``, ``ip_busbw_gbps`` and the times are means, ``oop_busbw_min_gbps`` the worst
    node set, ``node_sets`` how many were measured, ``wrong`` the sum of wrong elements (NA when no run
    counted them). ``time`` is a UTC timestamp, ``passed`` the stored verdict (NA when none was stored).
    """
    import pandas as pd

    parts = []
    for path in find_runs(out_dir):
        saved = load_run(path)
        meta, rows = saved.meta, saved.rows
        if rows.empty:
            continue
        rows = rows.copy()
        rows["wrong"] = rows["oop_wrong"].astype("Float64") + rows["ip_wrong"].astype("Float64").fillna(0)
        rows["set_key"] = rows["node_set"].fillna("") + "#" + rows["attempt"].astype("string").fillna("")
        grouped = rows.groupby(["collective", "size_bytes"], sort=True, dropna=False)
        agg = grouped.agg(
            node_sets=("set_key", "nunique"),
            oop_busbw_gbps=("oop_busbw_gbps", "mean"),
            oop_busbw_min_gbps=("oop_busbw_gbps", "min"),
            ip_busbw_gbps=("ip_busbw_gbps", "mean"),
            oop_time_us=("oop_time_us", "mean"),
            ip_time_us=("ip_time_us", "mean"),
            wrong=("wrong", lambda s: s.sum() if s.notna().any() else pd.NA),
        ).reset_index()
        verdict = meta.get("verdict")
        agg.insert(0, "time", pd.Timestamp(meta["time"]))
        agg.insert(1, "id", meta.get("id") or path.name)
        agg.insert(2, "cluster", meta.get("cluster"))
        agg.insert(3, "mode", meta.get("mode"))
        agg.insert(4, "engine", meta.get("engine"))
        agg.insert(5, "op", meta.get("op"))
        agg.insert(6, "node_set", meta.get("node_set"))
        agg.insert(7, "nnodes", len(meta.get("nodes") or []) or None)
        agg.insert(8, "passed", None if verdict is None else bool(verdict.get("passed")))
        parts.append(agg)
    if not parts:
        return pd.DataFrame({c: [] for c in HISTORY_COLUMNS}).astype({"time": "datetime64[ns, UTC]"})
    frame = pd.concat(parts, ignore_index=True)[list(HISTORY_COLUMNS)]
    frame = frame.astype({
        "id": "string", "cluster": "string", "mode": "string", "engine": "string", "op": "string",
        "node_set": "string", "nnodes": "Int64", "passed": "boolean", "collective": "string",
        "size_bytes": "Int64", "node_sets": "Int64", "wrong": "Int64",
    })
    return frame.sort_values(["time", "id", "collective", "size_bytes"], kind="stable").reset_index(drop=True)
