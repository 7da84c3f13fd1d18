"""`run.json`, the run manifest beside `results.jsonl`: machine and version fingerprint,
settings, the recorded request, each runtime's probed capabilities and overheads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.core.errors import ResultsError
from harness.store.rows import existing_run_dir

MANIFEST = "run.json"

#: the capabilities `membench probe` measures, in the order the manifest and reports list them
CAPABILITIES = ("imported-memory", "exported-memory", "multi-memory", "shared-memory",
                "threads",
                "simd128", "relaxed-simd", "bulk-memory", "memory64", "memory64-4gib",
                "custom-page-sizes",
                "tail-call", "host-func-import", "instance-func-import", "module-image")


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


def requested_runtimes(manifest: Mapping[str, Any], present: Iterable[str]) -> list[str]:
    """The runtimes among `present` in the order the run's request listed them (rows arrive
    in a shuffled order), then any others in the order given."""
    asked = [c[2] for c in (manifest.get("request") or {}).get("cells", [])
             if isinstance(c, list) and len(c) == 3]
    present = list(dict.fromkeys(present))
    return [rt for rt in dict.fromkeys([*asked, *present]) if rt in present]
