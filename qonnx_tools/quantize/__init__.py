"""Post-training quantization of float models (issue 19; in progress).

``spec`` turns a calibrated range (``amax``) into QONNX Quant parameters with pytorch_quantization's
conventions; ``calibrate`` holds the calibrators that find ``amax`` from data; ``observe`` streams
calibration batches through our executor into them.
"""

from qonnx_tools.quantize.calibrate import HistogramCalibrator, MaxCalibrator
from qonnx_tools.quantize.observe import observe
from qonnx_tools.quantize.spec import QuantParams, QuantSpec, quant_params

__all__ = ["HistogramCalibrator", "MaxCalibrator", "QuantParams", "QuantSpec", "observe", "quant_params"]
