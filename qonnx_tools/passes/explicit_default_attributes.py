"""explicit-default-attributes: write out the attributes a consumer reads without applying ONNX's default
(exact: the values written are the defaults the spec gives).

Conv (standard and channels-last): ``strides`` and ``dilations`` (1 per spatial axis), ``pads`` (0), read
off ``kernel_shape`` or the weight's shape; MaxPool/AveragePool: ``strides`` and ``pads``; QONNX
Quant/IntQuant/Trunc: ``rounding_mode`` (the op's own default, from its definition in ``ops``: ROUND
for IntQuant, FLOOR for Trunc); Resize whose ``coordinate_transformation_mode`` is not
tf_crop_and_resize (the only mode that reads ``roi``): its ``roi``, omitted or empty, becomes the
one-element constant [0]. Why: hls4ml 1.3's Conv parser stops with "KeyError: 'kernel_shape'" on a Conv
without ``dilations`` (it looks the kernel size up under a key it never set), it rejects a Quant
without ``rounding_mode``, and on Resize it stops with "Could not find the shape for input" when the
roi is omitted and with "The truth value of an empty array is ambiguous" when it is empty (PyTorch's
export); it accepts a one-element roi. Brevitas writes the attributes, other exporters do not.

Left alone: a Conv whose kernel size is known neither from ``kernel_shape`` nor from a weight shape,
an ``auto_pad`` other than NOTSET (the pads then depend on the input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.decline import Decline
from qonnx_tools.domains import CHANNELS_LAST, QONNX, STANDARD, canonical_domain
from qonnx_tools.passes._rewrite import new_initializer, unique_name, used_names
from qonnx_tools.passes.base import PassResult, QonnxPass

_NOTHING_MISSING = "nothing to write"


def _kernel(node: ir.Node) -> list[int] | None:
    kernel = node.attributes.get_ints("kernel_shape", None)
    if kernel is not None:
        return list(kernel)
    if node.op_type != "Conv" or len(node.inputs) < 2 or node.inputs[1] is None or node.inputs[1].shape is None:
        return None
    dims = list(node.inputs[1].shape)[1:-1] if canonical_domain(node.domain) == CHANNELS_LAST else \
        list(node.inputs[1].shape)[2:]
    return dims if all(isinstance(d, int) for d in dims) else None


def missing_defaults(node: ir.Node) -> dict[str, object] | Decline:
    """What this pass would write on ``node``: attribute name -> ONNX's default (``roi``: the Resize input
    [0]); {} when nothing is missing; a Decline when the default cannot be written (auto_pad, unknown
    kernel size, tf_crop_and_resize). The readiness rule ``explicit-attributes`` asks the same."""
    domain = canonical_domain(node.domain)
    if domain == STANDARD and node.op_type == "Resize" and len(node.inputs) > 2:
        roi = node.inputs[1]
        if roi is not None and (constant_array(roi) is None or constant_array(roi).size != 0):
            return {}
        if node.attributes.get_string("coordinate_transformation_mode", "") == "tf_crop_and_resize":
            return Decline("tf_crop_and_resize reads its roi", node)
        return {"roi": np.zeros(1, np.float32)}
    if domain == QONNX and node.op_type in ("Quant", "IntQuant", "Trunc"):
        if "rounding_mode" in node.attributes:
            return {}
        from qonnx_tools.ops import get_op

        op = get_op(node.domain, node.op_type)  # the op's own default: ROUND for IntQuant, FLOOR for Trunc
        (spec,) = [a for a in op.attributes if a.name == "rounding_mode"]
        return {"rounding_mode": spec.default}
    if domain not in (STANDARD, CHANNELS_LAST) or node.op_type not in ("Conv", "MaxPool", "AveragePool"):
        return {}
    if node.attributes.get_string("auto_pad", "NOTSET") != "NOTSET":
        return Decline("auto_pad is set: the pads depend on the input", node)
    kernel = _kernel(node)
    if kernel is None:
        return Decline("the kernel size is unknown", node)
    defaults: dict[str, object] = {"strides": [1] * len(kernel), "pads": [0] * (2 * len(kernel))}
    if node.op_type == "Conv":
        defaults.update(kernel_shape=kernel, dilations=[1] * len(kernel))
    return {k: v for k, v in defaults.items() if k not in node.attributes}


@dataclass
class ExplicitDefaultAttributes(QonnxPass, name="explicit-default-attributes"):
    """Conv/pool strides, dilations, pads, Quant rounding_mode and Resize roi written out with ONNX's defaults (exact)"""

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        used = used_names(model)

        def rewrite(node: ir.Node):
            missing = missing_defaults(node)
            if isinstance(missing, Decline) or not missing:
                return missing or Decline(_NOTHING_MISSING)
            for name, value in missing.items():
                if name == "roi":
                    node.replace_input_with(1, new_initializer(graph, value, unique_name(f"{node.name or 'resize'}_roi",
                                                                                         used)))
                elif isinstance(value, str):
                    node.attributes[name] = ir.AttrString(name, value)
                else:
                    node.attributes[name] = ir.AttrInt64s(name, value)
            return True

        return PassResult(model, self.rewrite_each(list(model.graph), rewrite, quiet=(_NOTHING_MISSING,)))
