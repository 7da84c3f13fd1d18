"""pytest-benchmark settings for `pytest benchmarks`: keep the raw timings in saved runs.

`membench import-pytest-benchmark` needs every round's time (not only the summary) to
compute the same bootstrap intervals and tests as the harness does for its own runs.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "benchmark_save_data"):
        config.option.benchmark_save_data = True
