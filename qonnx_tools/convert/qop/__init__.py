"""QCDQ -> QOp: rewrite quantized layers as QLinearConv / QLinearMatMul (``to_qop``).

A QOp model computes each quantized layer with one integer operator that reads
integer activations and writes integer activations: QuantizeLinear where float
data enters the quantized domain, QLinearConv / QLinearMatMul for the layers,
DequantizeLinear where float resumes. This module works on QCDQ form
(QuantizeLinear -> [Clip] -> DequantizeLinear for activations, integer constant
-> [Clip] -> DequantizeLinear for weights, int32 bias -> DequantizeLinear); a
model that still holds QONNX ops is first converted with ``to_qcdq``.

Layer pattern (every part must be present, as in any QOp exporter)::

    DQ(x_q; s_x, zp_x) --------------------.
    W_int -> [Clip] -> DQ(s_w, zp_w) -> [Transpose] -> Conv | MatMul | Gemm
    b_int32 -> DQ(s_b)  or float bias ----'
        -> [Add bias] -> [BatchNormalization*] -> [Relu] -> Q(s_y, zp_y) -> [Clip] -> ...

becomes ``x_q -> QLinearConv/QLinearMatMul -> [Clip] -> ...``:

- Conv -> QLinearConv (per-tensor or per-output-channel weight scales, group,
  pads, strides, dilations, auto_pad as they were).
- MatMul without bias -> QLinearMatMul (per-column weight scales are part of
  QLinearMatMul since opset 10 and run in onnxruntime, checked against our
  executor bit for bit); a MatMul of two quantized activations becomes a
  QLinearMatMul too.
- Gemm / MatMul + bias -> Reshape [-1, K, 1] + 1-D QLinearConv + Reshape, as
  Brevitas' QOp exporter does: QLinearMatMul has no bias input, and adding a
  bias after it requantized would add a second rounding. Gemm without bias
  -> QLinearMatMul with the transposed weight. ``alpha`` goes into the weight
  scale, ``beta`` into the bias, ``transA`` becomes an integer Transpose.
- Weights are folded at conversion time into 8-bit constants: a Clip on the
  weight integers (sub-8-bit weights) and Transposes between the weight's
  DequantizeLinear and the layer are applied to the constant; uint8 weights are
  shifted to int8 (w - 128, zp - 128: exact) because onnxruntime has no
  int8-activation x uint8-weight kernels; int4/int2 weights are widened.
- Bias: QLinearConv adds an int32 bias in units of s_x * s_w. A bias quantized
  at exactly that scale is used as it is; otherwise (another scale, a float bias,
  a folded BatchNormalization, Gemm alpha/beta) it is put on that grid when
  that is exact. When it is not exact and the
  weight zero points are 0, the weight integers of each channel are first
  multiplied by the largest k that keeps them within 7 bits (|k w| <= 63, clear
  of onnxruntime's int16 u8s8 saturation; the int32 accumulator checked) while
  w_scale is divided by k -- the weights are unchanged, the bias grid
  is k times finer (this is what makes BatchNormalization folding accurate on
  binary/ternary weights). When it is still not exact, the layer becomes
  ConvInteger / MatMulInteger with the bias in float before the output quantizer
  (the float epilogue below: exact); ``requantize_bias=True`` (CLI
  ``--requantize-bias``) rounds it to round(b / (s_x * s_w)) instead, giving
  QLinearConv, and reports the largest change in ``notes`` (in output units and
  output quantization steps); with ``float_outputs=False`` and no requantizing
  the layer is refused.
- Relu between the layer and its output quantizer is exact in the integer
  domain: Q(relu(y)) = max(Q(y), zp_y). It disappears when the integer range
  (container, or a following integer Clip) already starts at zp_y or above, and
  becomes an integer ``Clip(zp_y, max)`` otherwise.
- A Clip on the quantized output (sub-8-bit activations) is kept as it is:
  QLinearConv saturates only to its 8-bit container.
- onnxruntime's QLinearConv/QLinearMatMul write the input's container (no
  int8 -> uint8 or uint8 -> int8 kernels). For such a layer the output is
  computed in the input's container with the zero point moved by 128 (a
  bijection of the 8-bit range) and relabelled exactly by DequantizeLinear ->
  the original QuantizeLinear (same scale).
- Per-channel output scales (QLinear ops take a per-tensor y_scale):
  ConvInteger / MatMulInteger, then Cast * (s_x * s_w) + bias [-> Relu] in float
  into the original per-channel QuantizeLinear (the "integer op + float
  epilogue" form). A depthwise Conv whose input is quantized per channel takes
  the input scales into its per-channel weight scales (x_scale = 1): each
  output channel sums one input channel only. Any other per-channel input
  quantization is refused (the scales vary along the accumulation).
- int4/uint4/int2/uint2 activations (opset 21 QDQ) run in 8-bit containers:
  Cast to int8/uint8 before the layer, Clip to the narrow range and Cast back
  after it, all exact.
- An inference BatchNormalization between a Conv / MatMul / Gemm and its output
  quantizer is first folded exactly where that can be proved
  (``fold-batchnorm-into-qdq``: per-channel weight scales and an int32 bias chosen so
  that every reachable output code is unchanged; the same rewrite ``--target ort``
  QCDQ uses), so such a layer becomes QLinearConv by default. For the rest,
  ``fold_batchnorm=True`` also folds the BatchNormalization between the
  layer and its quantizer into per-channel weight scales (negative factors
  negate the weight integers) and the int32 bias. This changes the arithmetic
  (the bias is rounded to the accumulator scale; outputs may move by one step
  where the QDQ value lies within that rounding of a tie), so it is opt-in and
  reported. By default such a layer takes the float-epilogue form below instead.
- A layer with quantized input and weight but no output quantizer (its output
  feeds BatchNormalization, another float op or a graph output) becomes
  ConvInteger / MatMulInteger, then Cast * (s_x * s_w) + bias in float, and what
  followed the layer stays as it was (``float_outputs``, the default; CLI
  ``--no-float-epilogue`` refuses such layers, with a hint naming
  ``--fold-batchnorm`` where a BatchNormalization is in the way). The integer
  accumulation is exact; onnxruntime's ConvInteger is slower than QLinearConv.

Before the layers, exact integer-domain moves (one topological sweep; the
``move-into-integer-domain`` pass, ``qonnx_tools.passes.move_into_integer_domain``):

- MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze and Identity right
  after a DequantizeLinear move before it (they commute with a positive
  per-tensor scale; MaxPool and Transpose also with per-channel scales);
- Relu right after a DequantizeLinear is dropped when the integer range already
  starts at the zero point, else becomes an integer Clip(zp, max);
- QuantizeLinear(DequantizeLinear(q)) with the same scale, zero point and
  container is q itself and is removed.

Layers that lack an input or weight quantizer (or, with ``float_outputs=False``,
an output quantizer), whose parameters QOp
cannot express, or whose pattern is ambiguous are left in QDQ/float form and
listed in ``ConversionResult.unconverted`` with the reason (which quantizer is
missing and what the layer's data meets instead). ``allow_partial=False``
raises ConversionError listing them.

Opset: the model's ai.onnx opset is kept. QLinearConv/QLinearMatMul need 10;
integer Clip and integer MaxPool (Relu folding, narrow containers, moving
MaxPool) need 12 -- below that those features are skipped or the layer is
refused with a hint; pass ``opset=13`` (CLI: ``--opset 13``) to upgrade first
(onnx's version converter, through the opset-upgrade pass).

Everything is done with use-def links, in time linear in the graph size.

Layout, one module per phase, sharing one ``state.Conversion`` record (the model, its
``Editor``, the options, notes and refusals):

- ``driver``: ``to_qop`` -- QONNX -> QCDQ, the opset, the phases in order, the notes;
- phase 1, the integer-domain moves: the ``move-into-integer-domain`` pass;
- ``match``: phase 2, a layer's quantizers, weight, bias and epilogue (``Layer``);
- ``weights``: phase 3, the 8-bit weight, its scales and the int32 bias (``WeightPlan``);
- ``rewrite``: phase 4, the integer operators written in the layer's place.

A layer that cannot be converted raises ``qonnx_tools.decline.Decline``; its reason
is what ``ConversionResult.unconverted`` lists. Reasons name no node or value (those
go into the decline's ``where``, listed as ``Unconverted.detail``), so that equal
reasons group in reports, and their hints name ``qonnx convert`` flags
(``qonnx_tools.convert.FOLD_BATCHNORM_FLAG``, ...), never Python keywords.

CLI flags of the options: ``--fold-batchnorm`` (``fold_batchnorm=True``),
``--requantize-bias`` / ``--no-requantize-bias`` (``requantize_bias``, default False),
``--opset N``.
"""

from qonnx_tools.convert.qop.driver import to_qop
from qonnx_tools.convert.qop.state import REQUIRES_ALL

__all__ = ["to_qop", "REQUIRES_ALL"]
