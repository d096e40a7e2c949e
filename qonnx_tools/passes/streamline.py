"""Registers the streamlining passes (they live in ``qonnx_tools.streamline``)."""

import qonnx_tools.streamline  # noqa: F401  (importing the package runs @register_pass)
