"""HTML rendering: the jinja2 template `report.html.j2` with autoescaping on.

Everything that comes from a run (names, reasons, fingerprint values) reaches the page
only through template expressions, so it is escaped; the only markup is the template's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.core.fmt import fmt_bytes, fmt_time

TEMPLATE = "report.html.j2"


def fmt_ratio(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "–"
    return f"{r:.2f}×"


def fmt_slower(r: float | None) -> str:
    """1.8 -> '+80%'; 0.9 -> '−10%'."""
    if r is None or not math.isfinite(r):
        return "–"
    pct = (r - 1) * 100
    return f"+{pct:.0f}%" if pct >= 0 else f"−{-pct:.0f}%"


def fmt_opt_time(s: float | None) -> str:
    return "–" if s is None or not math.isfinite(s) else fmt_time(s)


def fmt_int(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else "–"


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update({"time": fmt_opt_time, "ratio": fmt_ratio, "slower": fmt_slower,
                        "int": fmt_int, "bytes": fmt_bytes})
    return env


def render(context: dict[str, Any]) -> str:
    return str(environment().get_template(TEMPLATE).render(**context))
