"""Parse nccl-tests stdout, as real clusters produce it, into typed runs and rows.

Pure: text in, dataclasses out. The table forms are built column-wise (:func:`runs_to_columns`): csv through the
csv module and json with the rows encoded a column at a time (neither imports pandas), parquet and the DataFrame
through pyarrow (imported only by :func:`runs_to_table`, pandas only by :func:`runs_to_frame`).

What a log may hold, and how it is read:

- one or more runs (``# Collective test starting: X`` ... ``# Collective test concluded: X``); a run also starts
  at a version/banner/``nThread``/``Using devices``/column-header line that cannot belong to the current run, so
  concatenated logs of runs that died without a footer still split;
- the rank lines (``#  Rank  0 Group  0 Pid ... on HOST device ...``; before 2.13 without ``Group``) give
  ``nranks`` (distinct ranks) and ``hosts`` (in order of appearance);
- the column-header line decides the columns: old versions print ``error`` (a maximum error) instead of
  ``#wrong`` (a count), all_gather/broadcast may leave out ``redop``/``root``; ``N/A`` (``-c 0``) is None;
- srun ``--label`` prefixes, Open MPI ``--tag-output`` tags (anywhere in a line), NCCL debug lines (also glued to
  a half-printed row), ``...`` elisions, indentation and trailing spaces are tolerated;
- ``Test NCCL failure`` / ``Test CUDA failure`` / ``Test failure`` lines, rows cut off (by a failure, by the end
  of the file) and unreadable rows become :class:`ParseIssue` s on their run, with 1-based line numbers; the rows
  before them are kept.
"""

from __future__ import annotations

import gc
import math
import re
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import repeat
from operator import is_not
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from slurmkit.errors import SlurmkitError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: The columns of ``slurmkit bench parse`` (csv, parquet, DataFrame), in order. See DESIGN.md.
COLUMNS: tuple[str, ...] = (
    "source", "run", "collective", "nranks",
    "size_bytes", "count", "dtype", "redop", "root",
    "oop_time_us", "oop_algbw_gbps", "oop_busbw_gbps", "oop_wrong", "oop_error",
    "ip_time_us", "ip_algbw_gbps", "ip_busbw_gbps", "ip_wrong", "ip_error",
)  # fmt: skip


class LogReadError(SlurmkitError):
    """A log file could not be read (missing, a directory, not text)."""

    exit_code = 2

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ParseIssue(NamedTuple):
    """Something wrong found in a log: a test failure, a cut-off or unreadable row. ``line`` counts from 1.

    A named tuple, like :class:`Row`: a failing job prints one failure line per rank, and a frozen dataclass's
    ``__init__`` costs several times a tuple's."""

    line: int
    message: str


class Row(NamedTuple):
    """One line of an nccl-tests result table. A value the log does not print is None.

    A named tuple: the parser builds the rows of a table in C (``tuple.__new__`` over columns), which a
    dataclass's Python ``__init__`` cannot match (it was half of the parse time on large logs)."""

    size_bytes: int
    count: int | None = None
    dtype: str | None = None
    redop: str | None = None
    root: int | None = None
    oop_time_us: float | None = None
    oop_algbw_gbps: float | None = None
    oop_busbw_gbps: float | None = None
    oop_wrong: int | None = None
    oop_error: float | None = None
    ip_time_us: float | None = None
    ip_algbw_gbps: float | None = None
    ip_busbw_gbps: float | None = None
    ip_wrong: int | None = None
    ip_error: float | None = None


