"""``streamline.layerwise.compare_layers``: each MultiThreshold checked on the original's own layer inputs.

Expected levels come from the original graph run by the executor (the quantizer
kernels, i.e. the op spec); faults are injected into the streamlined model by the
test (a threshold moved by one float32 ulp onto a rounding tie, or by a whole
level), so the check must tell float noise from a wrong threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

from qonnx_tools._ir import ir
from qonnx_tools.streamline import Streamline
from qonnx_tools.streamline.frontend import QUANTIZER_KEY
from qonnx_tools.streamline.layerwise import compare_layers

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SCALE = np.float32(0.25)
#: 0.625 = 2.5 steps: a tie that ROUND (half to even) sends to level 2; 0.61 is 2.44 steps, no tie.
X = np.array([[0.0, 0.125, 0.625, 0.61, 1.0, 2.0, 3.0, 3.9]], dtype=np.float32)


def _single_quantizer(kit):
    nodes = [kit.quant("x", "s", "z", "b", "y", signed=0)]
    inits = [("s", SCALE), ("z", np.float32(0)), ("b", np.float32(4))]
    return kit.model(nodes, [("x", [1, 8])], [("y", [1, 8])], inits=inits)


#: Power-of-two scales: float32 evaluates every order exactly, so nothing may differ.
EXACT_SCALES = {"s_in": 1 / 64, "s_w": 1 / 8, "s_a": 1 / 4}
#: Decimal scales: the hidden layer's level is acc / 150 (acc = integer accumulator), an exact
#: tie whenever acc = 75 (mod 150); each float32 evaluation order decides those its own way.
DECIMAL_SCALES = {"s_in": 0.02, "s_w": 0.1, "s_a": 0.3}


def _two_layers(kit, scales):
    rng = np.random.default_rng(3)
    nodes = [
        kit.quant("x", "s_in", "z", "b8", "xq"),
        kit.quant("w", "s_w", "z", "b4", "wq", narrow=1),
        kit.node("MatMul", ["xq", "wq"], ["h"]),
        kit.node("Relu", ["h"], ["r"]),
        kit.quant("r", "s_a", "z", "b4", "a", signed=0),
        kit.quant("w2", "s_w", "z", "b4", "wq2", narrow=1),
        kit.node("MatMul", ["a", "wq2"], ["h2"]),
        kit.quant("h2", "s_a", "z", "b4", "y"),
    ]
    inits = [(name, np.float32(value)) for name, value in scales.items()] + [
        ("z", np.float32(0)), ("b8", np.float32(8)), ("b4", np.float32(4)),
        ("w", rng.normal(size=(16, 32)).astype(np.float32)), ("w2", rng.normal(size=(32, 8)).astype(np.float32)),
    ]
    return kit.model(nodes, [("x", [64, 16])], [("y", [64, 8])], inits=inits)


def _streamlined(model_fn, kit, *args):
    model = model_fn(kit, *args)
    Streamline()(model)
    return model


def _set_threshold(model, index, value):
    mt = [n for n in model.graph if n.op_type == "MultiThreshold"][index]
    t = mt.inputs[1].const_value.numpy().copy()
    t[0, 2] = value  # threshold of level 3
    mt.inputs[1].const_value = ir.tensor(t)


def _x():
    return np.random.default_rng(0).uniform(-3, 3, size=(64, 16)).astype(np.float32)


def test_every_multithreshold_is_traced_and_agrees(kit):
    original = _two_layers(kit, EXACT_SCALES)
    streamlined = _streamlined(_two_layers, kit, EXACT_SCALES)
    sources = sorted(n.metadata_props[QUANTIZER_KEY] for n in streamlined.graph if n.op_type == "MultiThreshold")
    assert sources == ["a", "xq", "y"]
    result = compare_layers(original, streamlined, {"x": _x()})
    assert result.ok and not result.untraced
    rows = [(layer.quantizer, layer.elements, layer.differing) for layer in result.layers]
    assert rows == [("xq", 1024, 0), ("a", 2048, 0), ("y", 512, 0)]
    assert all(out.ok for out in result.outputs)


def test_exact_ties_decided_by_float32_order_are_near_ties(kit):
    original = _two_layers(kit, DECIMAL_SCALES)
    result = compare_layers(original, _streamlined(_two_layers, kit, DECIMAL_SCALES), {"x": _x()})
    _, hidden, _ = result.layers
    assert result.ok
    assert 0 < hidden.differing == hidden.near_ties
    # independent count of the exact ties: integer accumulator of the hidden layer, in int64
    xint = np.clip(np.round(_x() / np.float32(0.02)), -128, 127).astype(np.int64)
    w = original.graph.initializers["w"].const_value.numpy()
    wint = np.clip(np.round(w / np.float32(0.1)), -7, 7).astype(np.int64)
    acc = xint @ wint
    ties = int(((acc > 0) & (acc % 150 == 75) & (acc < 150 * 15)).sum())
    assert hidden.differing <= ties


def test_one_ulp_at_a_tie_is_a_near_tie(kit):
    streamlined = _streamlined(_single_quantizer, kit)
    _set_threshold(streamlined, 0, np.float32(0.625))  # exact tie value: now rounds it up to 3
    result = compare_layers(_single_quantizer(kit), streamlined, {"x": X})
    (layer,) = result.layers
    assert (layer.differing, layer.near_ties, layer.max_levels_off) == (1, 1, 1.0)
    assert result.ok  # the output after the layer reads the original's level: unchanged
    assert "1 of 8 levels differ, 1 of them near-ties" in result.summary()


def test_a_moved_threshold_is_a_real_difference(kit):
    streamlined = _streamlined(_single_quantizer, kit)
    _set_threshold(streamlined, 0, np.float32(0.6))  # 0.61 now reaches level 3; it is 0.06 steps from no tie
    result = compare_layers(_single_quantizer(kit), streamlined, {"x": X})
    (layer,) = result.layers
    assert (layer.differing, layer.near_ties) == (2, 1)  # 0.625 (tie) and 0.61 (not)
    assert not result.ok
    assert "first real difference at 'q_y_mt'" in result.summary()


def test_a_fault_stays_in_its_layer(kit):
    """Later layers run on the original's levels, so a wrong hidden layer does not spread."""
    original = _two_layers(kit, EXACT_SCALES)
    streamlined = _streamlined(_two_layers, kit, EXACT_SCALES)
    (mt,) = [n for n in streamlined.graph if n.metadata_props.get(QUANTIZER_KEY) == "a"]
    t = mt.inputs[1].const_value.numpy().copy()
    mt.inputs[1].const_value = ir.tensor(t + np.float32(3.0))  # integer input: each level boundary moves by 3
    result = compare_layers(original, streamlined, {"x": _x()})
    inputs, hidden, last = result.layers
    assert hidden.differing > hidden.near_ties and not hidden.ok
    assert inputs.differing == last.differing == 0 and inputs.ok and last.ok
    assert not result.ok


def test_multithreshold_without_source_is_reported_untraced(kit):
    original = _single_quantizer(kit)
    streamlined = _streamlined(_single_quantizer, kit)
    for node in streamlined.graph:
        node.metadata_props.pop(QUANTIZER_KEY, None)
    result = compare_layers(original, streamlined, {"x": X})
    assert result.layers == [] and result.untraced == ["q_y_mt: not made from an activation quantizer"]
    assert result.ok  # nothing substituted: the outputs themselves are compared, and agree
