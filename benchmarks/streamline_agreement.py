"""How closely a streamlined model follows its original, end to end and layer by layer.

Run by hand (needs ../shared): ``python benchmarks/streamline_agreement.py [--images 100] [MODEL]``
(default MODEL: Brevitas' imagenet_mobilenet_v1_4b). Seeded uniform [0, 1) images, run in
batches of the model's declared batch size.

Prints, for N images:
* top-1 agreement of the original in float32 with the original in float64 (the same graph,
  every float initializer and the input cast to float64: a far less noisy evaluation of
  the model's real-number semantics), and of the streamlined model with both;
* the layer-by-layer check (``qonnx_tools.streamline.layerwise``) summed over all batches:
  levels that differ, and how many of them are near-ties.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.executor import Executor
from qonnx_tools.model_io import load
from qonnx_tools.streamline import Streamline
from qonnx_tools.streamline.layerwise import compare_layers

DEFAULT = Path(__file__).resolve().parents[2] / "shared/models/brevitas/imagenet_mobilenet_v1_4b/qonnx.onnx"


def as_float64(model: ir.Model) -> ir.Model:
    """The same graph computing in float64: float32 initializers, tensor attributes and types widened."""
    for value in model.graph.initializers.values():
        array = value.const_value.numpy()
        if array.dtype == np.float32:
            value.const_value = ir.tensor(array.astype(np.float64), name=value.name)
    for node in model.graph:
        for attribute in list(node.attributes.values()):
            if attribute.type == ir.AttributeType.TENSOR and attribute.value.dtype == ir.DataType.FLOAT:
                widened = ir.tensor(attribute.value.numpy().astype(np.float64))
                node.attributes[attribute.name] = ir.AttrTensor(attribute.name, widened)
    values = [out for node in model.graph for out in node.outputs]
    values += list(model.graph.inputs) + list(model.graph.outputs) + list(model.graph.initializers.values())
    for value in values:
        if value.type is not None and value.type.dtype == ir.DataType.FLOAT:
            value.type = ir.TensorType(ir.DataType.DOUBLE)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(DEFAULT))
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)

    original = load(args.model)
    streamlined = load(args.model)
    start = time.perf_counter()
    Streamline()(streamlined)
    seconds = time.perf_counter() - start
    wide = as_float64(load(args.model))
    (inp,) = [v for v in original.graph.inputs if v.name not in original.graph.initializers]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    batch = shape[0]
    count = -(-args.images // batch) * batch
    images = np.random.default_rng(0).uniform(0, 1, size=[count] + shape[1:]).astype(np.float32)
    batches = [images[i : i + batch] for i in range(0, count, batch)]

    def top1(model: ir.Model, dtype) -> np.ndarray:
        executor = Executor(model)
        out = executor.output_names[0]
        logits = np.concatenate([executor.run({inp.name: b.astype(dtype)})[out] for b in batches])
        return logits.reshape(count, -1)[: args.images].argmax(1)

    f32, f64, ours = top1(original, np.float32), top1(wide, np.float64), top1(streamlined, np.float32)
    differing = ties = elements = 0
    untraced: set[str] = set()
    for b in batches:
        result = compare_layers(original, streamlined, {inp.name: b})
        differing += sum(layer.differing for layer in result.layers)
        ties += sum(layer.near_ties for layer in result.layers)
        elements += sum(layer.elements for layer in result.layers)
        untraced.update(result.untraced)
        layers = len(result.layers)
    n = args.images
    print(f"model: {args.model}")
    print(f"streamline: {len(load(args.model).graph)} -> {len(streamlined.graph)} nodes in {seconds:.2f} s")
    print(f"top-1 agreement on {n} seeded images:")
    print(f"  original float32  vs original float64: {int((f32 == f64).sum())}/{n}")
    print(f"  streamlined       vs original float32: {int((ours == f32).sum())}/{n}")
    print(f"  streamlined       vs original float64: {int((ours == f64).sum())}/{n}")
    print(
        f"layer by layer ({layers} MultiThresholds, {len(untraced)} untraced): {differing} of {elements} levels "
        f"differ, {ties} of them near-ties"
    )


if __name__ == "__main__":
    main()
