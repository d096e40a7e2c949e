"""Post-training quantization on real data: the digits classifier (models/digits) at 8/6/4/2 bits.

Run by hand: ``python benchmarks/digits_ptq.py [--json FILE]``. Prints the markdown table of README's
"Post-training quantization" section: top-1 on the 450 held-out images of the float model (scikit-learn's
own predictions from the shipped reference, our executor, onnxruntime), of ``qonnx quantize`` at each bit
width (weights and activations alike) under two settings, and of onnxruntime's 8-bit ``quantize_static``
(QDQ, symmetric int8, MinMax, per tensor) calibrated on the same 256 training rows. Every quantized model
is also converted to QCDQ and run in onnxruntime; its top-1 is printed beside ours.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.convert import convert
from qonnx_tools.model_io import load
from qonnx_tools.quantize import quantize
from qonnx_tools.runtime import ort_session

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits"
SETTINGS = {  # name -> quantize() options
    "max, per tensor": {"method": "max", "per_channel": False},
    "mse, per channel": {"method": "mse", "per_channel": True},
}


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(DIGITS / "digits_calib.npz") as calib, np.load(DIGITS / "digits_test.npz") as test:
        return calib["x"], test["x"], test["y"]


def top1(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(scores.argmax(axis=1) == labels))


def executor_top1(model: ir.Model, x: np.ndarray, y: np.ndarray) -> float:
    from qonnx_tools.executor import Executor

    return top1(Executor(model).run({"x": x})["probabilities"], y)


def ort_top1(proto_or_model, x: np.ndarray, y: np.ndarray) -> float:
    return top1(ort_session(proto_or_model).run(["probabilities"], {"x": x})[0], y)


def ours(bits: int, options: dict, calib: np.ndarray) -> ir.Model:
    model = load(DIGITS / "digits_mlp.onnx")
    quantize(model, [calib[i:i + 32] for i in range(0, len(calib), 32)], weights=bits, acts=bits, **options)
    return model


def qcdq(model: ir.Model) -> ir.Model:
    copy = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    convert(copy, "qcdq")
    return copy


def onnxruntime_static(calib: np.ndarray, out: Path) -> Path:
    from qonnx_tools.testing import ort_quantize_static_int8

    ort_quantize_static_int8(DIGITS / "digits_mlp.onnx", out, [{"x": calib[i:i + 32]} for i in range(0, len(calib), 32)])
    return out


def rows() -> list[dict]:
    calib, x, y = data()
    with np.load(DIGITS / "digits_mlp_ref.npz") as ref:
        sklearn = top1(ref["output:probabilities"], y)
    float_model = load(DIGITS / "digits_mlp.onnx")
    table = [{"model": "float (scikit-learn's own predictions)", "ours": sklearn, "onnxruntime": None},
             {"model": "float", "ours": executor_top1(float_model, x, y), "onnxruntime": ort_top1(float_model, x, y)}]
    for setting, options in SETTINGS.items():
        for bits in (8, 6, 4, 2):
            model = ours(bits, options, calib)
            table.append({"model": f"qonnx quantize W{bits}A{bits}, {setting}", "ours": executor_top1(model, x, y),
                          "onnxruntime": ort_top1(qcdq(model), x, y)})
    with tempfile.TemporaryDirectory() as tmp:
        path = onnxruntime_static(calib, Path(tmp) / "ort_int8.onnx")
        table.append({"model": "onnxruntime quantize_static W8A8 (QDQ, MinMax, symmetric, per tensor)",
                      "ours": executor_top1(load(path), x, y), "onnxruntime": ort_top1(str(path), x, y)})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    table = rows()
    print("| model | top-1, our executor | top-1, onnxruntime (QCDQ) |")
    print("|---|---:|---:|")
    for row in table:
        ort = "" if row["onnxruntime"] is None else f"{100 * row['onnxruntime']:.2f}%"
        print(f"| {row['model']} | {100 * row['ours']:.2f}% | {ort} |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
