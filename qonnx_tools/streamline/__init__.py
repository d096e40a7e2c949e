"""FINN-style streamlining: QONNX -> integer weights + MultiThreshold activations, float ops absorbed.

Modules: ``frontend`` (quantizers -> FINN form), ``thresholds`` (exact threshold math),
``move``, ``absorb``, ``collapse``, ``residual`` (the rules), ``pipeline`` (the
``streamline`` pass), ``report`` (``streamline_report``) and ``layerwise``
(``compare_layers``: each MultiThreshold checked on the original's own layer inputs).
Importing this package registers every pass.
"""

from qonnx_tools.streamline import absorb, collapse, frontend, move, residual  # noqa: F401  (register passes)
from qonnx_tools.streamline.pipeline import Streamline, streamline, streamline_pipeline_text
from qonnx_tools.streamline.layerwise import LayerwiseResult, compare_layers
from qonnx_tools.streamline.report import streamline_report

__all__ = ["LayerwiseResult", "Streamline", "compare_layers", "streamline", "streamline_pipeline_text", "streamline_report"]