@dataclass
class Run:
    """One nccl-tests run (one binary invocation) found in a log."""

    source: str
    run: int
    collective: str | None = None
    nranks: int | None = None
    hosts: list[str] = field(default_factory=list)
    avg_busbw_gbps: float | None = None
    out_of_bounds: int | None = None
    rows: list[Row] = field(default_factory=list)
    errors: list[ParseIssue] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when the run has an error, a row with wrong elements, or no rows at all."""
        if self.errors or not self.rows:
            return True
        return any((r.oop_wrong or 0) > 0 or (r.ip_wrong or 0) > 0 for r in self.rows)


# --- line cleaning -------------------------------------------------------------------------------------------

# Open MPI --tag-output: "[1,0]<stdout>:" (Open MPI 5 / PRRTE adds a space). Open MPI tags each chunk it reads
# from a pipe, so a tag can also sit in the middle of a line, even inside a number: removing it rejoins the line.
_TAG_RE = re.compile(r"\[\d+,\d+\]<std(?:out|err|diag)>: ?")
# srun --label: the task id, right-aligned, then ": ".
_LABEL_RE = re.compile(r"^\s*\d+: ")
_ELISION_RE = re.compile(r"^(?:\.{3,}|\u2026)$")
# A NCCL debug line ("host:pid:tid [dev] NCCL INFO ...") or a test failure, possibly glued to the end of a row
# that was half printed when it came: nccl-tests prints a row in pieces on the stdout NCCL also writes to.
# Each is found by its fixed tail, then its host name is walked back (a regex with a leading host pattern
# would be quadratic on long lines). Host names start with a letter, so "-1host:..." leaves "-1" to the row.
# WARN lines carry the source position: "host:pid:tid [dev] transport/net_ib.cc:123 NCCL WARN ...".
_DEBUG_TAIL_RE = re.compile(r":\d+:\d+ \[\d+\] (?:\S+:\d+ )?NCCL (?:INFO|WARN|TRACE|ERROR|ABORT)\b")
# A line that is one NCCL debug message and nothing else (the host name, then the tail above): the most frequent
# line of a log run with NCCL_DEBUG=INFO, skipped without the search below when it holds no tag and no failure.
# The patterns of whole lines spell spaces ``[^\S\n]`` so that none spans two lines (the fast path below matches
# blocks of lines).
_SP = r"[^\S\n]"
_DEBUG_LINE = rf"{_SP}*+(?:[0-9]++: )?[A-Za-z][A-Za-z0-9_.\-]*+{_DEBUG_TAIL_RE.pattern}[^\n]*+"
_DEBUG_LINE_RE = re.compile(_DEBUG_LINE)
_FAIL_TAIL_RE = re.compile(r"Test (?:NCCL |CUDA )?failure\b")
_PID_PREFIX_RE = re.compile(r" ?\.\. [\w.\-]+ pid \d+: $")  # TESTCHECK's " .. host pid 123: Test failure"
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


def _host_start(text: str, end: int) -> int:
    """Where the host name that ends at ``end`` starts (its first letter); ``end`` if there is none."""
    i = len(text[:end].rstrip(_HOST_CHARS))
    while i < end and not text[i].isalpha():
        i += 1
    return i


def _find_noise(text: str) -> tuple[int, bool] | None:
    """(start, is_failure) of the first NCCL debug message or test failure in ``text``, or None."""
    found: list[tuple[int, bool]] = []
    m = _DEBUG_TAIL_RE.search(text)
    if m:
        start = _host_start(text, m.start())
        if start < m.start():
            found.append((start, False))
    m = _FAIL_TAIL_RE.search(text)
    if m:
        start = m.start()
        head = text[max(0, start - 300) : start]
        pid = _PID_PREFIX_RE.search(head)
        if pid:
            start -= len(head) - pid.start()
        elif head.endswith(": "):
            host = _host_start(text, start - 2)
            start = host if host < start - 2 else start
        found.append((start, True))
    return min(found) if found else None


# --- header lines --------------------------------------------------------------------------------------------


# --- the fast path: blocks of lines read by one regex over the text ------------------------------------------
# Most lines of a log are rows, header lines, NCCL debug lines and blank ones, in runs of consecutive lines. Each
# such run is matched by one regex over the text (``(?:LINE\n)+``): a block of rows is then read a column at a time
# with no Python code per row, a block of the others line by line without feed()'s checks. A block never includes
# a line holding a tag or a test failure (or, for a header line, a NCCL message): such a line ends the block and
# goes to _Parser.feed, like every line the fast path cannot read.
# What may stand before a line's text: spaces, an srun label, spaces. An empty line is only that.
_LEAD = rf"{_SP}*+(?:\d++: )?{_SP}*+"
_EMPTY_LINE = _LEAD  # feed() skips it without a trace
_BARE_LINE = rf"{_LEAD}#{_SP}*+"  # a bare "#": nothing to read, but a line of the run
# The units line under the column header, "#  (B)  (elements)  (us)  (GB/s) ...": parenthesized words only, so
# _header would find nothing in it (no "out-of-place", no column name); read like a bare "#".
_UNITS_LINE = rf"{_LEAD}#(?:{_SP}*+\([A-Za-z/%]*+\))++{_SP}*+"


# A rank line's body (after "#"), its rank and host groups 1 and 2. 2.13+: "#  Rank  0 Group  0 Pid 123 on host
# device  0 [0000:1b:00] NAME"; before: "#   Rank  0 Pid 123 on host device  0 [0x1b] NAME". A rank line may be
# cut with "..." when one process prints too many.
_RANK_BODY = rf"Rank{_SP}++(\d++){_SP}++(?:Group{_SP}++\d++{_SP}++)?Pid{_SP}++\d++{_SP}++on{_SP}++(\S++)"
_RANK_RE = re.compile(_RANK_BODY)  # on a header line's body, in _header
_RANK_START = rf"{_LEAD}#{_SP}*+Rank{_SP}"  # how a rank line starts
# One whole rank line. The lookbehind keeps findall over a block of lines from finding a rank in the middle of a
# line (a line it does not read whole).
_RANK_EACH_RE = re.compile(rf"(?<![^\n]){_LEAD}#{_SP}*+{_RANK_BODY}[^\n]*+\n")
# Any other header line ("#" and its body); a run's header lines come in blocks (version, banner, parameters,
# "Using devices"; then the title, the column header, the units line; the footers), read in one match each.
_HEADER_LINE = rf"(?!{_RANK_START}){_LEAD}#[^\n]*+"
# read_blocks' scanner (after a table's rows, see _RowReader.scan): each match is a block of lines that need no
# reading (NCCL debug lines, bare "#", units lines), a block of rank lines, a block of other header lines, or a
# block of empty lines. It runs up to the first line holding a tag or a test failure, and stops at any other line
# (a row, a tagged line): feed() reads that one.
_QUIET_SCAN_RE = re.compile(
    rf"(?P<skip>(?:(?:{_DEBUG_LINE}|{_BARE_LINE}|{_UNITS_LINE})\n)+)"
    rf"|(?P<ranks>(?:{_RANK_START}[^\n]*+\n)+)"
    rf"|(?P<header>(?:{_HEADER_LINE}\n)+)"
    rf"|(?P<empty>(?:{_EMPTY_LINE}\n)+)"
)
_QUIET_PENDING_RE = re.compile(rf"(?:(?:{_DEBUG_LINE}|{_EMPTY_LINE})\n)+")  # while a row waits for its end
_EMPTY_LINE_RE = re.compile(_EMPTY_LINE)

_OOB_RE = re.compile(r"Out of bounds values\s*:\s*(\d+)\s*(\w+)?")
_AVG_RE = re.compile(r"Avg bus bandwidth\s*:\s*(\S+)\s*(\w+)?")
_BINARY_RE = re.compile(r"(?:^|[/\s])([a-z][a-z0-9_]*?)_perf(?:_mpi)?(?=\s|$)")

# Phases of a run, in print order. A marker whose phase the current run has already reached starts a new run.
_P_NONE, _P_VERSION, _P_BANNER, _P_PARAMS, _P_DEVICES, _P_TITLE, _P_COLUMNS, _P_ROWS, _P_FOOTER = range(-1, 8)

_TABLE_PHASES = (_P_COLUMNS, _P_ROWS)  # a run that takes rows

# --- columns -------------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[-+]?\d+")
_FLOAT_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?i:[-+]?(?:inf|nan))")
_WORD_RE = re.compile(r"[A-Za-z_][\w.\-]*+")

# header token -> (Row field, kind). Old formats: "bytes N type op ... res" (NCCL 1), "error" (max error, 2.x
# until #wrong replaced it).
_SINGLE = {
    "size": ("size_bytes", "int"),
    "bytes": ("size_bytes", "int"),
    "count": ("count", "int"),
    "N": ("count", "int"),
    "type": ("dtype", "word"),
    "redop": ("redop", "word"),
    "op": ("redop", "word"),
    "root": ("root", "int"),
}
# Printed once for out-of-place, then once for in-place.
_PAIRED = {
    "time": ("time_us", "float"),
    "cputime": ("time_us", "float"),
    "algbw": ("algbw_gbps", "float"),
    "busbw": ("busbw_gbps", "float"),
    "#wrong": ("wrong", "wrong"),
    "wrong": ("wrong", "wrong"),
    "error": ("error", "error"),
    "res": ("error", "error"),
}
_ROW_FIELDS = frozenset(Row._fields)

Spec = tuple[str | None, str]  # (Row field or None to skip, kind)


def _columns_from_header(tokens: list[str]) -> list[Spec] | None:
    """Token specs of a table's rows from its column-header tokens; None when the line is no column header."""
    if not ({"size", "bytes"} & set(tokens) and {"time", "cputime"} & set(tokens)):
        return None
    specs: list[Spec] = []
    seen: dict[str, int] = {}
    for tok in tokens:
        if tok in _SINGLE:
            specs.append(_SINGLE[tok])
        elif tok in _PAIRED:
            name, kind = _PAIRED[tok]
            n = seen[name] = seen.get(name, 0) + 1
            prefix = {1: "oop_", 2: "ip_"}.get(n)
            specs.append((prefix + name if prefix else None, kind))
        elif tok == "timestamp":
            # --report_timestamps prints "YYYY-MM-DD HH:MM:SS" after the in-place columns: two tokens.
            specs += [(None, "any"), (None, "any")]
        else:
            # Columns this parser does not keep (per-iteration i_min, i_max, i_p99, i_cv%, ...).
            specs.append((None, "any"))
    return specs


