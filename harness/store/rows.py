"""Results: JSON rows appended to `results.jsonl`, each fsync'd before the next worker starts.

Rows are frozen records; `run.json` beside them holds the run manifest. `read_rows`
tolerates a truncated last line (a run killed mid-write) and says so.

Row kinds (`ResultRow.kind`):

* `round`    — one worker's measurement of one cell in one round (written as soon as the
               worker ends: the durable record; a killed run keeps every finished round);
* `cell`     — the cell's final row, combining all its rounds (all samples, in round
               order); exactly one per cell. Written after the last round, or at once when
               a round fails (a failed cell is not run again);
* `noop`     — the final row of a runtime's calibration cell (one empty wasm call per
               inference): the timer + embedding floor;
* `baseline` — an empty-plan worker per runtime, run once: the memory baseline;
* `counts`   — a cell's instructions per inference (`--measure insts`), counted after the
               timed rounds (`harness.run.insts`); `read_rows` folds its metrics into the
               cell's (or noop's) final row.

`read_rows` returns only `cell` rows unless asked, so readers see one row per cell; `harness.run.rounds.combine_rounds` rebuilds a `cell` row from its `round` rows.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from harness.core.errors import ResultsError
from harness.core.protocol import _default

RESULTS = "results.jsonl"

#: a cell whose median is under this many noop medians is dominated by overhead
#: (`ResultRow.overhead_dominated`; `harness.run.calibration` says how the noop is measured)
OVERHEAD_FACTOR = 10.0

STATUSES = ("ok", "invalid", "trapped", "crashed", "oom", "timeout", "unsupported",
            "unavailable", "skipped")


class CellKey(NamedTuple):
    """What names a cell across runs: compare, stability and reports match rows by it
    (the side of an A/B run is kept apart: `ResultRow.side`)."""

    workload: str
    strategy: str
    runtime: str

    def __str__(self) -> str:
        return " | ".join(self)


@dataclass(frozen=True)
class ResultRow:
    """One cell's outcome (or one round of it). Timings mean something only when `status == "ok"`.

    `samples_s` are raw per-inference seconds, never summarised away: for a `cell` row,
    every round's samples concatenated in round order (`rounds[i]["n"]` of them from round
    i). `rounds` holds per-round details (cell order position, calibration, warm-up,
    phases, memory); `stats` the summary of all samples (see `harness.analysis.stats.Summary`).
    `overhead_s` is the runtime's `noop` median; `overhead_dominated` is true when the
    cell's median is under `OVERHEAD_FACTOR` × that. `memory` carries `*_over_baseline`
    figures relative to the runtime's empty-plan worker.
    """

    run_id: str
    workload: str
    strategy: str
    runtime: str
    status: str
    reason: str = ""
    kind: str = "cell"
    side: str = ""  # "A" / "B" in an A/B run
    round: int | None = None
    median_s: float | None = None
    samples_s: tuple[float, ...] = ()
    inner: int = 0
    phases: dict[str, Any] = field(default_factory=dict)
    bytes_copied_per_run: int | None = None
    host_calls_per_run: int | None = None
    calls_per_run: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    expected_counts: dict[str, int] = field(default_factory=dict)
    max_abs_err: float | None = None
    err_index: tuple[int, ...] = ()
    err_tensor: str = ""
    tolerance: dict[str, float] = field(default_factory=dict)
    flops: int = 0
    compulsory_bytes: int = 0
    memory: dict[str, int] = field(default_factory=dict)
    runtime_info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    timing: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, float] = field(default_factory=dict)
    rounds: tuple[dict[str, Any], ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    overhead_s: float | None = None
    overhead_dominated: bool | None = None

    @property
    def key(self) -> CellKey:
        return CellKey(self.workload, self.strategy, self.runtime)

    @property
    def cell(self) -> str:
        return str(self.key)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cell"] = self.cell
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResultRow:
        """A row from its JSON object; ResultsError when a field is missing or of the wrong
        type (unknown keys are ignored, so newer files stay readable)."""
        if not isinstance(d, dict):
            raise ResultsError(f"malformed result row: expected an object, got {type(d).__name__}")
        known: dict[str, Any] = {}
        for name, f in cls.__dataclass_fields__.items():
            if name in d:
                known[name] = _checked(name, str(f.type), d[name])
        try:
            return cls(**known)
        except TypeError as exc:
            raise ResultsError(f"malformed result row: {exc}") from None


_SCALARS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "Any": lambda v: True,
}


def _checked(name: str, annotation: str, value: Any) -> Any:
    """`value` if it fits the field's annotation (lists become tuples); else ResultsError."""
    for alt in (a.strip() for a in annotation.split("|")):
        if alt == "None":
            if value is None:
                return None
        elif alt.startswith("tuple["):
            item = alt[len("tuple["):].split(",")[0].split("[")[0].strip()
            check = _SCALARS.get(item, _SCALARS["Any"])
            if isinstance(value, (list, tuple)) and all(check(v) for v in value):
                return tuple(value)
        elif _SCALARS.get(alt.split("[")[0], _SCALARS["Any"])(value):
            return value
    raise ResultsError(f"malformed result row: field {name!r} should be {annotation}, "
                       f"got {type(value).__name__}")


