"""Top-1 accuracy of a model over a labelled data set, batched: what ``qonnx eval`` reports.

The model's first output (or ``output``) is read as class scores: every axis after the first is
flattened (``[N, 1000, 1, 1]`` → ``[N, 1000]``) and the arg-max is the prediction. Runs through our
executor or onnxruntime (one session for the whole set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError

BACKENDS = ("numpy", "onnxruntime")


@dataclass
class Accuracy:
    correct: int
    samples: int
    output: str
    backend: str

    @property
    def top1(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"top1": self.top1, "correct": self.correct, "samples": self.samples, "output": self.output,
                "backend": self.backend}


def _runner(model: ir.Model, backend: str, output: str):
    if backend == "numpy":
        from qonnx_tools.executor import Executor

        executor = Executor(model)
        return lambda feeds: executor.run(feeds)[output]
    if backend == "onnxruntime":
        from qonnx_tools.runtime import ort_session

        session = ort_session(model)
        return lambda feeds: session.run([output], dict(feeds))[0]
    raise BadInputError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")


def top1_accuracy(model: ir.Model, batches: Iterable[Mapping[str, np.ndarray]], labels: np.ndarray, *,
                  backend: str = "numpy", output: str | None = None, progress=None) -> Accuracy:
    """Compare the arg-max of ``output`` with ``labels`` (in batch order) over all ``batches``."""
    names = [v.name for v in model.graph.outputs]
    output = output or names[0]
    if output not in names:
        raise BadInputError(f"output {output!r}: the model's outputs are {names}")
    run = _runner(model, backend, output)
    labels = np.asarray(labels)
    correct = seen = 0
    for feeds in progress(batches) if progress is not None else batches:
        scores = np.asarray(run(feeds))
        if scores.ndim < 2:
            raise BadInputError(f"output {output!r} has shape {scores.shape}: expected [batch, classes, ...]")
        predicted = scores.reshape(scores.shape[0], -1).argmax(axis=1)
        truth = labels[seen:seen + len(predicted)]
        if len(truth) != len(predicted):
            raise BadInputError(f"{len(labels)} labels for more samples than that")
        correct += int(np.count_nonzero(predicted == truth))
        seen += len(predicted)
    if seen != len(labels):
        raise BadInputError(f"{len(labels)} labels but {seen} samples")
    return Accuracy(correct, seen, output, backend)
