"""wasm-membench core: plans, code generation, runtimes, workers, measurement and results.

The data flow is one-directional (see DESIGN.md): workloads -> strategies -> Plan ->
runtime worker -> results -> reports. Nothing in this package imports a particular
strategy, workload or runtime by name; plugins arrive through entry points.
"""

__version__ = "0.1.0"