@lru_cache(maxsize=64)
def _table_of_header(body: str) -> tuple[tuple[Spec, ...], _RowReader] | None:
    """The column specs and row reader of a header line's ``body`` (after "#"), or None when it is no column
    header. Cached: every run of a log prints the same header."""
    if "time" not in body:  # the header has a time or cputime column; skips most header lines cheaply
        return None
    found = _columns_from_header(body.split())
    if found is None:
        return None
    specs = tuple(found)
    return specs, _row_reader(specs)


def _convert(token: str, kind: str) -> tuple[bool, Any]:
    if kind == "float":
        return (True, float(token)) if _FLOAT_RE.fullmatch(token) else (False, None)
    if kind == "int":
        return (True, int(token)) if _INT_RE.fullmatch(token) else (False, None)
    if kind == "word":
        return (True, token) if _WORD_RE.fullmatch(token) and token != "N/A" else (False, None)
    if kind == "wrong":
        # "N/A" with -c 0; printed with %6g in 2.13+, so a large count may read "1.04858e+06".
        if token == "N/A":
            return True, None
        if _FLOAT_RE.fullmatch(token):
            value = float(token)
            if math.isfinite(value) and value == int(value):
                return True, int(value)
        return False, None
    if kind == "error":
        if token == "N/A":
            return True, None
        return (True, float(token)) if _FLOAT_RE.fullmatch(token) else (False, None)
    return True, None  # "any": a column that is not kept


def _convert_all(tokens: list[str], specs: tuple[Spec, ...]) -> list[Any] | None:
    """Converted values of ``tokens`` (at most len(specs)), or None if one does not fit its column."""
    if len(tokens) > len(specs):
        return None
    values = []
    for tok, (_, kind) in zip(tokens, specs):
        ok, value = _convert(tok, kind)
        if not ok:
            return None
        values.append(value)
    return values


# The fast path reads a block of rows with one regex and converts their values a column at a time. It takes the forms
# nccl-tests prints (space-separated, no exponent, no sign but "-"), each a subset of what _convert accepts and
# converted to the same value: a float token is digits and dots, and float() refuses the ones _FLOAT_RE would
# ("1.2.3", "."), sending the row to the slow path. Rarer forms ("inf", "+1", tabs, "1.04858e+06" under #wrong)
# fail the row's pattern and take the slow path too. An unkept column takes no ":" or "<", so a row matched in
# full cannot hold a tag or a NCCL debug message; an srun label is matched (and dropped) before the row.
_KIND_RE = {
    "int": r"-?[0-9]++",
    "float": r"-?[0-9.]++",
    "word": r"[A-Za-z_][A-Za-z0-9_.\-]*+",  # ASCII: a tenth cheaper to match than \w
    "wrong": r"[0-9]{1,15}+|N/A",  # a whole number float() holds exactly, as _convert reads it
    "error": r"N/A|-?[0-9.]++",
    "any": r"[^\s:<]++",
}
_ROW_FIELD_ORDER = Row._fields


