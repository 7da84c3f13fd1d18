"""Where the checkout is: the root that holds `suites/`, the worker environments and `.git`."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
