"""`run.json`, the run manifest beside `results.jsonl`: machine and version fingerprint,
settings, the recorded request, each runtime's probed capabilities and overheads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.errors import ResultsError
from harness.results.rows import existing_run_dir

MANIFEST = "run.json"

#: the capabilities `membench probe` measures, in the order the manifest and reports list them
CAPABILITIES = ("imported-memory", "exported-memory", "multi-memory", "shared-memory",
                "simd128", "relaxed-simd", "bulk-memory", "memory64", "host-func-import")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = existing_run_dir(run_dir) / MANIFEST
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{run_dir} is not a run directory (no {MANIFEST})") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:  # bad JSON or bad UTF-8
        raise ResultsError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ResultsError(f"{path} is not a run manifest (expected a JSON object)")
    return obj