def _ints(tokens: list[str]) -> list[int]:
    # A column with one value in every row of a table (root: -1) is converted once; first and last tell cheaply
    # that a column (size, count) is not one.
    if tokens[0] == tokens[-1] and tokens.count(tokens[0]) == len(tokens):
        return [int(tokens[0])] * len(tokens)
    return list(map(int, tokens))


def _floats(tokens: list[str]) -> list[float]:
    return list(map(float, tokens))


def _words(tokens: list[str]) -> list[str]:
    return tokens  # a column of its own already (a slice, or a list of captured tokens)


def _na_or_ints(tokens: list[str]) -> list[int | None]:
    if tokens[0] == tokens[-1] == "0" and tokens.count("0") == len(tokens):  # #wrong on a healthy cluster
        return [0] * len(tokens)
    try:
        return list(map(int, tokens))
    except ValueError:  # "N/A" (-c 0)
        return [None if t == "N/A" else int(t) for t in tokens]


def _na_or_floats(tokens: list[str]) -> list[float | None]:
    try:
        return list(map(float, tokens))
    except ValueError:
        return [None if t == "N/A" else float(t) for t in tokens]


# kind -> the values of a column of tokens (the tokens matched its _KIND_RE pattern); ValueError for a float
# token float() refuses
_KIND_COLUMN = {"int": _ints, "float": _floats, "word": _words, "wrong": _na_or_ints, "error": _na_or_floats}
_LABELS_RE = re.compile(r"^ *[0-9]+: ", re.MULTILINE)


@dataclass(frozen=True)
class _RowReader:
    """The fast path for the rows of one column layout. ``row`` matches a complete row (surrounding spaces
    included) and captures the kept tokens; ``line`` is ``row`` after an optional srun label, for raw lines.
    ``kept`` has, for each captured token, its position in a row and its column reader; ``slots``, for each
    field of :class:`Row` in order, the index of its captured token or None."""

    row: re.Pattern[str]
    line: re.Pattern[str]
    ntokens: int
    kept: tuple[tuple[int, Any], ...]
    slots: tuple[int | None, ...]
    scan: re.Pattern[str]  # _QUIET_SCAN_RE after two alternatives: blocks of rows, "rows" and "labelled"

    def _rows(self, columns: list[list[Any]]) -> list[Row]:
        blank = repeat(None)
        values = zip(*[blank if i is None else columns[i] for i in self.slots])
        return list(map(tuple.__new__, repeat(Row), values))  # Row(*values) without Python code per row

    def rows(self, matched: list[tuple[str, ...]]) -> list[Row]:
        """The rows of the captured tokens of matched lines; ValueError if a float token is not a number."""
        return self._rows([read(list(tokens)) for (_, read), tokens in zip(self.kept, zip(*matched))])

    def rows_of_block(self, block: str, labelled: bool = False) -> list[Row]:
        """The rows of a ``block`` of lines that ``scan`` matched as rows (``labelled``: some with an srun label);
        ValueError if a float token is not a number."""
        if labelled:
            block = _LABELS_RE.sub("", block)
        tokens = block.split()  # every row has ntokens (the block matched), so column j is tokens[j::ntokens]
        return self._rows([read(tokens[j :: self.ntokens]) for j, read in self.kept])

    def read_groups(self, groups: tuple[str, ...]) -> Row | None:
        """The row of one matched line's captured tokens, or None if a float token is not a number."""
        try:
            return self.rows([groups])[0]
        except ValueError:
            return None

    def read(self, text: str) -> Row | None:
        """The row ``text`` (a line without its label) holds when the fast path can read it, else None."""
        m = self.row.fullmatch(text)
        return self.read_groups(m.groups()) if m else None


@lru_cache(maxsize=64)
def _row_reader(specs: tuple[Spec, ...]) -> _RowReader:
    parts: list[str] = []
    plain: list[str] = []
    kept: list[tuple[int, Any]] = []
    index: dict[str, int] = {}
    for position, (name, kind) in enumerate(specs):
        pattern = _KIND_RE[kind]
        plain.append(f"(?:{pattern})" if "|" in pattern else pattern)  # a group costs a sixth of a row's match
        if kind == "any":
            parts.append(pattern)
            continue
        if name is not None:
            index[name] = len(kept)
        kept.append((position, _KIND_COLUMN[kind]))
        parts.append(f"({pattern})")
    label, start, tail = r"(?: *+[0-9]++: )", r" *+(?=[0-9])", _SP + "*+"  # a row starts with a digit (see _body)
    row = start + " ++".join(parts) + tail
    plain_row = start + " ++".join(plain) + tail
    # rows without srun labels, then rows with a label on some lines: the first need no label removed
    scan = f"(?P<rows>(?:{plain_row}\n)+)|(?P<labelled>(?:{label}?{plain_row}\n)+)|{_QUIET_SCAN_RE.pattern}"
    slots = tuple(index.get(f) for f in _ROW_FIELD_ORDER)
    return _RowReader(re.compile(row), re.compile(label + "?" + row), len(specs), tuple(kept), slots, re.compile(scan))


# --- the parser ----------------------------------------------------------------------------------------------


class _RunState:
    """A run being read: its phase, its table's columns and reader, its ranks, the number of its last line."""

    __slots__ = ("run", "phase", "closed", "columns", "reader", "ranks", "last_line")

    def __init__(self, run: Run):
        self.run = run
        self.phase = _P_NONE
        self.closed = False
        self.columns: tuple[Spec, ...] | None = None
        self.reader: _RowReader | None = None
        self.ranks: dict[int, str] = {}
        self.last_line = 0


