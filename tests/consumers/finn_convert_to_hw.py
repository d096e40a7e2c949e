"""Run FINN's hardware-layer inference (``step_convert_to_hw``) on each streamlined file given; one JSON line each.

Runs in a separate Python environment that has finn-plus (and the qonnx it pins), never in the
project's own: tests/consumers/test_finn_consumer.py calls it with that interpreter. Nothing here
synthesises, generates code, simulates or calls a vendor tool.

FINN's own build steps run, compiled from the installed ``finn/builder/build_dataflow_steps.py``
(the functions' source, not a copy): importing that module needs a Vivado installation (it imports
``SimEngine`` from ``finn.xsi``, which checks ``XILINX_VIVADO``), so each step function is taken out of
the file with ``ast`` and compiled with the names it uses, imported from where the module imports them
(every module it imports is imported first, as importing it would: the hardware ``Reshape`` op is
registered by ``finn.custom_op.fpgadataflow.rtl``). With the default ``DataflowBuildConfig()`` (no
verification steps, ``standalone_thresholds`` off, ``infer_shuffle_skip_first`` on), in order:

1. ``step_tidy_up``: InferShapes, FoldConstants, InferDataTypes, RemoveStaticGraphInputs.
2. ``step_streamline``: AbsorbScalarBiasIntoMultiThreshold, Streamline(); for a graph with Conv nodes
   LowerConvsToMatMul, MakeMaxPoolNHWC, AbsorbTransposeIntoMultiThreshold, MakeMaxPoolNHWC,
   AbsorbConsecutiveTransposes (the channels-last Im2Col + MatMul form FINN's hardware layers take; our
   streamline keeps Conv nodes); ConvertBipolarMatMulToXnorPopcount, Streamline(),
   AbsorbScalarMulAddIntoTopK, InferDataLayouts, RemoveUnusedTensors. Nodes the lowering leaves unnamed
   are then named ``<op type>_<index>``.
3. ``step_convert_to_hw``.

FINN's renaming passes are no-ops throughout (GiveUniqueNodeNamesRecursive and GiveReadableTensorNames
in the steps, GiveUniqueNodeNames and GiveReadableTensorNames inside ``Streamline()``), so nodes and
tensors keep the names of our file. Before step 2, FINN's streamlining proper
(AbsorbScalarBiasIntoMultiThreshold + ``Streamline()``) is run apart on the tidied graph, to record
whether it changes anything in our output (when it does not, the ``Streamline()`` calls of step 2 only
tidy what FINN's own lowering adds).

Each line: ``file``, ``ok`` (false with ``error``, ``stage`` and ``traceback`` when a step raised, plus
what was recorded before), ``finn`` (versions, steps file), and

- ``datatypes_changed``: tensors whose qonnx datatype InferDataTypes changed: [ours, qonnx's];
- ``matmuls``: each MatMul after step 1 (name, input/weight/output datatypes, weight an initializer);
  ``matmuls_hw_input``: each MatMul/XnorPopcountMatMul after step 2 (the lowered convolutions included);
- ``finn_streamline``: ``changed`` (the graph differs in op types, order, attributes or constants) and
  the op types removed/added;
- ``steps``: for each step, the op types it removed and added;
- ``hw``: the nodes of domain finn.custom_op.fpgadataflow after step 3 (op_type, name, their
  int/float/string attributes); ``left``: every other node (op_type, domain, name, index in the graph,
  whether it reads a graph input, attributes, ``perm``, input and output datatypes).

With ``--from-qonnx`` (before the files), each file is an original QONNX model (Quant/BipolarQuant nodes,
as exported, not prepared by our tools) and the script runs FINN's own front end for it, as FINN's default
build flow does (``default_build_dataflow_steps`` in finn/builder/build_dataflow_config.py starts with
step_qonnx_to_finn, step_tidy_up, step_streamline, step_convert_to_hw; ``build_dataflow_cfg`` only wraps
the file in a ``ModelWrapper`` before them): first

0. ``step_qonnx_to_finn`` (compiled the same way; a no-op when the graph has no Quant, BipolarQuant,
   BinaryQuant or Trunc node): qonnx's ``cleanup_model`` (InferShapes, GiveUniqueParameterTensors,
   FoldConstants except the quantizers, FoldTransposeIntoQuantInit, RemoveUnusedTensors,
   RemoveStaticGraphInputs, node and tensor renaming), then ``ConvertQONNXtoFINN`` with FINN's default
   filter (``max_multithreshold_bit_width`` 8: wider activation Quants are not turned into MultiThreshold):
   Conv biases extracted, Gemm -> MatMul, weight Quants folded into integer initializers
   (FoldQuantWeights), activation Quants turned into MultiThreshold (ConvertQuantActToMultiThreshold),
   AvgPool + Trunc -> QuantAvgPool2d, identity ops removed;

then steps 1-3 and the same report, with ``mode`` "from-qonnx" and ``steps`` also holding
``step_qonnx_to_finn``. Here FINN's steps run exactly as FINN has them: its renaming passes are left on
(there are no names of ours to keep; ``Streamline()`` and the steps rename nodes and tensors), so the
names in the record are FINN's; ``datatypes_changed`` is against the file's own annotations (an original
QONNX file usually has none); ``finn_streamline`` is FINN's streamlining on FINN's own converted graph
(so ``changed`` is expected: that is where it streamlines). When a step raises, ``stage`` names it (``step_qonnx_to_finn`` included).
Without the flag, nothing of the above changes.
"""

