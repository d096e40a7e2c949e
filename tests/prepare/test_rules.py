"""prepare: one model per readiness rule, each breaking exactly that rule; pipelines and CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.cli.main import main
from qonnx_tools.domains import CHANNELS_LAST, QONNX
from qonnx_tools.errors import BadInputError, ConversionError
from qonnx_tools.executor import Executor
from qonnx_tools.passes import run_passes
from qonnx_tools.prepare import RULES, TARGETS, check, prepare
from qonnx_tools.testing import brevitas_models, quant_node

F = TensorProto.FLOAT
RNG = np.random.default_rng(0)


class G:
    """A tiny graph builder: every node named unless asked, shapes inferred."""

    def __init__(self):
        self.nodes, self.inits, self.inputs, self.k = [], [], [], 0

    def const(self, value, dtype=np.float32):
        self.k += 1
        name = f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, inputs, domain="", name=True, **attrs):
        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.k}" if name else "", domain=domain, **attrs))
        return out

    def quant(self, x, bits=4.0, zp=0.0, signed=1, narrow=0, rounding="ROUND", scale=0.1, **kw):
        inputs = [x, kw.get("scale_input") or self.const(scale), self.const(zp), self.const(bits)]
        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(quant_node(*inputs, out, signed=signed, narrow=narrow, rounding_mode=rounding,
                                     name=f"Quant_{self.k}"))
        return out

    def model(self, x_shape=(1, 4), infer=True, opset=13):
        graph = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", F, list(x_shape))] + self.inputs,
                                  [helper.make_tensor_value_info(self.nodes[-1].output[0], F, None)], self.inits)
        model = ir.from_proto(helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(QONNX, 1)]))
        if infer:
            run_passes(model, "infer-shapes")
        return model


def rules_broken(model, target):
    return [(v.rule, v.node) for v in check(model, target)]


def mlp(gemm=False, **quant):
    g = G()
    q = g.quant("x", **quant)
    w = g.const(RNG.standard_normal((4, 3)))
    y = g.node("Gemm", [q, w]) if gemm else g.node("MatMul", [q, w])
    return g, y


def test_clean_model_breaks_nothing():
    g, _ = mlp()
    assert rules_broken(g.model(), "hls4ml") == []
    assert rules_broken(g.model(), "finn") == []


# -- hls4ml -----------------------------------------------------------------------------------


def test_hls4ml_shape_known():
    g, _ = mlp()
    model = g.model(infer=False)
    found = check(model, "hls4ml")
    assert {v.rule for v in found} == {"shape-known"}
    assert found[0].node == "Quant_4" and found[0].problem == "an output has no shape"
    assert "'v4' has no shape" in found[0].detail  # names stay out of the problem (so that problems group)
    assert "infers shapes (not with --check-only)" in found[0].fix


def test_hls4ml_symbolic_batch_is_unknown():
    g, _ = mlp()
    model = g.model(x_shape=("N", 4))
    found = check(model, "hls4ml")
    assert {v.rule for v in found} == {"shape-known"} and "'N'" in found[0].detail
    assert found[0].problem == "an output has a symbolic shape"


#: ONNX's default Conv attributes, written out (rule explicit-attributes)
DEFAULTS_2D = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1]}


def test_hls4ml_explicit_attributes_and_fix():
    g = G()
    w = g.const(RNG.standard_normal((2, 3, 3, 3)))
    g.node("Conv", [g.quant("x", rounding=None), w], kernel_shape=[3, 3])
    model = g.model(x_shape=(1, 3, 5, 5))
    found = [(v.rule, v.problem) for v in check(model, "hls4ml") if v.rule == "explicit-attributes"]
    assert found == [("explicit-attributes", "no rounding_mode attribute (ONNX default)"),
                     ("explicit-attributes", "no strides, pads, dilations attribute (ONNX default)")]
    x = {"x": RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)}
    ref = Executor(model).run(x)
    run_passes(model, "explicit-default-attributes")
    assert not [v for v in check(model, "hls4ml") if v.rule == "explicit-attributes"]
    conv = next(n for n in model.graph if n.op_type == "Conv")
    assert list(conv.attributes.get_ints("dilations")) == [1, 1] and list(conv.attributes.get_ints("pads")) == [0] * 4
    for name, value in Executor(model).run(x).items():
        np.testing.assert_array_equal(value, ref[name])


def test_hls4ml_no_gemm():
    g, y = mlp(gemm=True)
    assert rules_broken(g.model(), "hls4ml") == [("no-gemm", "Gemm_6")]


def test_hls4ml_channels_last():
    g = G()
    g.node("Conv", ["x", g.const(RNG.standard_normal((2, 3, 3, 3)))], kernel_shape=[3, 3], **DEFAULTS_2D)
    model = g.model(x_shape=(1, 3, 5, 5))
    found = check(model, "hls4ml")
    assert [(v.rule, v.node) for v in found] == [("channels-last", "Conv_2")]
    assert "NCHW" in found[0].problem and "qonnx cleanup MODEL -o OUT --passes to-channels-last" in found[0].fix
    run_passes(model, "to-channels-last")
    assert check(model, "hls4ml") == []


def test_hls4ml_node_named():
    g = G()
    g.node("Relu", ["x"], name=False)
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.node) for v in found] == [("node-named", "<unnamed #0>")]


def test_hls4ml_quantizer_params_constant():
    g = G()
    g.inputs.append(helper.make_tensor_value_info("s", F, []))
    g.quant("x", scale_input="s")
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.node) for v in found] == [("quantizer-params-constant", "Quant_3")]
    assert found[0].problem == "computed at run time: scale" and found[0].detail == "value 's'"


def test_hls4ml_rounding_mode():
    g, _ = mlp(rounding="CEIL")
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.problem) for v in found] == [("rounding-mode", "rounding_mode=CEIL")]


def test_hls4ml_no_narrow_unsigned():
    g, _ = mlp(signed=0, narrow=1)
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.node) for v in found] == [("no-narrow-unsigned", "Quant_4")]


# -- FINN ---------------------------------------------------------------------------------------


def test_finn_zero_point():
    g, _ = mlp(zp=3.0)
    found = check(g.model(), "finn")
    assert [(v.rule, v.node) for v in found] == [("zero-point-zero", "Quant_4")]
    assert found[0].problem == "non-zero zero-point" and "= [3.0]" in found[0].detail


def test_finn_activation_bits():
    g, _ = mlp(bits=10.0)
    found = check(g.model(), "finn")
    assert [(v.rule, v.problem) for v in found] == [("activation-bits", "activation quantized to 10 bits")]


def test_finn_weight_bits_above_8_are_fine():
    g = G()
    w = g.quant(g.const(RNG.standard_normal((4, 3))), bits=12.0)
    g.node("MatMul", ["x", w])
    assert check(g.model(), "finn") == []


def test_finn_trunc_floor_after_avgpool():
    g = G()
    p = g.node("AveragePool", ["x"], kernel_shape=[2, 2])
    m = g.node("Mul", [p, g.const(4.0)])
    g.node("Trunc", [m, g.const(1.0), g.const(0.0), g.const(8.0), g.const(6.0)], domain=QONNX, rounding_mode="ROUND")
    found = check(g.model(x_shape=(1, 2, 4, 4)), "finn")
    assert [(v.rule, v.node) for v in found] == [("trunc-floor-after-avgpool", "Trunc_8")]
    assert "AveragePool_1" in found[0].detail and "ROUND" in found[0].problem


def test_finn_nchw():
    g = G()
    g.node("Conv", ["x", g.const(RNG.standard_normal((2, 3, 1, 1)))], kernel_shape=[1, 1])
    model = g.model(x_shape=(1, 3, 4, 4))
    assert check(model, "finn") == []
    run_passes(model, "to-channels-last")
    found = check(model, "finn")
    assert [(v.rule, v.node) for v in found] == [("nchw", "Conv_2")]
    assert found[0].fix.endswith("qonnx cleanup MODEL -o OUT --passes to-channels-first")


# -- ORT / TensorRT ----------------------------------------------------------------------------


def test_ort_no_custom_ops():
    g, _ = mlp()
    found = check(g.model(), "ort")
    assert [(v.rule, v.node) for v in found] == [("no-custom-ops", "Quant_4")]


def qcdq(zp=0, zp_dtype=np.int8, clip=None):
    g = G()
    s = g.const(0.1)
    z = g.const(zp, zp_dtype)
    q = g.node("QuantizeLinear", ["x", s, z])
    if clip is not None:
        q = g.node("Clip", [q, g.const(clip[0], zp_dtype), g.const(clip[1], zp_dtype)])
    g.node("DequantizeLinear", [q, s, z])
    return g.model()


def dpu_conv(scale=0.125, w_scale=0.25, per_channel=False, zp_dtype=np.int8, zp=0, kernel=3, stride=1):
    """x -> Q/DQ -> Conv(DQ(int8 weights), int32 bias DQ) -> Relu -> Q/DQ: every rule of the DPU kept
    with the defaults (power-of-two scales, int8, symmetric, per tensor)."""
    g = G()
    s, z = g.const(scale), g.const(zp, zp_dtype)
    a = g.node("DequantizeLinear", [g.node("QuantizeLinear", ["x", s, z]), s, z])
    ws = g.const(np.full(4, w_scale) if per_channel else w_scale)
    wz = g.const(np.zeros(4) if per_channel else 0, np.int8)
    w = g.node("DequantizeLinear", [g.const(RNG.integers(-7, 8, (4, 3, kernel, kernel)), np.int8), ws, wz],
               **({"axis": 0} if per_channel else {}))
    b = g.node("DequantizeLinear", [g.const(RNG.integers(-50, 50, 4), np.int32), g.const(scale * w_scale),
                                    g.const(0, np.int32)])
    y = g.node("Relu", [g.node("Conv", [a, w, b], kernel_shape=[kernel, kernel], strides=[stride, stride])])
    g.node("DequantizeLinear", [g.node("QuantizeLinear", [y, s, z]), s, z])
    return g.model(x_shape=(1, 3, 20, 20))


def test_dpu_ready_when_every_rule_is_kept():
    assert check(dpu_conv(), "dpu") == []


def test_dpu_power_of_two_per_tensor_int8_symmetric():
    found = check(dpu_conv(scale=0.1), "dpu")
    assert {v.rule for v in found} == {"dpu-power-of-two"}
    assert {v.problem for v in found} == {"scale is not a power of two"} and "0.1" in found[0].detail
    assert len(found) == 5  # two activation Q/DQ pairs and the bias DQ (0.1 * 0.25)
    found = check(dpu_conv(per_channel=True), "dpu")
    assert [(v.rule, v.op, v.problem) for v in found] == [("dpu-per-tensor", "DequantizeLinear", "scales per channel")]
    found = check(dpu_conv(zp_dtype=np.uint8), "dpu")
    assert {v.rule for v in found} == {"dpu-int8"} and found[0].problem == "uint8 codes (the DPU computes in int8)"
    assert {v.rule for v in check(dpu_conv(zp=3), "dpu")} == {"dpu-symmetric"}


def test_dpu_operators_and_conv_shape():
    assert rules_broken(dpu_conv(stride=5), "dpu") == [("dpu-conv-shape", "Conv_13")]
    assert rules_broken(dpu_conv(kernel=17), "dpu") == [("dpu-conv-shape", "Conv_13")]
    g = G()
    g.node("Floor", [g.node("Relu", ["x"])])
    assert rules_broken(g.model(), "dpu") == [("dpu-operator", "Floor_2")]


def test_prepare_dpu_moves_narrow_uint8_activations_to_int8_exactly():
    """uint8 codes clipped to [0, 15] (a 4-bit unsigned activation) become int8: no dpu-int8 left, outputs equal."""
    g = G()
    s, z = g.const(0.125), g.const(0, np.uint8)
    q = g.node("Clip", [g.node("QuantizeLinear", ["x", s, z]), g.const(0, np.uint8), g.const(15, np.uint8)])
    g.node("DequantizeLinear", [q, s, z])
    model = g.model(x_shape=(2, 64))
    assert {v.rule for v in check(model, "dpu")} == {"dpu-int8"}
    x = {"x": np.linspace(-3, 3, 128, dtype=np.float32).reshape(2, 64)}
    before = Executor(model).run(x)
    result = prepare(model, "dpu")
    assert result.ready and "uint8-codes-to-int8" in result.steps
    from qonnx_tools.runtime import run_onnxruntime

    after = run_onnxruntime(model, x)
    (name,) = after
    np.testing.assert_array_equal(after[name], next(iter(before.values())))


def test_tensorrt_symmetric_zero_point():
    found = check(qcdq(zp=5), "tensorrt")
    assert {(v.rule, v.node) for v in found} == {("symmetric-zero-point", "QuantizeLinear_3"),
                                                  ("symmetric-zero-point", "DequantizeLinear_4")}
    assert check(qcdq(zp=5), "ort") == []


def test_tensorrt_int8_only():
    found = check(qcdq(zp_dtype=np.uint8), "tensorrt")
    assert {v.rule for v in found} == {"int8-only"} and "UINT8" in found[0].problem


def test_tensorrt_8_bit_only():
    found = check(qcdq(clip=(-8, 7)), "tensorrt")
    assert [(v.rule, v.node) for v in found] == [("8-bit-only", "Clip_6")]
    assert check(qcdq(clip=(-127, 127)), "tensorrt") == []


def test_hls4ml_supported_op():
    g = G()
    g.node("Trunc", ["x", g.const(1.0), g.const(0.0), g.const(8.0), g.const(4.0)], domain=QONNX)
    g.node("Erf", ["v5"])
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.node) for v in found] == [("supported-op", "Trunc_5"), ("supported-op", "Erf_6")]
    assert found[0].problem == "Trunc (QONNX) has no hls4ml handler"


def test_hls4ml_conv_shape_grouped():
    g = G()
    g.node("Conv", ["x", g.const(RNG.standard_normal((4, 2, 3, 3)))], kernel_shape=[3, 3], group=2, **DEFAULTS_2D)
    model = g.model(x_shape=(1, 4, 5, 5))
    run_passes(model, "to-channels-last")
    found = check(model, "hls4ml")
    assert [(v.rule, v.problem) for v in found] == [
        ("conv-shape", "group=2 with 4 input channels (only group 1 or depthwise)")
    ]


def test_hls4ml_conv_shape_3d():
    g = G()
    g.node("Conv", ["x", g.const(RNG.standard_normal((2, 1, 2, 2, 2)))], kernel_shape=[2, 2, 2], strides=[1] * 3, pads=[0] * 6, dilations=[1] * 3)
    model = g.model(x_shape=(1, 1, 3, 3, 3))
    run_passes(model, "to-channels-last")
    assert [(v.rule, v.problem) for v in check(model, "hls4ml")] == [("conv-shape", "3-D convolution")]


def test_hls4ml_merge_inputs():
    g = G()
    g.node("Sum", ["x", g.const(np.ones(4)), g.const(np.ones(4))])
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.problem) for v in found] == [("merge-inputs", "3 inputs (at most 2)")]


def test_hls4ml_pad_constant_zero():
    g = G()
    p = g.node("Pad", ["x", g.const([0, 1, 0, 1], np.int64)], mode="reflect")
    g.node("Pad", [p, g.const([0, 1, 0, 1], np.int64), g.const(2.0)])
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.problem) for v in found] == [("pad-constant-zero", "mode=reflect"),
                                                    ("pad-constant-zero", "pad value 2.0")]


def test_hls4ml_unshared_initializers_and_fix():
    g = G()
    w = g.const(RNG.standard_normal((4, 4)))
    y = g.node("MatMul", [g.node("MatMul", ["x", w]), w])
    model = g.model()
    found = check(model, "hls4ml")
    assert [(v.rule, v.node) for v in found] == [("unshared-initializers", "MatMul_2"),
                                                 ("unshared-initializers", "MatMul_3")]
    assert found[0].problem == "an initializer is read by other nodes too" and found[0].detail == "value 'c1'"
    assert found[0].fix.endswith("--passes unshare-initializers")
    x = {"x": RNG.standard_normal((1, 4)).astype(np.float32)}
    ref = Executor(model).run(x)
    run_passes(model, "unshare-initializers")
    assert check(model, "hls4ml") == [] and len(model.graph.initializers) == 2
    np.testing.assert_array_equal(Executor(model).run(x)[y], ref[y])


def test_hls4ml_c_identifier_names_and_fix():
    g = G()
    g.nodes.append(helper.make_node("Relu", ["x"], ["0.out"], name="input"))
    g.node("Relu", ["0.out"])
    model = g.model()
    found = check(model, "hls4ml")
    assert [(v.rule, v.node, v.problem, v.detail) for v in found] == [
        ("c-identifier-names", "input", "reserved names and names that are not C identifiers", "'0.out', 'input'")
    ]
    x = {"x": RNG.standard_normal((1, 4)).astype(np.float32)}
    ref = Executor(model).run(x)
    run_passes(model, "sanitize-names{reserved=input}")
    assert check(model, "hls4ml") == []
    assert [n.name for n in model.graph] == ["input_1", "Relu_1"] and model.graph[0].outputs[0].name == "v0_out"
    np.testing.assert_array_equal(Executor(model).run(x)["v1"], ref["v1"])


def _binary_layer(g, weights, gamma, tail=True):
    """x -> BipolarQuant -> MatMul(weights) -> BatchNormalization(gamma) [-> BipolarQuant]"""
    xb = g.node("BipolarQuant", ["x", g.const(1.0)], domain=QONNX)
    h = g.node("MatMul", [xb, weights])
    bn = g.node("BatchNormalization", [h, g.const(gamma), g.const(np.zeros(3)), g.const(np.zeros(3)),
                                       g.const(np.ones(3))])
    return g.node("BipolarQuant", [bn, g.const(1.0)], domain=QONNX) if tail else bn


def test_hls4ml_bipolar_rules_and_fixes():
    """hls4ml's one-bit encoding: bipolar x bipolar products, negative scales before a sign, bipolar outputs."""
    g = G()
    w = g.node("BipolarQuant", [g.const(RNG.standard_normal((4, 3))), g.const(0.5)], domain=QONNX)
    y = _binary_layer(g, w, [1.0, -2.0, 0.5])
    g.node("MatMul", [y, g.const(np.ones((3, 2)))])
    model = g.model()
    assert sorted(rules_broken(model, "hls4ml")) == [("no-xnor-products", "MatMul_6"),
                                                     ("positive-scale-before-sign", "BatchNormalization_11")]
    x = {"x": RNG.standard_normal((1, 4)).astype(np.float32)}
    ref = Executor(model).run(x)
    run_passes(model, "bipolar-weights-to-int2,positive-batchnorm-before-sign")
    assert check(model, "hls4ml") == []
    for name, value in Executor(model).run(x).items():
        np.testing.assert_array_equal(value, ref[name])
    # a bipolar tensor read as numbers (here: the graph output) has no automatic fix
    g = G()
    _binary_layer(g, g.const(np.ones((4, 3))), [1.0, 1.0, 1.0])
    found = check(g.model(), "hls4ml")
    assert [(v.rule, v.problem) for v in found] == [
        ("bipolar-readers", "a bipolar graph output: hls4ml's C++ gives 0 where the model gives -1")]


