"""Post-training quantization of float models: ``quantize(model, calib_batches, config)``.

``spec`` turns a calibrated range (``amax``) into QONNX Quant parameters with pytorch_quantization's
conventions; ``calibrate`` holds the calibrators that find ``amax`` from data; ``observe`` streams
calibration batches through our executor into them; ``config`` holds the choices (bit widths, method,
per-layer rules from TOML/JSON); ``apply`` plans, calibrates and inserts the quantizers; ``data``
reads data sets from disk in batches.
"""

from qonnx_tools.quantize.apply import QuantizeResult, TensorReport, quantize
from qonnx_tools.quantize.calibrate import HistogramCalibrator, MaxCalibrator
from qonnx_tools.quantize.config import LayerRule, QuantizeConfig, load_config
from qonnx_tools.quantize.observe import observe
from qonnx_tools.quantize.spec import QuantParams, QuantSpec, quant_params

__all__ = ["HistogramCalibrator", "LayerRule", "MaxCalibrator", "QuantParams", "QuantSpec", "QuantizeConfig",
           "QuantizeResult", "TensorReport", "load_config", "observe", "quant_params", "quantize"]
