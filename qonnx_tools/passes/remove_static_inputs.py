"""remove-static-inputs: initializers stop being listed as graph inputs
(onnx_ir's RemoveInitializersFromInputsPass); Brevitas lists every weight as an input.
A model of IR version 3 or older (where initializers had to be inputs) is raised to IR 4.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.passes.base import PassResult, QonnxPass


@dataclass
class RemoveStaticInputs(QonnxPass, name="remove-static-inputs"):
    """stop listing initializers as graph inputs (they become fixed weights)"""

    def call(self, model: ir.Model) -> PassResult:
        result = common_passes.RemoveInitializersFromInputsPass()(model)
        if result.modified and model.ir_version is not None and model.ir_version < 4:
            model.ir_version = 4  # before IR 4 every initializer had to be a graph input too
        return PassResult(model, bool(result.modified))