def test_hls4ml_constant_rescale_and_fixes():
    """A quantized bias with a scale that is not a power of two, per-channel weight scales likewise."""
    g = G()
    w = g.quant(g.const(RNG.standard_normal((4, 3))), scale_input=g.const([[0.3, 0.2, 0.7]]))
    h = g.node("MatMul", ["x", w])
    b = g.quant(g.const(RNG.standard_normal(3)), scale=0.03, bits=8.0)
    g.node("Add", [h, b])
    model = g.model()
    assert rules_broken(model, "hls4ml") == [("constant-rescale", "Quant_5"), ("constant-rescale", "Quant_11")]
    x = {"x": RNG.standard_normal((1, 4)).astype(np.float32)}
    ref = Executor(model).run(x)
    run_passes(model, "dequantize-rescaled-constants,factor-out-weight-scale")
    assert check(model, "hls4ml") == []
    (out,) = ref
    np.testing.assert_allclose(Executor(model).run(x)[out], ref[out], rtol=1e-6, atol=1e-6)
    # a power-of-two scale is fine as it is
    g = G()
    b = g.quant(g.const(RNG.standard_normal(3)), scale=0.125, bits=8.0)
    g.node("Add", ["x", b])
    assert check(g.model(x_shape=(1, 3)), "hls4ml") == []


