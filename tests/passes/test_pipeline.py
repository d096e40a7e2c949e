"""Pipeline strings, options, bounded fixpoints, records and verify-each."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError, VerificationError
from qonnx_tools.passes import (
    Fixpoint,
    FixpointNotReached,
    PassResult,
    Pipeline,
    QonnxPass,
    parse_pipeline,
    register_pass,
    run_passes,
)


@register_pass
@dataclasses.dataclass
class _Countdown(QonnxPass):
    """Test pass: changes the model (a doc string) until its counter reaches zero."""

    name = "test-countdown"
    remaining: int = 2
    scale: float = 1.0
    enabled: bool = True

    def call(self, model):
        if self.remaining <= 0 or not self.enabled:
            return PassResult(model, False)
        self.remaining -= 1
        model.graph.doc_string = f"{self.remaining}"
        return PassResult(model, True)


@register_pass
@dataclasses.dataclass
class _Corrupt(QonnxPass):
    """Test pass: doubles the first initializer (changes outputs)."""

    name = "test-corrupt"

    def call(self, model):
        value = model.graph.initializers["w"]
        value.const_value = ir.tensor(value.const_value.numpy() * 2, name="w")
        return PassResult(model, True)


def _model():
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1, 3], [1, 2, 3])],
    )
    return ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_parse_options_and_types():
    pipeline = parse_pipeline("test-countdown{remaining=5 scale=0.5 enabled=false}")
    (p,) = pipeline.passes
    assert (p.remaining, p.scale, p.enabled) == (5, 0.5, False)
    assert pipeline.describe() == "test-countdown{remaining=5 scale=0.5 enabled=False}"


def test_fixpoint_runs_until_stable_and_records():
    pipeline = parse_pipeline("fixpoint{steps=10}(test-countdown{remaining=3})")
    assert isinstance(pipeline.passes[0], Fixpoint)
    result = pipeline(_model())
    assert result.modified
    assert [r.modified for r in pipeline.records] == [True, True, True, False]
    assert all(r.seconds >= 0 for r in pipeline.records)


def test_fixpoint_bound_warns_with_pass_names():
    pipeline = parse_pipeline("fixpoint{steps=2}(test-countdown{remaining=5})")
    with pytest.warns(FixpointNotReached, match="test-countdown"):
        pipeline(_model())


def test_unmodified_model_reports_false():
    result = run_passes(_model(), "test-countdown{remaining=0}")
    assert result.modified is False


@pytest.mark.parametrize(
    "text, message",
    [
        ("no-such-pass", "unknown pass"),
        ("test-countdown{bogus=1}", "no option 'bogus'"),
        ("test-countdown{remaining=abc}", "not a valid"),
        ("fixpoint(test-countdown", "missing"),
        ("", "empty pipeline"),
        ("test-countdown{remaining}", "key=value"),
    ],
)
def test_bad_pipeline_strings(text, message):
    with pytest.raises(BadInputError, match=message):
        parse_pipeline(text)


def test_verify_each_names_the_pass_that_changed_outputs():
    model = _model()
    pipeline = parse_pipeline("test-countdown{remaining=1},test-corrupt", verify_each=True)
    with pytest.raises(VerificationError, match="test-corrupt"):
        pipeline(model)


def test_verify_each_accepts_output_preserving_passes():
    pipeline = Pipeline([_Countdown(remaining=1)], verify_each=True, verify_inputs={"x": np.zeros((1, 3), np.float32)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pipeline(_model()).modified
