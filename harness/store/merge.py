"""Merging shards (`membench run --shard I/N`) of one suite into one run.

Shards must come from the same suite, git commit and kind of machine; anything else is
refused with the reason unless the caller allows mixing. A cell present in two shards is
an error (shards partition the cells).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import MembenchError
from harness.core.protocol import write_json_atomic
from harness.store.manifest import MANIFEST, read_manifest
from harness.store.rows import RESULTS, ResultsWriter, iter_rows


def _signature(m: dict[str, Any]) -> dict[str, Any]:
    fp = m.get("fingerprint", {})
    return {"suite": m.get("suite"), "commit": (fp.get("git") or {}).get("commit"),
            "machine": fp.get("machine_id")}


def merge_runs(run_dirs: Sequence[Path], out_dir: Path, allow_mixed: bool = False) -> Path:
    """Write one run directory holding every shard's cells; return it."""
    if len(run_dirs) < 2:
        raise MembenchError("merge needs at least two run directories")
    manifests = [read_manifest(d) for d in run_dirs]
    sigs = [_signature(m) for m in manifests]
    for field in ("suite", "commit", "machine"):
        values = {s[field] for s in sigs}
        if len(values) > 1 and not allow_mixed:
            raise MembenchError(f"shards differ in {field}: {sorted(map(str, values))}; "
                                "pass --allow-mixed to merge anyway")
    shards = [m.get("shard") for m in manifests]
    notes = []
    counts: set[int] = {int(s["count"]) for s in shards if isinstance(s, dict) and "count" in s}
    if len(counts) > 1 and not allow_mixed:
        raise MembenchError(f"shards come from different splits: {sorted(map(str, counts))}")
    if len(counts) == 1:
        (n,) = counts
        have = sorted(s["index"] for s in shards if isinstance(s, dict))
        missing = sorted(set(range(1, int(n) + 1)) - set(have))
        if missing:
            notes.append(f"shards {missing} of {n} are missing")
    run_id = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S-merged")
    target = Path(out_dir) / run_id
    try:
        target.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise MembenchError(f"cannot create {target}: {exc.strerror or exc}") from None
    seen: dict[tuple[str, str, str, str], Path] = {}
    rows = []
    for d in run_dirs:
        for row in iter_rows(Path(d) / RESULTS):
            key = (str(row.get("kind", "cell")), str(row.get("workload")),
                   str(row.get("strategy")), str(row.get("runtime")))
            if key in seen and key[0] == "cell":
                raise MembenchError(f"cell {' | '.join(key[1:])} appears in both {seen[key]} "
                                    f"and {d}: shards must partition the cells")
            seen[key] = Path(d)
            rows.append({**row, "run_id": run_id})
    from harness.store.rows import ResultRow

    with ResultsWriter(target / RESULTS) as w:
        for row in rows:
            w.append(ResultRow.from_dict(row))
    base = dict(manifests[0])
    base.update({
        "run_id": run_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "merged_from": [{"run_id": m.get("run_id"), "shard": m.get("shard"),
                         "signature": s} for m, s in zip(manifests, sigs, strict=True)],
        "cells_planned": sum(int(m.get("cells_planned", 0)) for m in manifests),
        "cells_done": sum(1 for r in rows if r.get("kind", "cell") == "cell"),
        "status": "complete" if all(m.get("status") == "complete" for m in manifests)
        and not notes else "partial",
        "merge_notes": notes,
    })
    base.pop("shard", None)
    runtimes: dict[str, Any] = {}
    for m in manifests:
        runtimes.update(m.get("runtimes", {}))
    base["runtimes"] = runtimes
    write_json_atomic(target / MANIFEST, json.loads(json.dumps(base)))
    return target
