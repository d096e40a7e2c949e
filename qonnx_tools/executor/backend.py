"""``onnx.backend.base.Backend`` over the NumPy executor, for ONNX's backend test suite."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from qonnx_tools._ir import ir
from qonnx_tools.executor.engine import Executor


class NumpyBackendRep(BackendRep):
    """A prepared model; ``run`` takes inputs in graph-input order (or a name->array dict)."""

    def __init__(self, model: ir.Model) -> None:
        self._executor = Executor(model)

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feeds = inputs
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feeds = dict(zip(self._executor.input_names, inputs))
        result = self._executor.run(feeds)
        return tuple(result[name] for name in self._executor.output_names)


class NumpyBackend(Backend):
    """Backend whose every op runs through qonnx_tools' kernels."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> NumpyBackendRep:
        return NumpyBackendRep(ir.from_proto(model))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> Sequence[np.ndarray]:
        return cls.prepare(model, device).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
