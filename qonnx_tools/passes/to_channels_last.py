"""to-channels-last: move NCHW regions of a model to channels-last (option ``mode``):

- ``"qonnx"`` (default; what hls4ml reads): Conv, MaxPool and BatchNormalization on
  tensors of rank >= 3 become the ``qonnx.custom_op.channels_last`` ops (same
  attributes, X and Y as (N, *spatial, C)), with a Transpose NCHW->NHWC before and
  NHWC->NCHW after. Conv weights become (M, *kernel, C/group) as qonnx defines the
  domain: constant weights (and quantizers of constant weights) are transposed in
  the initializers, other weights get a Transpose node. Other layout-dependent ops (AveragePool,
  global pools, ConvTranspose, non-nearest Resize) have no channels-last form and
  stay NCHW behind Transposes.
- ``"transpose"`` (for onnxruntime): every layout-dependent op (Conv, ConvTranspose,
  pools, BatchNormalization, non-nearest Resize) stays a standard op wrapped as
  ``Transpose(to NCHW) -> op -> Transpose(to NHWC)``, so tensors between them are NHWC.

Then the inserted Transposes are sunk towards the consumers and cancelled
(_channels_last.py, shared with ``to-channels-first``, the inverse). Pure data
movement: executor outputs are bit-identical.

Needs known ranks (run ``infer-shapes`` first); nodes whose input rank is unknown
are left alone and listed in ``declined``.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.domains import CHANNELS_LAST, STANDARD, canonical_domain
from qonnx_tools.ops.channels_last import to_channels_first, to_channels_last
from qonnx_tools.passes._channels_last import (
    CHANNELS_LAST_OPS,
    Layout,
    fingerprint,
    layout_state,
    perm_of,
    rank_of,
)
from qonnx_tools.passes.base import PassResult, QonnxPass

#: Standard ops whose meaning depends on the NCHW layout.
LAYOUT_OPS = (
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "BatchNormalization", "InstanceNormalization",
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Resize", "Upsample",
)


@dataclass
class ToChannelsLast(QonnxPass, name="to-channels-last"):
    """convert NCHW conv/pool/batchnorm regions to channels-last (mode=qonnx: channels_last ops;
    mode=transpose: NHWC between Transposes) and cancel the Transposes

    ``mode``: ``"qonnx"`` (channels_last-domain ops, for hls4ml) or ``"transpose"``
    (standard ops between Transposes, for onnxruntime).
    """

    mode: str = "qonnx"

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.errors import BadInputError

        if self.mode not in ("qonnx", "transpose"):
            raise BadInputError(f"to-channels-last: mode must be 'qonnx' or 'transpose', not {self.mode!r}")
        state = layout_state(model)
        modified = False
        before = fingerprint(model)
        for node in list(model.graph):
            if canonical_domain(node.domain) != STANDARD or node.op_type not in LAYOUT_OPS:
                continue
            if node.op_type in ("Resize", "Upsample") and node.attributes.get_string("mode", "nearest") == "nearest":
                continue  # moved through by the Transposes, not wrapped
            rank = rank_of(node.inputs[0]) if node.inputs else None
            if rank is None and node.op_type == "Conv" and len(node.inputs) > 1:
                rank = rank_of(node.inputs[1])
            if rank is None or rank < 3:
                if rank is None:
                    self.decline(Decline("input rank unknown (run infer-shapes)"), node)
                continue
            if node.op_type == "MaxPool" and len(node.outputs) > 1 and node.outputs[1] is not None and (
                node.outputs[1].uses() or node.outputs[1].is_graph_output()
            ):
                self.decline(Decline("the Indices output is used"), node)
                continue
            if node.op_type == "BatchNormalization" and len(node.outputs) > 1:
                self.decline(Decline("training-mode outputs"), node)
                continue
            first, last = to_channels_first(rank), to_channels_last(rank)
            if self.mode == "qonnx" and node.op_type in CHANNELS_LAST_OPS:
                state.wrap(node, CHANNELS_LAST, last, first)
                model.opset_imports.setdefault(CHANNELS_LAST, 1)
            elif self.mode == "transpose":
                uses = list(node.outputs[0].uses())
                if len(uses) == 1 and perm_of(uses[0][0]) == last and not node.outputs[0].is_graph_output():
                    continue  # already NHWC after it (a second run)
                _nhwc_after(state, node, first, last)
            else:
                continue
            modified = True
        if modified:
            state.run()
            state.finish()
            # honest result: in transpose mode every inserted pair may have cancelled again
            modified = before != fingerprint(model)
        return PassResult(model, modified)


def _nhwc_after(state: Layout, node: ir.Node, first, last) -> None:
    """Transpose mode: ``node -> Transpose(to NHWC) -> Transpose(to NCHW) -> users``; the second one is sunk."""
    graph = node.graph
    base = node.name or node.op_type
    y = node.outputs[0]
    users = list(y.uses())
    was_output = y.is_graph_output()
    t_last = state.transpose(y, last, f"{base}_to_nhwc", sink=False)
    t_first = state.transpose(t_last.outputs[0], first, f"{base}_to_nchw")
    t_first.outputs[0].meta.update(y.meta)
    graph.insert_after(node, [t_last, t_first])
    state.reroute(y, t_first.outputs[0], users, was_output, "nchw")
