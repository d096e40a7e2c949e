"""Shared helpers for the streamlining tests (a ``kit`` fixture: graph building and checking)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.passes import parse_pipeline
from qonnx_tools.testing import quant_node

F = TensorProto.FLOAT
QONNX = "qonnx.custom_op.general"


class Kit:
    F = F
    QONNX = QONNX

    @staticmethod
    def model(nodes, inputs, outputs, inits=(), opset=13, qonnx_opset=2):
        """An ir.Model from onnx.helper pieces; inputs/outputs as (name, shape) (float32)."""
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
            [helper.make_tensor_value_info(n, F, s) for n, s in outputs],
            initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
        )
        proto = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(QONNX, qonnx_opset)]
        )
        proto.ir_version = 8
        model = ir.from_proto(proto)
        parse_pipeline("infer-shapes")(model)
        return model

    @staticmethod
    def quant(x, s, z, b, y, *, signed=1, narrow=0, mode="ROUND", name=None):
        return quant_node(x, s, z, b, y, signed=signed, narrow=narrow, rounding_mode=mode, name=name or f"q_{y}")

    @staticmethod
    def node(op, inputs, outputs, name=None, domain="", **attrs):
        return helper.make_node(op, inputs, outputs, name=name or f"{op}_{outputs[0]}", domain=domain, **attrs)

    @staticmethod
    def ops(model) -> Counter:
        return Counter(n.op_type for n in model.graph)

    @staticmethod
    def run(model, feeds):
        return Executor(model).run(feeds)

    @staticmethod
    def apply(model, pipeline: str, *, verify_inputs=None):
        """Run a pipeline string; returns the Pipeline (records, passes)."""
        p = parse_pipeline(pipeline)
        p(model)
        return p

    @classmethod
    def check(cls, model, pipeline: str, feeds, *, exact=True, rtol=1e-5):
        """Run ``pipeline`` and assert outputs are unchanged (bit-exact or within rtol of the output range)."""
        before = cls.run(model, feeds)
        p = cls.apply(model, pipeline)
        after = cls.run(model, feeds)
        for name, ref in before.items():
            got = after[name]
            assert got.shape == ref.shape, name
            if exact:
                np.testing.assert_array_equal(got, ref, err_msg=f"{pipeline}: output {name} changed")
            else:
                scale = max(float(np.max(np.abs(ref))), 1e-30)
                assert float(np.max(np.abs(got.astype(np.float64) - ref))) <= rtol * scale, name
        return p

    @staticmethod
    def declined(pipeline) -> list[str]:
        return [line for p in pipeline.passes for line in getattr(p, "declined", [])]

    @staticmethod
    def consts(model, op_type):
        """The constant input arrays (dynamic inputs skipped) of every node of ``op_type``."""
        from qonnx_tools.constants import constant_array

        out = []
        for n in model.graph:
            if n.op_type == op_type:
                arrays = [constant_array(v) for v in n.inputs if v is not None]
                out.append([a for a in arrays if a is not None])
        return out

    @staticmethod
    def near(values, ulps=2):
        """values and their float32 neighbours up to ``ulps`` steps either side."""
        v = np.asarray(values, dtype=np.float32).reshape(-1)
        out = [v]
        up, down = v.copy(), v.copy()
        for _ in range(ulps):
            up = np.nextafter(up, np.float32(np.inf))
            down = np.nextafter(down, np.float32(-np.inf))
            out += [up, down]
        return np.concatenate(out)


@pytest.fixture
def kit() -> Kit:
    return Kit()
