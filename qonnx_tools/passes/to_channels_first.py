"""to-channels-first: the inverse of ``to-channels-last``.

Channels-last ops (``qonnx.custom_op.channels_last`` Conv, MaxPool,
BatchNormalization) become standard NCHW ops between Transposes, and every
NCHW<->NHWC Transpose is sunk and cancelled as ``to-channels-last`` does
(_channels_last.py). The channels_last opset import goes when no such op is left.
Nodes whose input rank is unknown are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import ir
from qonnx_tools.domains import CHANNELS_LAST, STANDARD, canonical_domain
from qonnx_tools.ops.channels_last import to_channels_first, to_channels_last
from qonnx_tools.passes._channels_last import CHANNELS_LAST_OPS, fingerprint, layout_state, perm_of, rank_of
from qonnx_tools.passes.base import PassResult, QonnxPass


@dataclass
class ToChannelsFirst(QonnxPass, name="to-channels-first"):
    """convert channels_last ops back to standard NCHW ops and cancel NCHW<->NHWC Transposes"""

    def call(self, model: ir.Model) -> PassResult:
        state = layout_state(model)
        modified = False
        for node in list(model.graph):
            if canonical_domain(node.domain) == CHANNELS_LAST and node.op_type in CHANNELS_LAST_OPS:
                rank = rank_of(node.inputs[0]) or (rank_of(node.inputs[1]) if node.op_type == "Conv" else None)
                if rank is None:
                    continue
                state.wrap(node, STANDARD, to_channels_first(rank), to_channels_last(rank))
                modified = True
            elif (perm := perm_of(node)) is not None and len(perm) >= 3 and perm == to_channels_last(len(perm)):
                state.work.append(node)
                state.inserted.append(node)
        if not modified and not state.work:
            return PassResult(model, False)
        before = fingerprint(model)
        state.run()
        state.finish()
        modified = modified or before != fingerprint(model)
        if not any(canonical_domain(n.domain) == CHANNELS_LAST for n in model.graph):
            for domain in list(model.opset_imports):
                if canonical_domain(domain) == CHANNELS_LAST:
                    del model.opset_imports[domain]
        return PassResult(model, modified)
