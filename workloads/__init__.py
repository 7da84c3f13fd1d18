"""ML workloads: kernel families (`kernels/`) and multi-dispatch models (`models/`).

May import `harness.core`, `harness.codegen` and `harness.plugins` only: a kernel is written
once against the builder and never names a strategy or a runtime.
"""
