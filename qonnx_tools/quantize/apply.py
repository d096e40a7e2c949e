"""``quantize``: calibrate a float model on data and insert QONNX quantizers.

What is quantized (the nodes ``QuantizeConfig.bits_for`` does not leave float):

- the weights of every standard Conv, ConvTranspose, MatMul and Gemm that are constants: a ``Quant``
  (``BipolarQuant`` at 1 bit) on the initializer, scale from max |w| (pytorch_quantization calibrates
  weights with ``max``), per output channel with ``per_channel`` (Conv axis 0; MatMul's last axis;
  Gemm's by ``transB``; ConvTranspose's axis 1 when ``group`` is 1, else per tensor);
- the computed inputs of those nodes (activations; both inputs of a MatMul of two activations): a
  ``Quant`` after the producer, read by the quantized nodes only (other readers keep the float tensor);
- the bias (Conv's and Gemm's third input, or the constant of an ``Add`` that is a MatMul's only
  reader): 32-bit signed at scale_in × scale_w when both are quantized and ``bias="int32"``;
- the graph outputs (``outputs``) and residual joins (``joins``: Add/Sum/Concat of computed tensors).

Calibration runs the *float* model once over the batches (pytorch_quantization calibrates with
quantization off), hooks feeding each activation tensor to its calibrator; then every scale is set at
once. Before planning, initializers stop being graph inputs and constant subgraphs fold
(``remove-static-inputs``, ``fold-constants``): exporters that compute weights (``ConstantOfShape``)
or list them as inputs get fixed, visible weights. Both are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.constants import constant_array
from qonnx_tools.domains import QONNX, STANDARD, canonical_domain
from qonnx_tools.errors import BadInputError
from qonnx_tools.passes._rewrite import new_initializer, new_int_quant, unique_name, used_names
from qonnx_tools.quantize.calibrate import HistogramCalibrator, MaxCalibrator
from qonnx_tools.quantize.config import QuantizeConfig
from qonnx_tools.quantize.observe import observe
from qonnx_tools.quantize.spec import QuantSpec, quant_params

COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
JOIN_OPS = ("Add", "Sum", "Concat")


@dataclass
class TensorReport:
    """What one inserted quantizer does: to which tensor, how, and what calibration saw."""

    tensor: str
    kind: str  # weight | activation | bias | output | join
    bits: int
    signed: bool
    scale_min: float
    scale_max: float
    amax: float  # the largest calibrated range (per-channel: the largest channel's)
    clipped: float | None  # fraction of calibration values beyond the range (histogram methods: to a bin)
    method: str
    readers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class QuantizeResult:
    model: ir.Model
    tensors: list[TensorReport]
    batches: int
    samples: int
    float_nodes: list[str]  # compute nodes left float (excluded, skipped, or without constant weights)

    def to_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "samples": self.samples, "float_nodes": self.float_nodes,
                "tensors": [t.to_dict() for t in self.tensors]}


class _Observer:
    """One activation's calibration state: the method's calibrator, the smallest value seen (is it
    signed?), and only the statistics some quantizer of it needs (the count of negative values when
    unsignedness is forced, the mean |x| for a bipolar one)."""

    def __init__(self, method: str, num_bins: int, *, negatives: bool = False, mean: bool = False):
        self.calibrator = MaxCalibrator() if method == "max" else HistogramCalibrator(num_bins)
        self.want_negatives, self.want_mean = negatives, mean
        self.minimum = np.inf
        self.count = 0
        self.negatives = 0
        self.abs_sum = 0.0

    def collect(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.size == 0:
            return
        self.calibrator.collect(x)
        low = self.calibrator.minimum if isinstance(self.calibrator, MaxCalibrator) else float(x.min())
        self.minimum = min(self.minimum, low)
        self.count += x.size
        if self.want_negatives:
            self.negatives += int(np.count_nonzero(x < 0))
        if self.want_mean:
            self.abs_sum += float(np.abs(x).sum(dtype=np.float64))

    def amax(self, config: QuantizeConfig, bits: int, unsigned: bool) -> float:
        if bits == 1 and not unsigned:
            return self.abs_sum / max(self.count, 1)  # the bipolar scale: mean |x|
        c = self.calibrator
        if isinstance(c, MaxCalibrator):
            return float(c.amax())
        if config.method == "percentile":
            return c.percentile(config.percentile)
        if config.method == "mse":
            return c.mse(bits, unsigned)
        return c.entropy(bits, unsigned)

    def clipped(self, amax: float, unsigned: bool) -> float:
        """Fraction of seen values outside [-amax, amax] ([0, amax] unsigned)."""
        beyond = 0
        c = self.calibrator
        if isinstance(c, HistogramCalibrator) and c.hist is not None:
            beyond = int(c.hist[c.edges[:-1] >= amax].sum())
        negatives = self.negatives if unsigned else 0
        return min(1.0, (beyond + negatives) / max(self.count, 1))


@dataclass
class _Target:
    """A computed tensor to quantize at ``bits``, and the (node, input index) pairs that will read it
    (None: every reader, and the graph output keeps its name)."""

    value: ir.Value
    bits: int
    kind: str
    readers: list[tuple[ir.Node, int]] | None
    observer: _Observer | None = None


def _weight_axis(node: ir.Node, rank: int) -> int | None:
    """The weight axis of the output channels, or None when per-channel scales do not apply."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        group = node.attributes.get_int("group", 1)
        return 1 if group == 1 else None
    if node.op_type == "Gemm":
        return 0 if node.attributes.get_int("transB", 0) else 1
    return rank - 1  # MatMul: [..., K, N]