def test_hls4ml_shared_rescaled_activation():
    """An activation quantizer with a scale that is not a power of two and two readers (a skip connection)."""
    g = G()
    q = g.quant("x", scale=0.3)
    y = g.node("MatMul", [q, g.const(RNG.standard_normal((4, 4)))])
    g.node("Add", [y, q])
    assert rules_broken(g.model(), "hls4ml") == [("shared-rescaled-activation", "Quant_4")]
    g = G()
    q = g.quant("x", scale=0.25)  # a power of two: hls4ml needs no rescaling layer
    y = g.node("MatMul", [q, g.const(RNG.standard_normal((4, 4)))])
    g.node("Add", [y, q])
    assert rules_broken(g.model(), "hls4ml") == []
    # hls4ml makes a type only of zero point 0 and ONE power-of-two scale for the tensor (quant_opt's
    # QuantToActivation); per-channel powers of two or a zero point still get a rescaling layer
    for kw in ({"scale": np.array([0.25, 0.5, 0.25, 0.125])}, {"scale": 0.25, "zp": 1.0}):
        g = G()
        q = g.quant("x", **kw)
        y = g.node("MatMul", [q, g.const(RNG.standard_normal((4, 4)))])
        g.node("Add", [y, q])
        assert ("shared-rescaled-activation", "Quant_4") in rules_broken(g.model(), "hls4ml"), kw


