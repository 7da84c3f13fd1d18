"""Models as multi-executable pipelines: each dispatch is its own module."""
