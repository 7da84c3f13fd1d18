"""`mlp-digits`: a real classifier — a 64-32-10 MLP trained in NumPy on scikit-learn's bundled
8×8 digits (no network access), run as two dense dispatches (one module each).

Training is deterministic: a stratified 80/20 split with a fixed seed, He initialisation
from a fixed seed, full-precision (float64) mini-batch Adam. The cell's input is the whole
held-out test set; besides the usual tolerance check the cell reports

* `top1_agreement`: the fraction of test images whose wasm argmax equals NumPy's (must be 1.0),
* `test_accuracy`: the wasm outputs' accuracy against the true labels (≥ 0.95).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from harness.core.errors import MembenchError
from harness.plugins.params import Param
from workloads.models.mlp import MlpWorkload

SIZES = (64, 32, 10)


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise MembenchError("mlp-digits needs scikit-learn (its bundled digits data set): "
                            "pip install 'wasm-membench[models]'") from None

    ds = load_digits()
    x = (ds.data / 16.0).astype(np.float64)
    return tuple(train_test_split(x, ds.target, test_size=0.2, random_state=0,  # type: ignore[return-value]
                                  stratify=ds.target))


def train_mlp(x: np.ndarray, y: np.ndarray, sizes: tuple[int, ...], seed: int, epochs: int = 60,
              batch: int = 32, lr: float = 3e-3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mini-batch Adam on softmax cross-entropy; returns [(W, b), ...] in float64."""
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((a, b)) * np.sqrt(2.0 / a), np.zeros(b))
              for a, b in itertools.pairwise(sizes)]
    flat = [p for wb in params for p in wb]
    m = [np.zeros_like(p) for p in flat]
    v = [np.zeros_like(p) for p in flat]
    onehot = np.eye(sizes[-1])[y]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            acts = [x[idx]]
            for i, (w, b) in enumerate(params):
                z = acts[-1] @ w + b
                acts.append(np.maximum(z, 0.0) if i < len(params) - 1 else z)
            logits = acts[-1]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            delta = (p - onehot[idx]) / len(idx)
            grads: list[np.ndarray] = []
            for i in range(len(params) - 1, -1, -1):
                w, _ = params[i]
                grads[:0] = [acts[i].T @ delta, delta.sum(axis=0)]
                if i:
                    delta = (delta @ w.T) * (acts[i] > 0)
            step += 1
            for j, g in enumerate(grads):
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                mh, vh = m[j] / (1 - 0.9**step), v[j] / (1 - 0.999**step)
                flat[j] -= lr * mh / (np.sqrt(vh) + 1e-8)
            params = [(flat[2 * k], flat[2 * k + 1]) for k in range(len(params))]
    return params


class MlpDigitsWorkload(MlpWorkload):
    NAME = "mlp-digits"
    DESCRIPTION = "64-32-10 MLP trained in NumPy on scikit-learn's digits; reports accuracy"
    PARAMS: ClassVar[tuple[Param, ...]] = (Param("seed", "int", 0, "training seed", minimum=0),)

    @property
    def widths(self) -> list[int]:
        return list(SIZES)

    @cached_property
    def _trained(self) -> dict[str, Any]:
        x_train, x_test, y_train, y_test = _digits()
        params = train_mlp(x_train, y_train, SIZES, seed=self.params["seed"])
        return {"x_test": x_test, "y_test": y_test, "params": params}

    def batch(self) -> int:
        return len(self._trained["x_test"])

    def generate(self, seed: int) -> dict[str, np.ndarray]:
        """The test set and the trained weights (the data seed does not apply: real data)."""
        data = {"x": self._trained["x_test"].astype(np.float32)}
        for i, (w, b) in enumerate(self._trained["params"]):
            data[f"w{i}"] = w.astype(np.float32)
            data[f"b{i}"] = b.astype(np.float32)
        return data

    def metrics(self, data: Mapping[str, np.ndarray],
                outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        got = outputs["y"].argmax(axis=1)
        want = self.reference(data)["y"].argmax(axis=1)
        labels = self._trained["y_test"]
        return {"top1_agreement": float((got == want).mean()),
                "test_accuracy": float((got == labels).mean()),
                "numpy_accuracy": float((want == labels).mean())}