def test_every_rule_has_a_test():
    tested = {"shape-known", "no-gemm", "channels-last", "node-named", "quantizer-params-constant", "rounding-mode",
              "no-narrow-unsigned", "supported-op", "conv-shape", "merge-inputs", "pad-constant-zero",
              "unshared-initializers", "c-identifier-names", "zero-point-zero", "activation-bits", "trunc-floor-after-avgpool", "nchw",
              "no-custom-ops", "symmetric-zero-point", "int8-only", "8-bit-only", "reshape-elements",
              "dpu-operator", "dpu-int8", "dpu-symmetric", "dpu-per-tensor", "dpu-power-of-two", "dpu-conv-shape",
              "bipolar-readers", "no-xnor-products", "positive-scale-before-sign", "constant-rescale",
              "shared-rescaled-activation", "explicit-attributes"}
    assert {r.name for t in TARGETS for r in RULES[t]} == tested
    assert all(r.message and r.fix for t in TARGETS for r in RULES[t])


# -- pipelines ------------------------------------------------------------------------------------


def conv_gemm_model():
    g = G()
    q = g.quant("x", bits=4.0)
    c = g.node("Conv", [q, g.quant(g.const(RNG.standard_normal((3, 2, 3, 3))), bits=4.0), g.const(np.zeros(3))],
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    r = g.node("Relu", [c])
    f = g.node("Flatten", [g.quant(r, bits=4.0, signed=0)])
    g.node("Gemm", [f, g.const(RNG.standard_normal((5, 48))), g.const(np.zeros(5))], transB=1)
    return g.model(x_shape=(1, 2, 4, 4))


def test_prepare_hls4ml_fixes_everything_and_keeps_numerics():
    model = conv_gemm_model()
    before = {r.rule for r in check(model, "hls4ml")}
    assert before == {"no-gemm", "channels-last", "explicit-attributes"}
    x = RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)
    ref = Executor(model).run({"x": x})
    result = prepare(model, "hls4ml")
    assert result.ready and result.violations == []
    assert any(n.domain == CHANNELS_LAST for n in model.graph)
    assert not any(n.op_type == "Gemm" for n in model.graph)
    # weights are transposed in the initializers; Transposes only move activations
    for t in (n for n in model.graph if n.op_type == "Transpose"):
        source = t.inputs[0].producer().inputs[0] if t.inputs[0].producer() is not None else t.inputs[0]
        assert not source.is_initializer(), t.name
    conv = next(n for n in model.graph if n.op_type == "Conv")
    assert tuple(conv.inputs[1].shape) == (3, 3, 3, 2)  # (M, kh, kw, C): qonnx's channels-last weight layout
    out = Executor(model).run({"x": x})
    for key in ref:
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-5, atol=1e-5)


