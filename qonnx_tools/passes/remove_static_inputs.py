"""remove-static-inputs: initializers stop being listed as graph inputs
(onnx_ir's RemoveInitializersFromInputsPass); Brevitas lists every weight as an input.
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
        return PassResult(model, bool(result.modified))
