"""Memory strategies, one module each, registered through the `membench.strategies` entry point.

May import `harness.core`, `harness.codegen` and `harness.plugins` only: a strategy turns a
workload into a `Plan`, and never knows which runtime will execute it.
"""