def test_prepare_ort_converts_to_qcdq():
    model = conv_gemm_model()
    result = prepare(model, "ort")
    assert result.ready
    assert not any(n.domain == QONNX for n in model.graph)


def test_prepare_tensorrt_refuses_4_bit_activations():
    with pytest.raises(ConversionError, match="activation of 4 bits"):
        prepare(conv_gemm_model(), "tensorrt")


def test_prepare_finn_runs():
    result = prepare(conv_gemm_model(), "finn")
    assert result.target == "finn" and result.steps[0] == "cleanup"


def test_unknown_target():
    with pytest.raises(BadInputError):
        check(conv_gemm_model(), "vitis")


def test_cli(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(ir.to_proto(conv_gemm_model()), path)
    assert main(["prepare", "--target", "hls4ml", str(path), "--check-only"]) == 1
    out = capsys.readouterr().out
    assert "1 × Gemm: [no-gemm] Gemm node" in out and "--passes gemm-to-matmul" in out
    out_path = tmp_path / "out.onnx"
    assert main(["prepare", "--target", "hls4ml", str(path), "-o", str(out_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ready"] and out_path.is_file()
    assert main(["prepare", "--target", "hls4ml", str(path), "-o", str(out_path)]) == 2  # exists, no --force
    assert main(["prepare", "--target", "hls4ml", str(path)]) == 2  # no -o
    assert main(["prepare", "--target", "tensorrt", str(path), "-o", str(tmp_path / "t.onnx")]) == 1


CORPUS = {d.name: d for d in brevitas_models()}


@pytest.mark.shared
@pytest.mark.parametrize("name, left", [("bnn_cnv_2w2a", set()), ("maxpool_quanttensor", set()),
                                        ("residual_shared_quant", {"shared-rescaled-activation"})])
def test_corpus_hls4ml_ready(name, left):
    """Ready after prepare, but for what hls4ml would compute wrongly with no automatic fix (its skip
    connections: tests/consumers/test_hls4ml_consumer.py shows the wrong outputs)."""
    if name not in CORPUS:
        pytest.skip("not in corpus")
    from qonnx_tools.model_io import load

    model = load(CORPUS[name] / "qonnx.onnx")
    assert check(model, "hls4ml")  # raw exports are not ready (no shapes inside, NCHW convs)
    assert {v.rule for v in prepare(model, "hls4ml").violations} == left


@pytest.mark.shared
def test_corpus_hls4ml_trunc_is_reported():
    """hls4ml has no Trunc layer: prepare cannot fix that and says so per node."""
    if "trunc_avgpool_floor" not in CORPUS:
        pytest.skip("not in corpus")
    from qonnx_tools.model_io import load

    result = prepare(load(CORPUS["trunc_avgpool_floor"] / "qonnx.onnx"), "hls4ml")
    assert {(v.rule, v.op) for v in result.violations} == {("supported-op", "Trunc")}


def sequence_first_proto() -> onnx.ModelProto:
    """(L=4, N=6, E=16) input whose Reshape hard-codes L*N*E = 384 elements without starting with 4."""
    nodes = [helper.make_node("Reshape", ["x", "t"], ["r"], name="reshape"),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes, "seq", [helper.make_tensor_value_info("x", F, [4, 6, 16])], [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(np.array([6, 64], np.int64), "t")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("target", ["hls4ml", "finn", "ort"])
def test_reshape_hard_coding_another_input_size_is_reported(target):
    model = ir.serde.deserialize_model(sequence_first_proto())
    if target == "hls4ml":  # prepare sets batch 1: the Reshape then gets 96 of its 384 elements
        violations = prepare(model, target).violations
    else:  # the same mismatch written into the file by hand
        model.graph.inputs[0].shape = ir.Shape([1, 6, 16])
        run_passes(model, "infer-shapes")
        violations = check(model, target)
    found = [v for v in violations if v.rule == "reshape-elements"]
    assert [(v.node, v.problem) for v in found] == [
        ("reshape", "reshapes 96 elements [1, 6, 16] into [6, 64] (384 elements)")
    ]
    with pytest.raises(Exception, match="cannot reshape"):  # and indeed it cannot run
        Executor(model).run({"x": np.zeros((1, 6, 16), np.float32)})


def test_cli_prints_a_pass_warning_as_one_line(tmp_path, capsys):
    path = tmp_path / "seq.onnx"
    proto = sequence_first_proto()
    proto.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", F, [4, 99]))  # stale, conflicting
    onnx.save(proto, path)
    code = main(["prepare", "--target", "hls4ml", str(path), "-o", str(tmp_path / "out.onnx")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("warning: infer-shapes: ") and "computed" in line for line in err), err
    assert all(line.startswith(("warning: ", "error: ")) for line in err), err


@pytest.mark.shared
@pytest.mark.parametrize("name", ["bnn_cnv_2w2a", "bnn_tfc_2w2a"])
def test_prepare_dpu_on_power_of_two_brevitas_models(shared, name):
    """Brevitas' FINN-style models have power-of-two (unit) scales: after prepare --target dpu only their
    input preprocessing (Sub, Div) is reported, as CPU operators, and onnxruntime on the prepared model gives
    the executor's outputs on the original."""
    from qonnx_tools.model_io import load
    from qonnx_tools.runtime import random_inputs, run_onnxruntime

    path = shared / "models" / "brevitas" / name / "qonnx.onnx"
    original, model = load(path), load(path)
    result = prepare(model, "dpu")
    assert {v.rule for v in result.violations} == {"dpu-operator"}
    assert {v.op for v in result.violations} <= {"Sub", "Div"}
    feeds = random_inputs(original, seed=1)
    expected = Executor(original).run(feeds)
    got = run_onnxruntime(model, feeds)
    for key, value in got.items():
        np.testing.assert_array_equal(value, expected[key])
