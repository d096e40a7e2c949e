"""Replace BipolarQuant nodes whose scale is 1 by standard ONNX ops.

    python transforms/strip_bipolar_to_sign.py IN.onnx OUT.onnx

``BipolarQuant(x, 1)`` is +1 where x >= 0 and -1 elsewhere (zero maps to +1, unlike
ONNX ``Sign``, which maps 0 to 0), so it becomes

    Where(GreaterOrEqual(x, 0), 1, -1)

(GreaterOrEqual needs ai.onnx opset 12; the opset is raised to 12 when lower).
Nodes with another scale are left alone. Works on the ONNX protobuf with onnx.helper;
the file is read and written through qonnx_tools.model_io (domain aliases normalised,
atomic write).
"""

import sys

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from qonnx_tools.cli.main import main as qonnx_main
from qonnx_tools.domains import QONNX, canonical_domain


def _constant(graph: onnx.GraphProto, name: str):
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def strip(proto: onnx.ModelProto) -> int:
    """Rewrite ``proto`` in place; returns how many nodes were replaced."""
    graph = proto.graph
    new_nodes, count = [], 0
    for node in graph.node:
        scale = _constant(graph, node.input[1]) if len(node.input) > 1 else None
        if (canonical_domain(node.domain) == QONNX and node.op_type == "BipolarQuant"
                and scale is not None and np.all(scale == 1.0)):
            base = node.name or node.output[0]
            zero, pos, neg, cond = (f"{base}/zero", f"{base}/plus1", f"{base}/minus1", f"{base}/ge0")
            graph.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n)
                                      for n, v in ((zero, 0.0), (pos, 1.0), (neg, -1.0))])
            new_nodes.append(helper.make_node("GreaterOrEqual", [node.input[0], zero], [cond], name=f"{base}/ge"))
            new_nodes.append(helper.make_node("Where", [cond, pos, neg], [node.output[0]], name=f"{base}/sign"))
            count += 1
        else:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    if count:
        for opset in proto.opset_import:
            if opset.domain in ("", "ai.onnx") and opset.version < 12:
                opset.version = 12
    return count


def transform(model):
    proto = ir.to_proto(model)
    strip(proto)
    return ir.from_proto(proto)


if __name__ == "__main__":  # same as: qonnx transform THIS_SCRIPT IN OUT [--force | --in-place]
    sys.exit(qonnx_main(["transform", __file__, *sys.argv[1:]]))
