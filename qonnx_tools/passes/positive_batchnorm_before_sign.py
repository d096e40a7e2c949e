"""positive-batchnorm-before-sign: a BatchNormalization read only by BipolarQuant gets a positive
scale on every channel, by negating the channels with a negative one in its gamma and mean and in the
weights of the MatMul/Conv that feeds it (exact: every number is only negated).

Why: hls4ml fuses BatchNormalization + a sign activation into one comparison ``x >= -beta'/a`` per
channel (``a = gamma / sqrt(var + eps)``), which is the sign of ``a * x + beta'`` only when ``a > 0``.
With ``a < 0`` the comparison is reversed: on TFC_1W1A (12 of 192 channels negative) 16 of 36
top-1 classes differed from the model.

The producer's weights must be a Quant (IntQuant) of a constant with zero point 0, signed narrow
range and symmetric rounding (ROUND or ROUND_TO_ZERO), so that quantizing the negated weight gives
the negated value; or a plain constant. Left alone (with the reason): a producer with another
reader, a Conv with a bias, shared weights, any other weight quantizer.
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

_NOT_BEFORE_SIGN = "not a BatchNormalization read only by BipolarQuant"
_SYMMETRIC_ROUNDING = ("ROUND", "ROUND_TO_ZERO")


def _negatable_weights(weights: ir.Value | None) -> ir.Value | Decline:
    """The constant whose negation negates ``weights`` (itself, or a symmetric Quant's float input)."""
    if weights is None:
        return Decline("no weights")
    if len(weights.uses()) != 1:
        return Decline("the weights have another reader", weights)
    if constant_array(weights) is not None:
        return weights if weights.is_initializer() else Decline("the weights are not an initializer", weights)
    quant = weights.producer()
    if quant is None or canonical_domain(quant.domain) != QONNX or quant.op_type not in ("Quant", "IntQuant"):
        return Decline("the weights are neither a constant nor a Quant of one", weights)
    zero_point = constant_array(quant.inputs[2]) if len(quant.inputs) > 2 else None
    if (quant.attributes.get_int("signed", 1) != 1 or quant.attributes.get_int("narrow", 0) != 1
            or zero_point is None or np.any(zero_point != 0)
            or quant.attributes.get_string("rounding_mode", "ROUND").upper() not in _SYMMETRIC_ROUNDING):
        return Decline("the weight quantizer is not symmetric (signed, narrow, zero point 0, ROUND)", quant)
    source = quant.inputs[0]
    if source is None or constant_array(source) is None or not source.is_initializer() or len(source.uses()) != 1:
        return Decline("the weight quantizer's input is not an unshared initializer", quant)
    return source


@dataclass
class PositiveBatchnormBeforeSign(QonnxPass, name="positive-batchnorm-before-sign"):
    """BatchNormalization -> BipolarQuant: negative-scale channels are negated in gamma, mean and the weights (exact)"""

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        used = used_names(model)

        def rewrite(bn: ir.Node):
            uses = bn.outputs[0].uses()
            if not uses or bn.outputs[0].is_graph_output() or not all(
                    u.op_type == "BipolarQuant" and canonical_domain(u.domain) == QONNX and i == 0 for u, i in uses):
                return Decline(_NOT_BEFORE_SIGN)
            gamma, mean = (constant_array(v) if v is not None else None for v in (bn.inputs[1], bn.inputs[3]))
            if gamma is None or mean is None or gamma.ndim != 1:
                return Decline("gamma or mean is not a constant vector", bn)
            negative = gamma < 0
            if not negative.any():
                return Decline(_NOT_BEFORE_SIGN)
            x = bn.inputs[0]
            layer = x.producer() if x is not None else None
            if layer is None or len(x.uses()) != 1 or x.is_graph_output():
                return Decline("the BatchNormalization's input has another reader or no producer", bn)
            if layer.op_type == "MatMul" and canonical_domain(layer.domain) == STANDARD:
                # the weight's columns are the BatchNormalization's channels only on a rank-2 output (a
                # standard BatchNormalization normalises axis 1)
                if x.shape is None or len(x.shape) != 2:
                    return Decline("a MatMul whose output is not rank 2 (its columns are not axis 1)", layer)
                axis = -1
            elif layer.op_type == "Conv" and canonical_domain(layer.domain) in (STANDARD, CHANNELS_LAST):
                if len(layer.inputs) > 2 and layer.inputs[2] is not None:
                    return Decline("a Conv with a bias", layer)
                axis = 0
            else:
                return Decline("the BatchNormalization is not fed by a MatMul or Conv", bn)
            source = _negatable_weights(layer.inputs[1])
            if isinstance(source, Decline):
                return source
            weights = constant_array(source)
            if weights.ndim < 2 or weights.shape[axis] != gamma.size:
                return Decline(f"weights of shape {list(weights.shape)} do not match {gamma.size} channels", layer)
            flip = np.where(negative, -1, 1).astype(weights.dtype)
            flip = flip.reshape((-1,) + (1,) * (weights.ndim - 1)) if axis == 0 else flip
            source.const_value = ir.Tensor(np.ascontiguousarray(weights * flip), name=source.name)
            for index, array in ((1, np.where(negative, -gamma, gamma)), (3, np.where(negative, -mean, mean))):
                value = bn.inputs[index]
                if value.is_initializer() and len(value.uses()) == 1:
                    value.const_value = ir.Tensor(np.ascontiguousarray(array), name=value.name)
                else:  # shared or a Constant node: the BatchNormalization gets its own copy
                    bn.replace_input_with(index, new_initializer(
                        graph, array, unique_name(f"{value.name}_signed", used), like=value))
            return True

        candidates = [n for n in graph
                      if n.op_type == "BatchNormalization" and canonical_domain(n.domain) in (STANDARD, CHANNELS_LAST)]
        return PassResult(model, self.rewrite_each(candidates, rewrite, quiet=(_NOT_BEFORE_SIGN,)))
