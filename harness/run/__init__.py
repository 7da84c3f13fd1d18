"""The parent side of a run, top to bottom: `request` (what a run is asked to do: cells,
settings, plugin registries), `suite` (TOML suites), `pipeline` (the run's stages), the
stages' pieces (`schedule`, `cell`, `pair`, `external`, `rounds`, `calibration`), `resume`,
`shard`, `ab`, `interrupt` (Ctrl-C and signals) and `pytest_bench` (importing
pytest-benchmark's JSON as a run).

May import every package below it: core, codegen, plugins, runtimes, worker, results,
analysis, probes. Never reports or cli.
"""
