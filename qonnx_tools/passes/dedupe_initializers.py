"""dedupe-initializers: initializers with equal dtype, shape and bytes become one
(onnx_ir's DeduplicateInitializersPass).

Graph inputs and outputs are never merged. When merged initializers carried
different datatype annotations, the first one's is kept (it describes the same values).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from qonnx_tools._ir import common_passes, ir
from qonnx_tools.passes.base import PassResult, QonnxPass


@dataclass
class DedupeInitializers(QonnxPass, name="dedupe-initializers"):
    """merge initializers with identical dtype, shape and content (up to size_limit elements)"""

    #: Initializers with more elements than this are not compared.
    size_limit: int = 1 << 20

    def call(self, model: ir.Model) -> PassResult:
        # The onnx_ir pass warns once per initializer that is a graph input or output
        # (every weight of a Brevitas export); skipping those is expected here.
        log = logging.getLogger("onnx_ir.passes.common.initializer_deduplication")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            result = common_passes.DeduplicateInitializersPass(size_limit=self.size_limit)(model)
        finally:
            log.setLevel(level)
        return PassResult(model, bool(result.modified))
