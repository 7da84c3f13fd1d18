"""Independent requests in one inference: what a plan that serves a batch of requests at once
(a strategy's `threads=N,split=batch`, one request per agent) reads, writes and is checked
against.

Request 0 is the workload's own tensors. Request i > 0 has inputs, intermediates and outputs
of its own, named `<tensor>@<i>`, with inputs drawn from a stream of their own (so a request
that read another's input is caught by verification), and shares the weights. Each
request's outputs are checked against the NumPy reference of its own inputs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.plugins.workload import Workload, tensor_rng


def request_name(tensor: str, request: int) -> str:
    """Request `request`'s copy of `tensor` (request 0 and weights keep the plain name)."""
    return tensor if request == 0 else f"{tensor}@{request}"


def request_data(workload: Workload, seed: int, requests: int = 1) -> dict[str, np.ndarray]:
    """The workload's data (`Workload.generate`) plus the inputs of requests 1.. ."""
    data = workload.generate(seed)
    for i in range(1, requests):
        for t in workload.by_role("input"):
            name = request_name(t.name, i)
            data[name] = workload.generate_tensor(t, tensor_rng(seed, name))
    return data


def request_reference(workload: Workload, data: Mapping[str, np.ndarray],
                      requests: int = 1) -> dict[str, np.ndarray]:
    """Every output of requests 0 .. requests-1, each from its own inputs and the weights."""
    out: dict[str, np.ndarray] = {}
    weights = {t.name: data[t.name] for t in workload.by_role("weight")}
    for i in range(requests):
        own = {t.name: data[request_name(t.name, i)] for t in workload.by_role("input")}
        ref = workload.reference({**weights, **own})
        out.update({request_name(name, i): v for name, v in ref.items()})
    return out


def output_names(workload: Workload, requests: int = 1) -> list[str]:
    """The outputs a plan serving `requests` requests reads back, in request order."""
    return [request_name(t.name, i) for i in range(requests) for t in workload.by_role("output")]


def output_tensor(name: str) -> str:
    """The workload tensor a request's output is a copy of (`c@2` -> `c`)."""
    return name.split("@", 1)[0]