def _positions(text: str, word: str, rare_first: bool = False) -> list[int]:
    """Where ``word`` occurs in ``text``, in order. With ``rare_first`` its first character is looked for alone
    (a single character is found with memchr, at a tenth of the cost of a word; worth it when that character is
    rare, as "<" of "<std" is in a log)."""
    found = []
    step = word[0] if rare_first else word
    k = text.find(step)
    while k != -1:
        if not rare_first or text.startswith(word, k):
            found.append(k)
        k = text.find(step, k + 1)
    return found


class _Parser:
    def __init__(self, source: str, text: str):
        self.source = source
        self.text = text
        self.stops = sorted(_positions(text, "failure") + _positions(text, "<std", rare_first=True))  # see _stop
        self.states: list[_RunState] = []
        self.hint: str | None = None  # a collective named by a binary path seen outside a run's header
        self.pending: list[str] = []  # tokens of a row printed in pieces
        self.pending_line = 0
        self.cur: _RunState | None = None  # the last run started

    # runs

    def _new_run(self) -> _RunState:
        self._flush_pending("the next run started")
        st = _RunState(Run(source=self.source, run=len(self.states), collective=self.hint))
        self.hint = None
        self.states.append(st)
        self.cur = st
        return st

    def _at(self, phase: int, repeatable: bool = False) -> _RunState:
        """The run a header line of ``phase`` belongs to, starting a new one when the current run is past it."""
        st = self.cur
        if st is None or st.closed or st.phase > phase or (st.phase == phase and not repeatable):
            st = self._new_run()
        if phase > st.phase:
            st.phase = phase
        return st

    def _any_run(self) -> _RunState:
        return self.cur if self.cur is not None else self._new_run()

    def _issue(self, st: _RunState, line: int, message: str) -> None:
        st.run.errors.append(ParseIssue(line, message))

    def _flush_pending(self, why: str) -> None:
        if self.pending and self.cur is not None:
            size = self.pending[0]
            self._issue(self.cur, self.pending_line, f"row for size {size} cut off: {why}")
        self.pending = []

    # lines

    def _table(self) -> _RowReader | None:
        """The reader of the rows the current run takes now, or None when it takes none."""
        st = self.cur
        if st is None or st.reader is None or st.closed or st.phase not in _TABLE_PHASES:
            return None
        return st.reader

    def _stop(self, pos: int) -> int:
        """Where the first line at or after ``pos`` that holds a tag or a test failure starts (or the text's end)."""
        i = bisect_left(self.stops, pos)
        if i == len(self.stops):
            return len(self.text)
        return max(pos, self.text.rfind("\n", pos, self.stops[i]) + 1)

    def _take_rows(self, reader: _RowReader, start: int, pos: int, end: int, labelled: bool) -> tuple[int, int]:
        """Add the rows of text[pos:end] (complete rows, from line ``start``) to the current run; how many lines
        were taken and where they end. A float token float() refuses ends them early (feed() reads that line)."""
        st = self.cur
        assert st is not None
        try:
            rows = reader.rows_of_block(self.text[pos:end], labelled)
        except ValueError:  # a float token like "1.2.3": keep the rows before it
            lines, rows, end = self.text[pos : end - 1].split("\n"), [], pos
            for line in lines:
                row = reader.read_groups(reader.line.fullmatch(line).groups())  # type: ignore[union-attr]
                if row is None:
                    break
                rows.append(row)
                end += len(line) + 1
            if not rows:
                return 0, pos
        st.run.rows.extend(rows)
        st.phase = _P_ROWS
        st.last_line = start + len(rows)  # 1-based number of the last row
        return len(rows), end

    def read_blocks(self, start: int, pos: int) -> tuple[int, int]:
        """Read the blocks of lines from line ``start`` (at ``pos`` in the text) on, as :meth:`feed` would read
        their lines: rows of the current table, NCCL debug lines (skipped), empty lines, header lines. Returns the
        index and text position of the first line left to feed()."""
        if self.pending:
            return self._read_pending(start, pos)
        text, stop = self.text, self._stop(pos)

        def scanner(table: _RowReader | None, at: int):
            return (table.scan if table else _QUIET_SCAN_RE).scanner(text, at, stop).match

        k, cur, reader = start, self.cur, self._table()  # k: the number of lines read before the current match
        scan = scanner(reader, pos)
        while (m := scan()) is not None:
            kind = m.lastgroup
            if kind == "rows" or kind == "labelled":
                taken, pos = self._take_rows(reader, k, pos, m.end(), kind == "labelled")  # type: ignore[arg-type]
                k += taken
                if pos != m.end():  # a refused float token
                    break
                continue
            pos = m.end()
            if kind == "header":
                k = self._header_lines(k, m.start(), pos)
            elif kind == "ranks":
                found = _RANK_EACH_RE.findall(text, m.start(), pos)
                lines = text.count("\n", m.start(), pos)
                if len(found) == lines and text.find("NCCL", m.start(), pos) == -1:
                    st = self._at(_P_DEVICES, repeatable=True)
                    ranks, hosts = zip(*found)
                    # the first host printed for a rank is kept, as _header keeps it: reversed, it is set last
                    seen = dict(zip(map(int, reversed(ranks)), reversed(hosts)))
                    seen.update(st.ranks)
                    st.ranks = seen
                    k += lines
                else:  # a rank line cut short ("..."), or with a NCCL message glued to it
                    k = self._header_lines(k, m.start(), pos)
            else:
                k += text.count("\n", m.start(), pos)
                if kind == "empty":
                    continue
            if self.cur is not cur or kind != "skip":  # the table may have started, ended or changed
                cur = self.cur
                table = self._table()
                if table is not reader:
                    reader = table
                    scan = scanner(reader, pos)
            if cur is not None:
                cur.last_line = k
        return k, pos

    def _header_lines(self, k: int, start: int, end: int) -> int:
        """Read the header lines of text[start:end] (after line ``k``) one by one; returns the last one's number."""
        for line in self.text[start : end - 1].split("\n"):
            k += 1
            if "NCCL" in line:  # a NCCL message glued to the line
                self.feed(k, line)
                continue
            self._header(k, line.partition("#")[2].strip())  # the lead (spaces, a label) has no "#"
            if self.cur is not None:  # the line may have started a run
                self.cur.last_line = k
        return k

    def _read_pending(self, start: int, pos: int) -> tuple[int, int]:
        """read_blocks while a row printed in pieces waits for its end: NCCL debug and empty lines only (feed()
        reads any other line, and says if it ends the row)."""
        text = self.text
        m = _QUIET_PENDING_RE.match(text, pos, self._stop(pos))
        if m is None:
            return start, pos
        lines = text[pos : m.end() - 1].split("\n")
        if self.cur is not None:  # feed() counts every line but empty ones as the run's
            for k in range(len(lines) - 1, -1, -1):
                if not _EMPTY_LINE_RE.fullmatch(lines[k]):
                    self.cur.last_line = start + k + 1
                    break
        return start + len(lines), m.end()

    def feed(self, lineno: int, line: str) -> None:
        if "NCCL" in line and _DEBUG_LINE_RE.match(line) and "failure" not in line and "<std" not in line:
            if self.cur is not None:
                self.cur.last_line = lineno
            return
        if "<std" in line:
            line = _TAG_RE.sub("", line)
        if ": " in line:
            m = _LABEL_RE.match(line)
            if m:
                line = line[m.end() :]
        text = line.strip()
        if not text or (text[0] in ".\u2026" and _ELISION_RE.match(text)):
            return

        failure = None
        if "NCCL" in text or "failure" in text:
            noise = _find_noise(text)
            if noise is not None:
                start, is_failure = noise
                if is_failure:
                    failure = text[start:].strip()[:500]
                text = text[:start].strip()

        if text.startswith("#"):
            self._flush_pending(f"line {lineno} is a header line")
            self._header(lineno, text[1:].strip())
        elif text:
            self._body(lineno, text)

        if failure is not None:
            self._flush_pending(failure)
            self._issue(self._any_run(), lineno, failure)
        if self.cur is not None:
            self.cur.last_line = lineno

    def _header(self, lineno: int, body: str) -> None:
        """Read a header line; ``body`` is what follows its "#", stripped."""
        if not body:
            return
        if body.startswith("Rank"):  # first: one per rank, the most frequent header line
            m = _RANK_RE.match(body)
            if m:
                st = self._at(_P_DEVICES, repeatable=True)
                st.ranks.setdefault(int(m.group(1)), m.group(2))
        elif body.startswith("nccl-tests version"):
            self._at(_P_VERSION)
        elif body.startswith("Collective test starting:"):
            st = self._at(_P_BANNER)
            name = body.split(":", 1)[1].split()
            if name:
                st.run.collective = re.sub(r"_perf(?:_mpi)?$", "", name[0])
        elif body.startswith("nThread"):
            self._at(_P_PARAMS)
        elif body.startswith("Using devices"):
            self._at(_P_DEVICES)
        elif "out-of-place" in body and "in-place" in body:
            self._at(_P_TITLE)
        elif body.startswith("Out of bounds values"):
            st = self._at(_P_FOOTER, repeatable=True)
            m = _OOB_RE.search(body)
            if m:
                st.run.out_of_bounds = int(m.group(1))
                if m.group(2) == "FAILED" or st.run.out_of_bounds > 0:
                    self._issue(st, lineno, body)
        elif body.startswith("Avg bus bandwidth"):
            st = self._at(_P_FOOTER, repeatable=True)
            m = _AVG_RE.search(body)
            if m and _FLOAT_RE.fullmatch(m.group(1)):
                st.run.avg_busbw_gbps = float(m.group(1))
                if m.group(2) == "FAILED":  # below the -C/--check_avg_bw threshold
                    self._issue(st, lineno, body)
        elif body.startswith("Collective test concluded"):
            st = self._any_run()
            st.closed = True
        elif body.startswith("error:"):
            self._issue(self._any_run(), lineno, body)
        else:
            table = _table_of_header(body)
            if table is not None:
                st = self._at(_P_COLUMNS)
                st.columns, st.reader = table

    def _body(self, lineno: int, text: str) -> None:
        st = self.cur
        in_table = st is not None and not st.closed and st.columns is not None
        if not in_table or st.phase not in _TABLE_PHASES or not text[0].isdigit():
            m = _BINARY_RE.search(text)
            if m:
                if st is not None and not st.closed and st.phase < _P_COLUMNS and st.run.collective is None:
                    st.run.collective = m.group(1)
                else:
                    self.hint = m.group(1)
            return
        assert st is not None and st.columns is not None
        if not self.pending and st.reader is not None:
            row = st.reader.read(text)
            if row is not None:
                st.run.rows.append(row)
                st.phase = _P_ROWS
                return
        tokens = text.split()
        if self.pending:
            if self._take(st, self.pending + tokens, self.pending_line):
                return
            self._flush_pending(f"line {lineno} does not continue it")
        if not self._take(st, tokens, lineno):
            expected = len(st.columns)
            self._issue(st, lineno, f"unreadable row ({len(tokens)} fields, {expected} expected): {text[:200]}")

    def _take(self, st: _RunState, tokens: list[str], lineno: int) -> bool:
        """Accept ``tokens`` as a row, or as the start of one; False if they fit neither."""
        specs = st.columns or ()
        values = _convert_all(tokens, specs)
        if values is None:
            return False
        if len(values) < len(specs):
            self.pending, self.pending_line = tokens, lineno
            return True
        row = Row(**{name: v for (name, _), v in zip(specs, values) if name in _ROW_FIELDS})
        st.run.rows.append(row)
        st.phase = _P_ROWS
        self.pending = []
        return True

    def finish(self) -> list[Run]:
        self._flush_pending("the log ends")
        for st in self.states:
            run = st.run
            if st.ranks:
                run.nranks = len(st.ranks)
                run.hosts = list(dict.fromkeys(map(st.ranks.__getitem__, sorted(st.ranks))))
            if not run.rows and not run.errors:
                where = "the log ends" if st is self.states[-1] else "the next run starts"
                run.errors.append(ParseIssue(st.last_line, f"no result rows before {where}"))
        return [st.run for st in self.states]


