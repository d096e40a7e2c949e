"""What the phases of ``to_qop`` share: one ``Conversion`` record, passed from phase to phase."""

from __future__ import annotations

from dataclasses import dataclass, field

from qonnx_tools._ir import ir
from qonnx_tools.convert.result import Unconverted
from qonnx_tools.passes.move_into_integer_domain import Editor

#: The reason every missing-quantizer refusal carries.
REQUIRES_ALL = "QOp needs input, weight and output quantized"



@dataclass
class Conversion:
    """One conversion in progress: the model, its editor (names, constants, dead values), options and findings."""

    model: ir.Model
    edit: Editor
    opset: int  # the model's ai.onnx opset (after any upgrade)
    requantize_bias: bool
    fold_batchnorm: bool
    float_outputs: bool = True  # a layer without an output quantizer: integer op + float epilogue
    notes: list[str] = field(default_factory=list)
    unconverted: list[Unconverted] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)  # op written -> how many layers
    widened: dict[int, ir.Value] = field(default_factory=dict)  # id(narrow activation) -> its 8-bit Cast

    @property
    def graph(self) -> ir.Graph:
        return self.model.graph

