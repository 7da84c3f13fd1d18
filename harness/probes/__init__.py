"""Facts about the machine and the runtimes, measured before or beside the cells: `probe`
(capabilities, by running tiny modules), `overhead` (the embedding's own call costs),
`estimate` (per-call and per-byte costs that price a plan before it runs), `fingerprint`
(machine and versions), `interference` (host noise) and `isolation` (does a strategy
contain a stray access?).

May import everything below `harness.run`: core, codegen, plugins, runtimes, worker (to
launch its probes), results.
"""
