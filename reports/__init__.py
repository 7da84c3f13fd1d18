"""Reports: HTML and PNG from results, comparison of runs.

Reads results only: may import `harness.core`, `harness.store` and `harness.analysis`,
never the run, the probes or the runtimes (what a report shows is what the rows say).
"""
