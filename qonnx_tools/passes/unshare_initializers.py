"""unshare-initializers: the inverse of dedupe-initializers, for consumers that turn
every initializer into a layer owned by one node (hls4ml removes a quantizer's
parameter layer when it folds the quantizer, so a second quantizer sharing it
loses its parameter). Every extra consumer of a shared initializer gets its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx_tools._ir import ir
from qonnx_tools.passes.base import PassResult, QonnxPass


@dataclass
class UnshareInitializers(QonnxPass, name="unshare-initializers"):
    """one initializer per consumer: a shared initializer is copied for every extra use (for hls4ml)"""

    def call(self, model: ir.Model) -> PassResult:
        from qonnx_tools.passes._rewrite import all_value_names, unique_name

        graph = model.graph
        used = all_value_names(model)
        modified = False
        for value in list(graph.initializers.values()):
            for node, index in list(value.uses())[1:]:
                copy = ir.Value(
                    name=unique_name(value.name, used), shape=value.shape, type=value.type,
                    const_value=value.const_value,
                )
                copy.meta.update(value.meta)
                graph.register_initializer(copy)
                node.replace_input_with(index, copy)
                modified = True
        return PassResult(model, modified)