@contextmanager
def _gc_paused():
    """The cyclic garbage collector paused, and restored as it was. Parsing and writing a big log make hundreds of
    thousands of tuples and strings and no reference cycle; each collection the allocations trigger scans every
    row tuple alive (a tuple subclass is never untracked) and frees none: a third of the time on a 50 MB log."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def parse_text(text: str, source: str) -> list[Run]:
    """Every nccl-tests run found in ``text`` (the stdout of one job), numbered from 0.

    ``source`` names where the text came from (a path) and is copied onto each run.
    """
    with _gc_paused():
        parser = _Parser(source, text)
        i = pos = 0  # the line to read next, and where it starts in the text
        size = len(text)
        while pos < size:
            j, after = parser.read_blocks(i, pos)
            if j == i:  # a line the blocks do not take
                end = text.find("\n", pos)
                end = size if end == -1 else end
                parser.feed(i + 1, text[pos:end])
                j, after = i + 1, end + 1
            i, pos = j, after
        return parser.finish()


def read_log(path: str | Path) -> str:
    """The text of a log file; raises :class:`LogReadError` if it is missing, a directory or not text."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise LogReadError(str(path), "no such file") from None
    except IsADirectoryError:
        raise LogReadError(str(path), "is a directory") from None
    except OSError as exc:
        raise LogReadError(str(path), exc.strerror or str(exc)) from None
    if b"\0" in data:
        raise LogReadError(str(path), "not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # A log is mostly ASCII; a stray non-UTF-8 byte (a host name, a locale) should not lose the results.
        return data.decode("latin-1")


def parse_file(path: str | Path) -> list[Run]:
    """:func:`parse_text` of a file, with the path as the runs' source."""
    return parse_text(read_log(path), str(path))


# --- output forms --------------------------------------------------------------------------------------------

_INT_COLUMNS = ("run", "nranks", "size_bytes", "count", "root", "oop_wrong", "ip_wrong")
_STR_COLUMNS = ("source", "collective", "dtype", "redop")


def runs_to_records(runs: list[Run]) -> list[dict[str, Any]]:
    """One dict per row, keyed by :data:`COLUMNS`."""
    out = []
    for run in runs:
        head = {"source": run.source, "run": run.run, "collective": run.collective, "nranks": run.nranks}
        for row in run.rows:
            out.append({**head, **row._asdict()})
    return out


def runs_to_columns(runs: list[Run]) -> dict[str, list[Any]]:
    """The table column-wise: each of :data:`COLUMNS` as one list of values in row order (None where the log has
    no value). Each run's rows are transposed at once (``zip(*rows)``, in C) onto the columns, its own values
    repeated once per row: no object per row is built. (One ``zip(*rows)`` over every row of a 40 MB log took
    6x longer than one per run.)"""
    cols: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    source, number, collective, nranks = cols["source"], cols["run"], cols["collective"], cols["nranks"]
    body = [cols[name] for name in Row._fields]
    for run in runs:
        n = len(run.rows)
        if not n:
            continue
        source += [run.source] * n
        number += [run.run] * n
        collective += [run.collective] * n
        nranks += [run.nranks] * n
        for col, values in zip(body, zip(*run.rows)):
            col += values
    return cols


def _pandas_metadata() -> bytes:
    """The ``pandas`` schema metadata pandas itself writes for :func:`runs_to_frame`'s dtypes (``to_parquet``), so
    that a table built here reads back into the same DataFrame. Built without importing pandas (its version is read
    from the installed package's metadata); a unit test compares it with pandas' own."""
    import json
    from importlib.metadata import version

    import pyarrow

    def column(name: str) -> dict[str, Any]:
        if name in _INT_COLUMNS:
            pandas_type, numpy_type = "int64", "Int64"
        elif name in _STR_COLUMNS:
            pandas_type, numpy_type = "object", "string"
        else:
            pandas_type, numpy_type = "float64", "float64"
        return {"name": name, "field_name": name, "pandas_type": pandas_type, "numpy_type": numpy_type,
                "metadata": None}

    meta = {"index_columns": [], "column_indexes": [], "columns": [column(c) for c in COLUMNS], "attributes": {},
            "creator": {"library": "pyarrow", "version": pyarrow.__version__}, "pandas_version": version("pandas")}
    return json.dumps(meta).encode()


def runs_to_table(runs: list[Run]):
    """The rows of every run as a ``pyarrow.Table`` with exactly :data:`COLUMNS` (int64, float64, large_string;
    null where the log has no value), built column-wise, with the pandas metadata of :func:`runs_to_frame`'s
    dtypes: ``pyarrow.parquet.write_table`` of it writes what ``runs_to_frame(runs).to_parquet()`` did."""
    import pyarrow as pa

    with _gc_paused():
        columns = runs_to_columns(runs)
    arrays, fields = [], []
    for name in COLUMNS:
        if name in _INT_COLUMNS:
            kind = pa.int64()
        elif name in _STR_COLUMNS:
            kind = pa.large_string()
        else:
            kind = pa.float64()
        # from_pandas: a NaN a log printed ("nan") is null, as pandas made it
        arrays.append(pa.array(columns[name], type=kind, from_pandas=True))
        fields.append(pa.field(name, kind))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata={b"pandas": _pandas_metadata()}))


