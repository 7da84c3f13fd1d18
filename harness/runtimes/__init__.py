"""Runtimes: a parent-side `Runtime` plugin (how to start its worker, what it can do) and,
for runtimes embedded in Python, an in-worker `Backend` that the generic plan executor drives."""
