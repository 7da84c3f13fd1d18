"""What a run leaves on disk and everyone after it reads: `rows` (the `ResultRow` schema,
the append-only `results.jsonl` writer and reader, the overhead flag), `manifest` (`run.json`
and the capability list it records) and `merge` (shards of one run joined).

May import `harness.core` only: reports and analysis read results without the run.
"""