import ast
import collections
import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path

from _script import report_each

HW_DOMAIN = "finn.custom_op.fpgadataflow"


def _steps_file() -> Path:
    (folder,) = importlib.util.find_spec("finn").submodule_search_locations
    return Path(folder) / "builder" / "build_dataflow_steps.py"


def finn_step(name: str, overrides: dict):
    """The function ``name`` of FINN's build_dataflow_steps.py, compiled on its own (decorator dropped)
    with every name it uses that the module imports, imported the same way; ``overrides`` replace some."""
    path = _steps_file()
    tree = ast.parse(path.read_text(), str(path))
    imports = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                imports[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imports[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0], None)
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    function.decorator_list = []
    # every module the file imports is imported, as importing the file would: some register custom ops
    # on import (the hardware Reshape is registered by finn.custom_op.fpgadataflow.rtl, which only
    # specialize_layers imports)
    modules = {module: importlib.import_module(module) for module, _ in imports.values()}
    used = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
    namespace = {}
    for used_name in sorted(used & imports.keys()):
        module, attr = imports[used_name]
        namespace[used_name] = getattr(modules[module], attr) if attr else modules[module]
    namespace.update(overrides)
    exec(compile(ast.Module([function], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def _datatypes(model) -> dict:
    return {t.tensor_name: d.value for t in model.graph.quantization_annotation
            for d in t.quant_parameter_tensor_names if d.key == "finn_datatype"}


def _dt(model, name) -> str:
    return model.get_tensor_datatype(name).name if name else ""


def _matmuls(model) -> list:
    return [{"name": n.name, "op_type": n.op_type, "input": _dt(model, n.input[0]), "weight": _dt(model, n.input[1]),
             "output": _dt(model, n.output[0]), "weight_is_initializer": model.get_initializer(n.input[1]) is not None}
            for n in model.graph.node if n.op_type in ("MatMul", "XnorPopcountMatMul")]


def _ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node)


def _diff(before, after) -> dict:
    return {"removed": dict(_ops(before) - _ops(after)), "added": dict(_ops(after) - _ops(before))}


def _attributes(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, (int, float, str)):
            out[a.name] = value
    return out


def _signature(model) -> list:
    """The graph up to names: each node's op type, domain, attributes and constant inputs (digests), in order."""
    import hashlib

    import numpy as np

    out = []
    for n in model.graph.node:
        constants = []
        for name in n.input:
            value = model.get_initializer(name) if name else None
            digest = None if value is None else hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()
            constants.append(None if value is None else [list(value.shape), str(value.dtype), digest])
        out.append([n.op_type, n.domain, sorted(_attributes(n).items()), constants])
    return out


class _Renaming:
    """FINN's renaming passes made no-ops, so that nodes keep the names of our file: GiveUniqueNodeNames and
    GiveReadableTensorNames inside ``Streamline()`` (module attributes of finn.transformation.streamline) and
    the step functions' GiveUniqueNodeNamesRecursive / GiveReadableTensorNames (``overrides``)."""

    def __init__(self, noop):
        import finn.transformation.streamline as streamline

        self.module = streamline
        self.noop = noop
        self.overrides = {"GiveUniqueNodeNamesRecursive": noop, "GiveReadableTensorNames": noop}

    def __enter__(self):
        self.saved = {name: getattr(self.module, name) for name in ("GiveUniqueNodeNames", "GiveReadableTensorNames")}
        for name in self.saved:
            setattr(self.module, name, self.noop)
        return self

    def __exit__(self, *exc):
        for name, value in self.saved.items():
            setattr(self.module, name, value)


class _AsFinnHasIt:
    """``--from-qonnx``: FINN's steps compiled with nothing replaced (its renaming passes left on)."""

    overrides: dict = {}


def _name_unnamed(model) -> None:
    """Nodes FINN's conv lowering creates without a name get ``<op type>_<index>`` (FINN's Streamline() names
    every node when its renaming is left on)."""
    for index, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{index}"


def convert(path: str, record: dict, from_qonnx: bool = False) -> None:
    """FINN's steps on ``path`` into ``record``; ``from_qonnx``: an original QONNX file, FINN's
    step_qonnx_to_finn first and FINN's renaming left on."""
    from importlib.metadata import version

    import finn.transformation.streamline.absorb as absorb
    from finn.builder.build_dataflow_config import DataflowBuildConfig
    from finn.transformation.streamline import Streamline
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.base import Transformation

    class NoOp(Transformation):
        def __init__(self, *args, **kwargs):
            super().__init__()

        def apply(self, model):
            return model, False

    record["finn"] = {"finn-plus": version("finn-plus"), "qonnx": version("qonnx"), "steps_file": str(_steps_file())}
    cfg = DataflowBuildConfig()
    model = ModelWrapper(path)
    ours = _datatypes(model)
    if from_qonnx:
        record["mode"] = "from-qonnx"
    record["steps"] = {}
    with (contextlib.nullcontext(_AsFinnHasIt()) if from_qonnx else _Renaming(NoOp)) as renaming:
        if from_qonnx:
            record["stage"] = "step_qonnx_to_finn"
            converted_from_qonnx = finn_step("step_qonnx_to_finn", renaming.overrides)(model, cfg)
            record["steps"]["step_qonnx_to_finn"] = _diff(model, converted_from_qonnx)
            model = converted_from_qonnx
        record["stage"] = "step_tidy_up"
        tidied = finn_step("step_tidy_up", renaming.overrides)(model, cfg)
        record["steps"]["step_tidy_up"] = _diff(model, tidied)
        model = tidied
        record["datatypes_changed"] = {name: [ours.get(name), dt] for name, dt in sorted(_datatypes(model).items())
                                       if ours.get(name) not in (None, dt)}
        record["matmuls"] = _matmuls(model)

        record["stage"] = "FINN's streamlining on the tidied graph"
        again = model.transform(absorb.AbsorbScalarBiasIntoMultiThreshold()).transform(Streamline())
        record["finn_streamline"] = {"changed": _signature(again) != _signature(model), **_diff(model, again)}

        record["stage"] = "step_streamline"
        streamlined = finn_step("step_streamline", renaming.overrides)(model, cfg)
        record["steps"]["step_streamline"] = _diff(model, streamlined)
        model = streamlined
        _name_unnamed(model)
        record["matmuls_hw_input"] = _matmuls(model)

        record["stage"] = "step_convert_to_hw"
        converted = finn_step("step_convert_to_hw", renaming.overrides)(model, cfg)
        record["steps"]["step_convert_to_hw"] = _diff(model, converted)
        model = converted
    graph_inputs = {i.name for i in model.graph.input}
    record["hw"] = [{"op_type": n.op_type, "name": n.name, "attributes": _attributes(n)}
                    for n in model.graph.node if n.domain == HW_DOMAIN]
    record["left"] = [{"op_type": n.op_type, "domain": n.domain, "name": n.name, "index": index,
                       "reads_graph_input": any(i in graph_inputs for i in n.input), "attributes": _attributes(n),
                       "perm": next((list(a.ints) for a in n.attribute if a.name == "perm"), None),
                       "inputs": [_dt(model, i) for i in n.input], "outputs": [_dt(model, o) for o in n.output]}
                      for index, n in enumerate(model.graph.node) if n.domain != HW_DOMAIN]
    del record["stage"]


def work(path: str, from_qonnx: bool = False) -> dict:
    """``convert``'s record; when a step raises, ``ok`` false with the error, its ``stage`` and what came before."""
    import traceback

    record: dict = {}
    try:
        convert(path, record, from_qonnx)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=-4),
                **record}
    return record


def main(argv: list) -> int:
    """``[--from-qonnx] FILE...``: one JSON line per file."""
    if "--from-qonnx" in argv:
        files = [a for a in argv if a != "--from-qonnx"]
        return report_each(files, lambda path: work(path, from_qonnx=True))
    return report_each(argv, work)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
