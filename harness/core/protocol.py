"""The worker protocol: one JSON request file in, one JSON response file out.

Language-neutral on purpose (the V8 worker is plain JavaScript): tensors travel as raw
little-endian files next to the request, the plan as JSON with base64 wasm bytes. The
response is written atomically, so a worker that dies mid-write leaves no response and
the harness reports the death instead of half a result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

PROTOCOL = 1
REQUEST = "request.json"
RESPONSE = "response.json"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to `path` via a temp file + fsync + rename: readers see all or nothing."""
    write_text_atomic(path, json.dumps(obj, indent=1, default=_default))


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to `path` via a temp file + fsync + rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, frozenset, tuple)):
        return sorted(o) if isinstance(o, (set, frozenset)) else list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def save_tensors(directory: Path, tensors: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Raw little-endian files, one per tensor; returns the request's `inputs` entry."""
    out = {}
    for name, arr in tensors.items():
        path = Path(directory) / f"in_{name}.bin"
        np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tofile(path)
        out[name] = {"path": str(path), "dtype": str(arr.dtype), "shape": list(arr.shape)}
    return out


def load_tensors(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The tensors `save_tensors` wrote, each read into memory aligned as host buffers are
    (`aligned_bytes`)."""
    out = {}
    for name, e in entries.items():
        dtype = np.dtype(e["dtype"]).newbyteorder("<")
        raw = aligned_bytes(os.path.getsize(e["path"]))
        with open(e["path"], "rb") as f:
            f.readinto(raw.data)
        out[name] = raw.view(dtype).reshape(e["shape"])
    return out


#: host buffers start on this boundary, so every copy between host and wasm memory takes
#: the same path through memcpy in every process (its instructions, and its speed, depend
#: on its operands' alignment; malloc's would depend on what the process allocated before)
HOST_ALIGN = 64


def aligned_bytes(nbytes: int, align: int = HOST_ALIGN) -> np.ndarray:
    """A zeroed uint8 array of `nbytes` whose data starts on an `align`-byte boundary."""
    raw = np.zeros(nbytes + align, dtype=np.uint8)
    start = -int(raw.ctypes.data) % align
    return raw[start:start + nbytes]


def aligned_copy(a: np.ndarray, align: int = HOST_ALIGN) -> np.ndarray:
    """A C-contiguous copy of `a` whose data starts on an `align`-byte boundary."""
    out = aligned_bytes(a.nbytes, align).view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def read_response(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / RESPONSE
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
