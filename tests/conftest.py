"""Shared fixtures: registries from entry points, quick measurement settings."""

from __future__ import annotations

import pytest

from harness.run.request import Registries
from harness.worker.measure import MeasureSettings


@pytest.fixture(scope="session")
def regs() -> Registries:
    return Registries.from_entry_points()


@pytest.fixture(scope="session")
def quick_settings() -> MeasureSettings:
    return MeasureSettings(warmup_s=0.0, warmup_runs=1, sample_s=0.0005, samples=3)