def _bias_input(node: ir.Node) -> tuple[ir.Node, int] | None:
    """Where ``node``'s bias is read: (node, input index) of a constant bias, or None."""
    if node.op_type in ("Conv", "ConvTranspose", "Gemm"):
        if len(node.inputs) > 2 and node.inputs[2] is not None and constant_array(node.inputs[2]) is not None:
            return node, 2
        return None
    out = node.outputs[0]
    uses = out.uses()
    if len(uses) != 1 or out.is_graph_output():
        return None
    add, index = uses[0]
    if add.op_type != "Add" or canonical_domain(add.domain) != STANDARD:
        return None
    other = 1 - index
    if constant_array(add.inputs[other]) is None:
        return None
    return add, other


def _prepare(model: ir.Model) -> None:
    from qonnx_tools.passes.fold_constants import FoldConstants
    from qonnx_tools.passes.remove_static_inputs import RemoveStaticInputs

    RemoveStaticInputs()(model)
    # no size limit: a weight must be a constant to be quantized (AlexNet's fc6, 151 MB, is computed)
    FoldConstants(static_shapes=False, max_bytes=1 << 62)(model)


def quantize(
    model: ir.Model,
    calib_batches: Iterable[Any],
    config: QuantizeConfig | None = None,
    *,
    weights: int | QuantSpec | None = None,
    acts: int | QuantSpec | None = None,
    progress=None,
    **options: Any,
) -> QuantizeResult:
    """Quantize ``model`` (changed in place and returned in the result) after calibrating on
    ``calib_batches`` (input dicts, or arrays for a one-input model).

    ``weights``/``acts`` may be bit widths or ``QuantSpec`` s (their ``bits``, ``pow2``, ``narrow``,
    ``unsigned`` and, for weights, ``axis`` set the matching config fields); other keyword
    ``options`` are ``QuantizeConfig`` fields. ``progress`` wraps the batch iterable (e.g. ``tqdm``).
    """
    config = _configure(config or QuantizeConfig(), weights, acts, options)
    _prepare(model)
    graph = model.graph
    weight_targets: list[tuple[ir.Node, int, int]] = []  # (node, input index, bits)
    targets: dict[tuple[ir.Value, int, str], _Target] = {}
    every_reader: set[ir.Value] = set()  # values quantized for every reader (a join or an output)
    float_nodes: list[str] = []

    def want(value: ir.Value, bits: int, kind: str, reader: tuple[ir.Node, int] | None) -> None:
        if reader is None:  # a join or output: one quantizer for every reader, the first asked
            if value in every_reader:
                return
            every_reader.add(value)
        target = targets.setdefault((value, bits, kind), _Target(value, bits, kind, [] if reader else None))
        if reader is not None:
            target.readers.append(reader)

    for node in list(graph):
        if canonical_domain(node.domain) != STANDARD:
            continue
        if node.op_type in COMPUTE_OPS:
            bits = config.bits_for(node.name or "", node.op_type)
            weight = node.inputs[1] if len(node.inputs) > 1 else None
            if bits is None or weight is None:
                float_nodes.append(node.name or node.op_type)
                continue
            w_bits, a_bits = bits
            data_inputs = [0] if constant_array(weight) is not None else [0, 1]
            if len(data_inputs) == 1:
                weight_targets.append((node, 1, w_bits))
            for i in data_inputs:
                if node.inputs[i] is not None and constant_array(node.inputs[i]) is None:
                    want(node.inputs[i], a_bits, "activation", (node, i))
        elif config.joins and node.op_type in JOIN_OPS:
            computed = [v for v in node.inputs if v is not None and constant_array(v) is None]
            if len(computed) >= 2:
                bits = config.bits_for(node.name or "", node.op_type)
                if bits is not None:
                    want(node.outputs[0], bits[1], "join", None)
    if config.outputs:
        for value in graph.outputs:
            if value.dtype is not None and value.dtype.is_floating_point() and constant_array(value) is None:
                want(value, config.acts, "output", None)

    targets = {k: t for k, t in targets.items() if t.kind != "activation" or t.value not in every_reader}
    bipolar = {v.name for v, bits, _ in targets if bits == 1}
    observers = {v.name: _Observer(config.method, config.num_bins, negatives=config.unsigned_acts == "on",
                                   mean=v.name in bipolar) for v, _, _ in targets}
    for target in targets.values():  # names may change as quantizers go in
        target.observer = observers[target.value.name]
    batches = samples = 0
    if observers:
        counted = _Counting(progress(calib_batches) if progress is not None else calib_batches)
        batches = observe(model, counted, observers)
        samples = counted.samples
    used = used_names(model)
    reports: list[TensorReport] = []
    scales: dict[ir.Value, np.ndarray] = {}  # quantized activation -> its scale, for the biases
    for target in targets.values():
        obs = target.observer
        unsigned = {"on": True, "off": False}.get(config.unsigned_acts, obs.minimum >= 0)
        if target.bits == 1 and config.unsigned_acts == "auto":
            unsigned = False  # one bit is bipolar unless asked otherwise
        spec = QuantSpec(bits=target.bits, unsigned=unsigned, pow2=config.pow2, narrow=config.narrow)
        amax = obs.amax(config, target.bits, unsigned)
        quantized, scale = _insert_activation(graph, target, spec, amax, used)
        scales[quantized] = scale
        reports.append(_report(target.value.name, target.kind, spec, scale, amax, obs.clipped(amax, unsigned),
                               config.method if not spec.bipolar else "mean|x|",
                               [n.name or n.op_type for n, _ in target.readers or []]))
    for node, index, bits in weight_targets:
        w_scale, report = _quantize_weight(graph, node, index, bits, config, used)
        reports.append(report)
        bias = _bias_input(node)
        in_scale = scales.get(node.inputs[0])
        if bias is not None and config.bias == "int32" and in_scale is not None:
            reports.append(_quantize_bias(graph, node, bias, in_scale, w_scale, used))
    _ensure_opset(model)
    return QuantizeResult(model, reports, batches, samples, float_nodes)


