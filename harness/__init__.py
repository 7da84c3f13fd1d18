"""wasm-membench core: plans, code generation, runtimes, workers, measurement and results.

The data flow is one-directional (see DESIGN.md): workloads -> strategies -> Plan ->
runtime worker -> results -> reports. Nothing in this package imports a particular
strategy, workload or runtime by name; plugins arrive through entry points.

Its folders, ground floor first (a folder imports only its own and lower floors; the
table is `LAYERS` in tests/test_architecture.py): core, codegen, plugins, runtimes,
worker, results, analysis, probes, run, cli. README's "Layout" maps them.
"""

__version__ = "0.1.0"
