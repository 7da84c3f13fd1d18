"""What the standalone worker asks of a program back end (C via wasm2c, or a linked WASI
module run by an engine): one narrow interface, so the worker's protocol, crash handling
and responses are written once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.plugins.plan import Plan
from harness.worker.measure import MeasureSettings


@dataclass(frozen=True)
class Death:
    """The program ended without a report: who it was running (an index into `which`,
    None when it cannot say), why, and the status a variant that dies alone gets."""

    blamed: int | None
    why: str
    status: str = "crashed"


class ProgramBackend(Protocol):
    def prepare(self, plan: Plan) -> dict[str, float]:
        """Check that this back end can run `plan` (raise RuntimeUnsupported with the
        reason) and build what can be built alone; the seconds each module took to build."""

    def build(self, plans: Sequence[Plan], tensors: dict[str, str], settings: MeasureSettings,
              mode: str, slowdown: float) -> None:
        """Build the program of `plans` (kept for `execute`), raising what building it
        raises: the runner then finds which variants fail to build alone."""

    def execute(self, plans: Sequence[Plan], tensors: dict[str, str],
                settings: MeasureSettings, mode: str, slowdown: float, out: Path,
                timeout_s: float | None) -> dict[str, Any] | Death:
        """Run the program of `plans` (mode `measure` or `once`): program.json's shape
        (`peak_rss`, `variants`), each variant's outputs written into `out` as the file
        its entry names; or how the program died."""

    def info(self) -> dict[str, Any]:
        """The runtime's version and configuration, for every row."""