class _Counting:
    """Pass-through iterable that counts the samples (first axis) it hands out."""

    def __init__(self, batches: Iterable[Any]):
        self._batches = batches
        self.samples = 0

    def __iter__(self):
        for batch in self._batches:
            first = next(iter(batch.values())) if isinstance(batch, dict) else batch
            shape = np.shape(first)
            self.samples += int(shape[0]) if shape else 1
            yield batch


def _configure(config: QuantizeConfig, weights, acts, options: dict[str, Any]) -> QuantizeConfig:
    changes = dict(options)
    if isinstance(weights, QuantSpec):
        changes.update(weights=weights.bits, per_channel=weights.axis is not None, pow2=weights.pow2 or None)
    elif weights is not None:
        changes["weights"] = weights
    if isinstance(acts, QuantSpec):
        changes.update(acts=acts.bits, unsigned_acts="on" if acts.unsigned else "off", narrow=acts.narrow,
                       pow2=acts.pow2 or changes.get("pow2"))
    elif acts is not None:
        changes["acts"] = acts
    try:
        return config.updated(**changes)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"quantize: {exc}") from None


def _quant_node(graph: ir.Graph, source: ir.Value, spec: QuantSpec, scale: np.ndarray, base: str,
                used: set[str]) -> ir.Node:
    """A Quant (BipolarQuant at one signed bit) of ``source`` with ``scale``; not yet in the graph."""
    name = unique_name(f"{base}_quant", used)
    if spec.bipolar:
        scale_v = new_initializer(graph, np.asarray(scale, np.float32), unique_name(f"{base}_scale", used))
        node = ir.Node(QONNX, "BipolarQuant", [source, scale_v], name=name, num_outputs=1)
    else:
        params = quant_params(1.0, spec)  # only the integer range; the scale is given
        node = new_int_quant(graph, source, scale, params.zero_point, params.bitwidth, signed=params.signed,
                             narrow=params.narrow, rounding_mode=params.rounding_mode, base=base, used=used, name=name)
    out = node.outputs[0]
    out.name = unique_name(f"{base}_q", used)
    out.shape, out.type = source.shape, source.type
    return node


def _scale_for(amax, spec: QuantSpec) -> np.ndarray:
    if spec.bipolar:
        scale = np.where(np.asarray(amax) > 0, amax, 1.0)
        return 2.0 ** np.ceil(np.log2(scale)) if spec.pow2 else scale
    return quant_params(amax, spec).scale