class ResultsWriter:
    """Appends rows to a JSONL file; each row is flushed and fsync'd before returning.

    The writer holds an exclusive lock on the file (two processes appending to one run
    would interleave), and first repairs an unfinished last line left by a killed writer
    so the next row starts on a line of its own."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._repair_tail()
            self._f: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open across appends
        except OSError as exc:
            raise ResultsError(f"cannot write results to {self.path}: {exc.strerror}") from None
        try:
            import fcntl

            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not on POSIX
            pass
        except OSError:
            self._f.close()
            raise ResultsError(f"{self.path} is being written by another membench process") \
                from None

    def _repair_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            try:
                complete = isinstance(json.loads(data[start:]), dict)
            except (ValueError, RecursionError):
                complete = False
            if complete:  # a whole row that lost only its newline
                f.write(b"\n")
            else:
                f.truncate(start)
                warnings.warn(f"{self.path}: removed an unfinished last line "
                              f"({len(data) - start} bytes) left by an interrupted run",
                              stacklevel=3)
            f.flush()
            os.fsync(f.fileno())

    def append(self, row: ResultRow) -> None:
        """Append one row and make it durable (fsync) before returning."""
        try:
            self._f.write(json.dumps(row.to_dict(), default=_default, allow_nan=True) + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:  # disk full, file system gone read-only, ...
            raise ResultsError(f"cannot append to {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON object of each valid line. Lines that are not a JSON object (a
    truncated last line from a killed run, garbage) are skipped with one warning per file."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"no results file at {path}")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    last = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    bad: list[int] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError, huge ints, deep nesting
            obj = None
        if not isinstance(obj, dict):
            bad.append(n)
            continue
        yield obj
    if bad:
        _warn_skipped(path, bad, last)


def _warn_skipped(path: Path, bad: list[int], last: int) -> None:
    if bad == [last] and last > 1:
        what = f"a truncated last line (line {last})"
    else:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        what = f"{len(bad)} malformed line{'s' if len(bad) > 1 else ''} ({shown})"
    warnings.warn(f"{path}: skipped {what}; read the valid rows", stacklevel=3)


def ensure_out_dir(path: Path, option: str = "--out") -> Path:
    """Create (if needed) a directory outputs will be written to, or say why it cannot be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ResultsError(f"{option} {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"{option} {path}: cannot create directory: "
                           f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ResultsError(f"{option} {path}: directory is not writable")
    return path


def existing_run_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a run directory (not a directory)"
                           if run_dir.exists() else f"no run directory {run_dir}")
    return run_dir


#: every row kind, in the order a run writes them
KINDS = ("baseline", "round", "noop", "cell", "counts")


def read_rows(run_dir: Path, kinds: tuple[str, ...] = ("cell",)) -> list[ResultRow]:
    """The rows of a run whose kind is in `kinds`: by default one row per cell.

    `kinds=KINDS` returns everything (calibration rows and per-round rows too). Unless
    `counts` is asked for, each `counts` row's metrics are folded into the final row
    (`cell` or `noop`) of its cell and side.
    """
    run_dir = existing_run_dir(run_dir)
    if not (run_dir / RESULTS).exists():
        raise ResultsError(f"{run_dir} is not a run directory (no {RESULTS})")
    rows, bad = [], []
    counted: dict[tuple[CellKey, str], dict[str, Any]] = {}
    for obj in iter_rows(run_dir / RESULTS):
        kind = obj.get("kind", "cell")
        fold = kind == "counts" and "counts" not in kinds
        if kind not in kinds and not fold:
            continue
        try:
            row = ResultRow.from_dict(obj)
        except ResultsError as exc:
            bad.append(str(exc))
            continue
        if fold:
            counted.setdefault((row.key, row.side), {}).update(row.metrics)
        else:
            rows.append(row)
    if bad:
        warnings.warn(f"{run_dir / RESULTS}: skipped {len(bad)} row{'s' if len(bad) > 1 else ''}"
                      f" ({bad[0]})", stacklevel=2)
    return fold_counts(rows, counted)


def fold_counts(rows: Sequence[ResultRow],
                counted: Mapping[tuple[CellKey, str], Mapping[str, Any]]) -> list[ResultRow]:
    """`rows` with the metrics of each cell's `counts` row (by cell and side) in its final
    row (`cell` or `noop`)."""
    return [replace(r, metrics={**r.metrics, **counted[(r.key, r.side)]})
            if r.kind in ("cell", "noop") and (r.key, r.side) in counted else r for r in rows]
