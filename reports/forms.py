"""Strategy forms against their base strategy on the same workload and engine: Binaryen's
multi-memory lowering (`lowered=1`) against native multi-memory, and one-byte pages
(`page=1`) against wasm's 64 KiB pages, and 64-bit memories (`memory64=1`) against 32-bit
ones; each with its time ratio (paired: two strategies
of a workload are one comparison group) and the linear memory each commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.strategies import CellName, ratio_of, twin_rows
from harness.plugins.spec import without_param
from harness.store.rows import ResultRow

#: a form: the parameter, the values that make it, and what it trades
FORMS = (("lowered", ("1", "true", "yes"), "one memory instead of several"),
         ("page", ("1",), "one-byte pages instead of 64 KiB"),
         ("memory64", ("1", "true", "yes"), "64-bit memories and i64 addresses instead of 32-bit"))


@dataclass(frozen=True)
class FormPair:
    workload: str
    runtime: str
    strategy: str              # the form (e.g. multi-memory:lowered=1)
    base: str                  # the strategy without it
    what: str
    ratio: float               # the form's time over the base's (> 1: slower)
    ci_low: float
    ci_high: float
    verdict: str
    paired: bool
    base_bytes: int | None     # linear bytes committed after the inferences
    form_bytes: int | None


def base_of(strategy: str) -> tuple[str, str] | None:
    """The base strategy of a form's spec and what the form trades (None: not a form)."""
    for key, values, what in FORMS:
        base = without_param(strategy, key, values)
        if base is not None:
            return base, what
    return None


def form_pairs(rows: Sequence[ResultRow], seed: int = 0) -> list[FormPair]:
    """Every ok form cell against its base where the engine ran both."""
    def twin(cell: CellName) -> CellName | None:
        got = base_of(cell[1])
        return None if got is None else (cell[0], got[0], cell[2])

    out = []
    for base, row in twin_rows(rows, twin):
        q = ratio_of(base, row, seed=seed)
        what = base_of(row.strategy)
        assert what is not None
        out.append(FormPair(row.workload, row.runtime, row.strategy, base.strategy, what[1],
                            q.ratio, q.ci_low, q.ci_high, q.verdict, q.paired,
                            base.memory.get("linear_bytes"), row.memory.get("linear_bytes")))
    return out
