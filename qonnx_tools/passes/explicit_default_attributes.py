"""explicit-default-attributes: write out the attributes a consumer reads without applying ONNX's default
(exact: the values written are the defaults the spec gives).

Conv (standard and channels-last): ``strides`` and ``dilations`` (1 per spatial axis), ``pads`` (0), read
off ``kernel_shape`` or the weight's shape; MaxPool/AveragePool: ``strides`` and ``pads``; QONNX
Quant/IntQuant/Trunc: ``rounding_mode`` ROUND; Resize whose ``coordinate_transformation_mode`` is not
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


@dataclass
class ExplicitDefaultAttributes(QonnxPass, name="explicit-default-attributes"):
    """Conv/pool strides, dilations, pads and Quant rounding_mode written out with ONNX's defaults (exact)"""

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        used = used_names(model)

        def rewrite(node: ir.Node):
            domain = canonical_domain(node.domain)
            wanted: list[ir.Attr] = []
            if domain == STANDARD and node.op_type == "Resize" and len(node.inputs) > 2:
                roi = node.inputs[1]
                if roi is not None and (constant_array(roi) is None or constant_array(roi).size != 0):
                    return Decline(_NOTHING_MISSING)
                if node.attributes.get_string("coordinate_transformation_mode", "") == "tf_crop_and_resize":
                    return Decline("tf_crop_and_resize reads its roi", node)
                node.replace_input_with(1, new_initializer(graph, np.zeros(1, np.float32),
                                                           unique_name(f"{node.name or 'resize'}_roi", used)))
                return True
            if domain == QONNX and node.op_type in ("Quant", "IntQuant", "Trunc"):
                if "rounding_mode" not in node.attributes:
                    wanted.append(ir.AttrString("rounding_mode", "ROUND"))
            elif domain in (STANDARD, CHANNELS_LAST) and node.op_type in ("Conv", "MaxPool", "AveragePool"):
                if node.attributes.get_string("auto_pad", "NOTSET") != "NOTSET":
                    return Decline("auto_pad is set: the pads depend on the input", node)
                kernel = _kernel(node)
                if kernel is None:
                    return Decline("the kernel size is unknown", node)
                defaults = {"strides": [1] * len(kernel), "pads": [0] * (2 * len(kernel))}
                if node.op_type == "Conv":
                    defaults["dilations"] = [1] * len(kernel)
                    if "kernel_shape" not in node.attributes:
                        wanted.append(ir.AttrInt64s("kernel_shape", kernel))
                wanted += [ir.AttrInt64s(k, v) for k, v in defaults.items() if k not in node.attributes]
            if not wanted:
                return Decline(_NOTHING_MISSING)
            for attr in wanted:
                node.attributes[attr.name] = attr
            return True

        return PassResult(model, self.rewrite_each(list(model.graph), rewrite, quiet=(_NOTHING_MISSING,)))
