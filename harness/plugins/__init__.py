"""The contracts every plugin is written against: specs and parameters, the registry, the
`Workload`, the `Strategy`, the `Plan` it produces (pure data, the only thing a runtime
sees), the wasm binary reader, the tensor allocator and output verification.

May import `harness.core` and `harness.codegen`. Workloads, strategies and runtimes build
on this package; nothing here knows any of them by name.
"""
