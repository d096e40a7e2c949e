"""How to write your own pass, register it, and run it in a pipeline with built-in passes.

    python transforms/custom_pass_example.py IN.onnx OUT.onnx

A pass is a dataclass deriving from ``QonnxPass`` with a kebab-case ``name``; its
fields are its options (set from a pipeline string as ``name{option=value}``).
``call(model)`` changes the onnx_ir model in place and returns ``PassResult(model,
modified)``. ``@register_pass`` makes it usable by name in ``run_passes`` pipelines
and in ``qonnx cleanup --passes``.

The example pass, ``tag-quantizers``, names every quantizer node after what it
quantizes (``<prefix><op>_<input value name>``), then ``remove-dead`` and ``sort``
tidy the graph. Numerics are untouched.
"""

import sys
from dataclasses import dataclass

from qonnx_tools.cli.main import main as qonnx_main
from qonnx_tools.passes import run_passes
from qonnx_tools.passes.base import PassResult, QonnxPass, register_pass

QUANTIZERS = {"Quant", "IntQuant", "BipolarQuant", "FloatQuant", "Trunc"}


@register_pass
@dataclass
class TagQuantizers(QonnxPass, name="tag-quantizers"):
    """Name quantizer nodes <prefix><op>_<quantized value> (this first paragraph is what `qonnx passes` shows)."""

    prefix: str = "q_"  # an option: tag-quantizers{prefix=wq_}

    def call(self, model):
        modified = False
        for node in model.graph:
            if node.op_type in QUANTIZERS and node.inputs and node.inputs[0] is not None:
                new = f"{self.prefix}{node.op_type}_{node.inputs[0].name}"
                if node.name != new:
                    node.name = new
                    modified = True
        return PassResult(model, modified)

PIPELINE = "tag-quantizers{prefix=q_},remove-dead,sort"


def transform(model):
    run_passes(model, PIPELINE)
    return model


if __name__ == "__main__":  # same as: qonnx transform THIS_SCRIPT IN OUT [--force | --in-place]
    sys.exit(qonnx_main(["transform", __file__, *sys.argv[1:]]))
