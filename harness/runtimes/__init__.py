"""Runtimes: a parent-side `Runtime` plugin (how to start its worker, what it can do) and,
for runtimes embedded in Python, an in-worker `Backend` that the generic plan executor drives.
Also the host-function catalogue (`hostfuncs`) and the worker environments (`venvs`,
`wasmer_env`). The JavaScript worker (`v8_*.js`) mirrors `harness.worker` for V8.

May import `harness.core` and `harness.plugins`: a runtime executes plans, whatever made them.
"""
