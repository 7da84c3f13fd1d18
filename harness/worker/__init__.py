"""The worker process and its boundary. Inside a worker: `main` (`python -m harness.worker
REQUEST.json`: one request, one response), `measure` (timing loops), `lockstep` (the
worker's side of a paired sample gate). On the parent's side of the boundary: `launch`
(start, pin, limit, kill a worker and read its response). `inprocess` runs the same
executor without a process, for tests and benchmarks.

May import `harness.core`, `harness.plugins` and `harness.runtimes`.
"""
