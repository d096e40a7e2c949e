"""qonnx-tools: ONNX-native, framework-free tools for quantized neural networks."""

__version__ = "0.1.0"
