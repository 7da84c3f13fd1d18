"""The harness's own error types.

Every error a user can cause (a typo in a spec, an impossible shape, a missing suite)
is a `MembenchError`: the CLI prints its message on one line and exits 2. Anything
else escaping is a bug in the harness.
"""

from __future__ import annotations


class MembenchError(Exception):
    """Base class: a problem the user can fix, reported as one line (exit status 2)."""


class SpecError(MembenchError):
    """A malformed `name:key=value,...` spec or an invalid parameter value."""


class UnknownNameError(SpecError):
    """A plugin or parameter name that is not registered; the message lists valid names."""


class ShapeError(MembenchError):
    """A workload whose shapes are impossible (non-positive, over the wasm32 limit, ...)."""


class PlanError(MembenchError):
    """A plan that is internally inconsistent (unknown memory, region out of bounds, ...)."""


class SuiteError(MembenchError):
    """A suite TOML that is missing or malformed."""


class ResultsError(MembenchError):
    """A results directory or file that cannot be read or written."""


class WorkerProtocolError(MembenchError):
    """A worker answered with something that is not a valid protocol message."""


class Unsupported(Exception):
    """A strategy cannot express this workload (or needs what no runtime offers); also
    raised by code generation when a kernel cannot take the memory form a strategy asks
    for (a C kernel has one memory: no multi-memory, no host calls).

    Not a user error: the cell is reported `unsupported` with this message as the reason.
    """


class ToolUnavailable(Unsupported):
    """A tool a workload's modules are built with is missing on this machine (clang for
    `toolchain=clang`): the cell is `unavailable`, the message says how to install it."""