def runs_to_frame(runs: list[Run]) -> pandas.DataFrame:
    """The rows of every run as a DataFrame with exactly :data:`COLUMNS`: nullable Int64 counts, float64
    times and bandwidths, string text; a value the log does not have is NA/NaN. Built column-wise through
    :func:`runs_to_table` (its pandas metadata gives the dtypes)."""
    return runs_to_table(runs).to_pandas()


def write_parquet(runs: list[Run], path: str | Path) -> None:
    """Write the rows of every run to a parquet file (pyarrow, snappy: as ``DataFrame.to_parquet`` writes it)."""
    import pyarrow.parquet as pq

    pq.write_table(runs_to_table(runs), str(path), compression="snappy")


def write_csv(runs: list[Run], out: TextIO) -> None:
    """Write the rows of every run as csv to ``out``, the text ``runs_to_frame(runs).to_csv(index=False)`` gives:
    a header of :data:`COLUMNS`, minimal quoting, "\n" line ends, an absent value (None, NaN) empty, a float as
    its shortest repr (Python's and numpy's are the same). Column-wise, without pandas."""
    import csv

    with _gc_paused():
        _write_csv(runs, out, csv)


def _write_csv(runs: list[Run], out: TextIO, csv: Any) -> None:
    columns = runs_to_columns(runs)
    for name in COLUMNS:
        if name in _INT_COLUMNS or name in _STR_COLUMNS:
            continue
        col = columns[name]
        # NaN (a log's "nan", parsed by the slow path) is written empty, as pandas writes NaN
        if any(map(math.isnan, filter(partial(is_not, None), col))):
            columns[name] = [None if v is not None and math.isnan(v) else v for v in col]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(zip(*(columns[name] for name in COLUMNS)))


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def runs_to_json(runs: list[Run]) -> dict[str, Any]:
    """``{"runs": [{"source", "run", "collective", "nranks", "avg_busbw_gbps", "errors", "rows"}]}`` (DESIGN.md).

    ``errors`` holds ``{"line", "message"}`` objects; ``rows`` the row columns (not the run's own keys).
    """
    return {
        "runs": [
            {
                "source": run.source,
                "run": run.run,
                "collective": run.collective,
                "nranks": run.nranks,
                "avg_busbw_gbps": _json_value(run.avg_busbw_gbps),
                "errors": [{"line": e.line, "message": e.message} for e in run.errors],
                "rows": [{k: _json_value(v) for k, v in row._asdict().items()} for row in run.rows],
            }
            for run in runs
        ]
    }