def _insert_activation(graph: ir.Graph, target: _Target, spec: QuantSpec, amax: float,
                       used: set[str]) -> tuple[ir.Value, np.ndarray]:
    value = target.value
    scale = np.asarray(_scale_for(amax, spec), np.float32)
    node = _quant_node(graph, value, spec, scale, value.name, used)
    producer = value.producer()
    if producer is not None:
        graph.insert_after(producer, node)
    else:
        first = next(iter(graph), None)
        graph.insert_before(first, node) if first is not None else graph.append(node)
    quantized = node.outputs[0]
    if target.readers is not None:
        for reader, index in target.readers:
            reader.replace_input_with(index, quantized)
        return quantized, scale
    for reader, index in list(value.uses()):
        if reader is not node:
            reader.replace_input_with(index, quantized)
    if value.is_graph_output():
        name = value.name
        value.name = unique_name(f"{name}_float", used)
        quantized.name = name
        outputs = graph.outputs
        for i, out in enumerate(outputs):
            if out is value:
                outputs[i] = quantized
    return quantized, scale


def _quantize_weight(graph: ir.Graph, node: ir.Node, index: int, bits: int, config: QuantizeConfig,
                     used: set[str]) -> tuple[np.ndarray, TensorReport]:
    weight = node.inputs[index]
    w = np.asarray(constant_array(weight))  # its own dtype: max |w| is exact there, and a copy costs GBs
    axis = _weight_axis(node, w.ndim) if config.per_channel and w.ndim >= 1 else None
    spec = QuantSpec(bits=bits, unsigned=False, axis=None if axis is None else (axis,), pow2=config.pow2)
    if spec.bipolar:  # XNOR-Net's binary scale, summed in float64
        reduce = tuple(a for a in range(w.ndim) if a != axis) if axis is not None else None
        amax = np.abs(w).mean(axis=reduce, keepdims=axis is not None, dtype=np.float64)
    else:  # pytorch_quantization's max calibration of weights, one value per kept channel
        calibrator = MaxCalibrator(axis)
        calibrator.collect(w)
        amax = calibrator.amax()
    scale = np.asarray(_scale_for(amax, spec), np.float32)
    base = weight.name or f"{node.name}_weight"
    quant = _quant_node(graph, weight, spec, scale, base, used)
    graph.insert_before(node, quant)
    node.replace_input_with(index, quant.outputs[0])
    clipped = None if spec.bipolar else 0.0  # max calibration clips nothing; a sign has no range
    return scale, _report(weight.name or base, "weight", spec, scale, float(np.max(amax)), clipped,
                          "max" if not spec.bipolar else "mean|w|", [node.name or node.op_type])


def _quantize_bias(graph: ir.Graph, node: ir.Node, bias: tuple[ir.Node, int], in_scale: np.ndarray,
                   w_scale: np.ndarray, used: set[str]) -> TensorReport:
    reader, index = bias
    value = reader.inputs[index]
    b = np.asarray(constant_array(value))
    scale = (np.asarray(in_scale, np.float64).reshape(-1)[0] * np.asarray(w_scale, np.float64)).reshape(-1)
    if scale.size > 1 and (b.ndim == 0 or b.shape[-1] != scale.size):
        scale = None
    if scale is None:
        return _report(value.name, "bias", QuantSpec(bits=32), np.ones(1), float(np.abs(b).max()), 0.0,
                       "left float: shape does not match the per-channel scale", [node.name or node.op_type])
    spec = QuantSpec(bits=32, narrow=False)
    scale = scale.astype(np.float32) if scale.size > 1 else scale.astype(np.float32).reshape(())
    quant = _quant_node(graph, value, spec, scale, value.name or f"{node.name}_bias", used)
    graph.insert_before(reader, quant)
    reader.replace_input_with(index, quant.outputs[0])
    codes = np.abs(b) / scale
    clipped = float(np.mean(codes > 2 ** 31 - 1)) if b.size else 0.0
    return _report(value.name, "bias", spec, scale, float(np.abs(b).max()) if b.size else 0.0, clipped,
                   "scale_in*scale_w", [reader.name or reader.op_type])


def _report(name, kind, spec: QuantSpec, scale, amax, clipped, method, readers) -> TensorReport:
    scale = np.asarray(scale, np.float64)
    return TensorReport(tensor=name, kind=kind, bits=spec.bits, signed=not spec.unsigned,
                        scale_min=float(scale.min()), scale_max=float(scale.max()), amax=float(amax),
                        clipped=None if clipped is None else float(clipped), method=method, readers=list(readers))


def _ensure_opset(model: ir.Model) -> None:
    if QONNX not in model.opset_imports:
        model.opset_imports[QONNX] = 1