# The rows of runs_to_json_text, each an object at depth 4 of the document (json.dumps' indent=2 layout).
_JSON_ROW = "{\n" + ",\n".join(f'{" " * 10}"{name}": %s' for name in Row._fields) + "\n" + " " * 8 + "}"


def _json_scalars(name: str, col: list[Any]) -> list[str]:
    """Each value of the row column ``name`` as json.dumps writes it (None, NaN and infinities as null, as
    _json_value)."""
    if name in _STR_COLUMNS:
        from json import encoder

        enc = encoder.encode_basestring_ascii
        return ["null" if v is None else enc(v) for v in col]
    out = list(map(repr, col))  # json.dumps writes a number as its repr (no column holds a bool)
    if "None" in out or "nan" in out or "inf" in out or "-inf" in out:
        out = ["null" if v in ("None", "nan", "inf", "-inf") else v for v in out]
    return out


def runs_to_json_text(runs: list[Run]) -> str:
    """``json.dumps(runs_to_json(runs), indent=2) + "\n"``, the same text, with the rows written column-wise.

    json's encoder is written in Python once it indents (its C encoder does not), at ~1 us per value: 3 s for the
    rows of a 40 MB log. Here each row column of the whole table is encoded at once (``repr`` is what json writes
    for a number) and the rows laid out from one template; the rest of the document goes through json.dumps,
    each run's rows replaced by a placeholder first (no log holds a NUL: read_log refuses one)."""
    with _gc_paused():
        return _json_text(runs)


def _json_text(runs: list[Run]) -> str:
    import json

    doc = runs_to_json([Run(r.source, r.run, r.collective, r.nranks, r.hosts, r.avg_busbw_gbps, r.out_of_bounds,
                            [], r.errors) for r in runs])
    columns = runs_to_columns(runs)
    if not columns["source"]:
        return json.dumps(doc, indent=2) + "\n"
    rows = list(map(_JSON_ROW.__mod__, zip(*[_json_scalars(name, columns[name]) for name in Row._fields])))
    blocks: list[str] = []
    at, sep = 0, ",\n" + " " * 8
    for run, entry in zip(runs, doc["runs"]):
        n = len(run.rows)
        if n:
            entry["rows"] = f"\0{len(blocks)}\0"
            blocks.append("[\n" + " " * 8 + sep.join(rows[at : at + n]) + "\n" + " " * 6 + "]")
            at += n
    parts = re.split(r'"\\u0000(\d+)\\u0000"', json.dumps(doc, indent=2))
    for i in range(1, len(parts), 2):
        parts[i] = blocks[int(parts[i])]
    return "".join(parts) + "\n"
