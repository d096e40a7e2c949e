"""Every file a command writes is a valid ONNX model for onnx itself.

For each writing command, run the way a user runs it (``qonnx ...`` arguments, through the
CLI's ``main`` in-process; two cases through the installed ``qonnx`` executable), on the
shared corpus (Brevitas ``qonnx.onnx`` / ``qcdq.onnx`` and the QONNX model zoo), and require
of the file written:

* ``onnx.checker.check_model(path, full_check=True)`` passes: every domain a node uses is
  imported (the channels_last one included), the graph is sorted, the standard ops match
  their schemas, shape inference finds no conflict;
* ``onnx.shape_inference.infer_shapes(proto, strict_mode=True)`` passes.

What onnx does with the QONNX custom domains (qonnx.custom_op.general and
qonnx.custom_op.channels_last; checked with onnx 1.23): a node of a domain the model does
not import fails both ("No opset import for domain ..."). With the import, the checker does
not validate the node against any schema (``check_custom_domain`` is off by default; with it
on, every QONNX op fails with "No Op registered"), only structurally (names, attributes
well-formed, topological order). Shape inference gives its outputs no type beyond their
declared value_info, and once it has met a node without a schema it drops the node-level
inference errors of every later node (in node order), so behind the first QONNX op only
type-constraint violations still surface. The checks below are therefore complete for the
QCDQ/QOp outputs (standard ops only) and partial for files that keep QONNX ops.

Runtime is kept to a few tens of seconds: cheap commands run on every model, the costly
ones (streamline, prepare, transforms) on subsets that still cover every model family
(MLPs, CNNs, residual, attention, BipolarQuant, Trunc, FloatQuant, zoo files with
unimported domain aliases).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from qonnx_tools.cli.main import main
from qonnx_tools.testing import brevitas_models, shared_dir

ROOT = Path(__file__).resolve().parents[1]
TRANSFORMS = ROOT / "transforms"
GENERATED = ROOT / "models" / "generated"
CHANNELS_LAST = "qonnx.custom_op.channels_last"


# -- the corpus ---------------------------------------------------------------------------------


def _qonnx_models() -> dict[str, Path]:
    """model id -> QONNX file: each Brevitas ``qonnx.onnx`` and each QONNX model zoo file."""
    models = {d.name: d / "qonnx.onnx" for d in brevitas_models() if (d / "qonnx.onnx").exists()}
    root = shared_dir()
    if root is not None:
        models.update({p.stem: p for p in sorted((root / "models" / "qonnx-model-zoo").rglob("*.onnx"))})
    return models


def _qcdq_models() -> dict[str, Path]:
    return {d.name: d / "qcdq.onnx" for d in brevitas_models() if (d / "qcdq.onnx").exists()}


QONNX_MODELS = _qonnx_models()
QCDQ_MODELS = _qcdq_models()

#: heavier commands skip this one (17 MB, 1-2 s per command); the cheap ones run on it
BIG = {"imagenet_mobilenet_v1_4b"}

#: a subset that covers every family: zoo files (onnx.brevitas / finn domains not imported),
#: CNN with MaxPool, residual Adds, attention, BipolarQuant, Trunc, FloatQuant, zero-points,
#: depthwise/grouped and transposed convolutions
FAMILIES = (
    "TFC_1W1A", "TFC_2W2A", "kwsmlp_w3a3", "qkeras_jettagging", "bnn_cnv_2w2a", "residual_shared_quant",
    "maxpool_quanttensor", "quant_mha", "binary_ternary", "trunc_avgpool_floor", "fp8_ocp",
    "asymmetric_zero_point", "depthwise_grouped_conv2d", "decoder_convtranspose2d_upsample",
)

#: models whose convert --to qop succeeds as a whole today (the others are refused, exit 1, nothing written)
QOP_CONVERTIBLE = ("mlp_bitwidths", "qop_cnn_s8", "seed_qgemm", "seed_qop_conv")
#: refused models converted with --allow-partial: the file written keeps QONNX/QDQ parts
QOP_PARTIAL = ("bnn_cnv_2w2a", "residual_shared_quant", "decoder_convtranspose2d_upsample", "TFC_1W1A")

#: models with BipolarQuant nodes (strip_bipolar_to_sign.py has something to do)
BIPOLAR = ("TFC_1W1A", "bnn_tfc_1w1a", "binary_ternary", "bnn_sfc_1w2a")


def _all_but_big() -> list[str]:
    return [m for m in QONNX_MODELS if m not in BIG]


# (command id, argv before the model, models, exit codes accepted); the output goes after the model
_PREPARE_CODES = (0, 1)  # prepare writes the prepared model, then exits 1 when a readiness rule is broken
COMMANDS = [
    ("cleanup", ["cleanup"], list(QONNX_MODELS), (0,)),
    ("convert-qcdq", ["convert", "--to", "qcdq"], list(QONNX_MODELS), (0,)),
    ("convert-qop", ["convert", "--to", "qop"], list(QOP_CONVERTIBLE), (0,)),
    ("convert-qop-partial", ["convert", "--to", "qop", "--allow-partial"], list(QOP_PARTIAL), (0,)),
    ("streamline", ["streamline"], list(FAMILIES) + ["seed_qop_conv", "mlp_bitwidths"], (0,)),
    ("prepare-hls4ml", ["prepare", "--target", "hls4ml"], _all_but_big(), _PREPARE_CODES),
    ("prepare-finn", ["prepare", "--target", "finn"],
     ["TFC_2W2A", "kwsmlp_w3a3", "bnn_cnv_2w2a", "residual_shared_quant", "asymmetric_zero_point", "quant_mha"],
     _PREPARE_CODES),
    ("prepare-ort", ["prepare", "--target", "ort"], list(FAMILIES), _PREPARE_CODES),
    ("transform-to_qcdq", ["transform", str(TRANSFORMS / "to_qcdq.py")],
     ["TFC_2W2A", "bnn_cnv_2w2a", "trunc_avgpool_floor"], (0,)),
    ("transform-to_qop", ["transform", str(TRANSFORMS / "to_qop.py")], ["qop_cnn_s8", "seed_qgemm"], (0,)),
    ("transform-fold_weights", ["transform", str(TRANSFORMS / "fold_weights.py")],
     ["TFC_2W2A", "residual_shared_quant", "qkeras_jettagging"], (0,)),
    ("transform-strip_bipolar_to_sign", ["transform", str(TRANSFORMS / "strip_bipolar_to_sign.py")], list(BIPOLAR), (0,)),
    ("transform-custom_pass_example", ["transform", str(TRANSFORMS / "custom_pass_example.py")],
     ["kwsmlp_w3a3", "quant_mha", "depthwise_grouped_conv2d"], (0,)),
]

CASES = [
    pytest.param(argv, QONNX_MODELS.get(model), codes, id=f"{command}-{model}")
    for command, argv, models, codes in COMMANDS
    for model in models
    if model in QONNX_MODELS or shared_dir() is None  # absent corpus: the (skipped) ids still list the plan
]
# convert --to qonnx reads the QCDQ exports; dynamic_act's DynamicQuantizeLinear has no QONNX form (refused)
CASES += [
    pytest.param(["convert", "--to", "qonnx"], path, (0,), id=f"convert-qonnx-{model}")
    for model, path in QCDQ_MODELS.items()
    if model != "dynamic_act"
]


# -- helpers ------------------------------------------------------------------------------------


def _argv(argv: list[str], model: Path, out: Path) -> list[str]:
    if argv[0] == "transform":
        return [*argv, str(model), str(out)]
    return [*argv, str(model), "-o", str(out)]


def assert_valid_onnx(path: Path, what: str) -> None:
    """``onnx.checker`` (full check, from the path: external data found beside it) and strict
    shape inference pass on the file at ``path``."""
    assert path.is_file(), f"{what}: {path} was not written"
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        pytest.fail(f"{what}: onnx.checker.check_model(full_check=True) fails: {' '.join(str(exc).split())}")
    proto = onnx.load(str(path))
    try:
        onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except Exception as exc:
        pytest.fail(f"{what}: onnx.shape_inference.infer_shapes(strict_mode=True) fails: {' '.join(str(exc).split())}")


def _run_in_process(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, (captured.out + captured.err)[-2000:]


# -- every command x model ----------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("argv, model, codes", CASES)
def test_written_file_is_valid_onnx(argv, model, codes, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code, output = _run_in_process(_argv(argv, model, out), capsys)
    what = f"qonnx {' '.join(_argv(argv, model, out))}"
    assert code in codes, f"{what}: exit {code}\n{output}"
    assert out.is_file(), f"{what}: exit {code} but nothing written\n{output}"
    assert_valid_onnx(out, what)


@pytest.mark.shared
@pytest.mark.parametrize(
    "argv, model",
    [
        pytest.param(["prepare", "--target", "hls4ml"], "bnn_cnv_2w2a", id="prepare-hls4ml-bnn_cnv_2w2a"),
        pytest.param(["convert", "--to", "qcdq"], "TFC_2W2A", id="convert-qcdq-TFC_2W2A"),
    ],
)
def test_installed_cli_writes_valid_onnx(argv, model, tmp_path):
    """The same through the ``qonnx`` executable a user runs (a new process: nothing shared with the tests)."""
    exe = Path(sys.executable).with_name("qonnx")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "qonnx_tools.cli.main"]
    out = tmp_path / "out.onnx"
    args = _argv(argv, QONNX_MODELS[model], out)
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode in (0, 1), result.stderr  # prepare: 1 = written but not ready
    assert_valid_onnx(out, f"qonnx {' '.join(args)}")
    if argv[0] == "prepare":  # the channels-last case of the issue: the domain is used and imported
        proto = onnx.load(str(out), load_external_data=False)
        assert any(node.domain == CHANNELS_LAST for node in proto.graph.node)
        assert CHANNELS_LAST in {entry.domain for entry in proto.opset_import}


# -- channels-last files made elsewhere, without the domain's import ----------------------------


def _without_channels_last_import(tmp_path: Path) -> Path:
    """models/generated/channels_last_ops.onnx as qonnx's channels-last conversion leaves such
    files: channels_last nodes, no opset import for their domain."""
    proto = onnx.load(str(GENERATED / "channels_last_ops.onnx"))
    kept = [entry for entry in proto.opset_import if entry.domain != CHANNELS_LAST]
    assert len(kept) < len(proto.opset_import)
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    with pytest.raises(onnx.checker.ValidationError, match=f"No opset import for domain '{CHANNELS_LAST}'"):
        onnx.checker.check_model(proto, full_check=True)
    path = tmp_path / "channels_last_no_import.onnx"
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["cleanup"], id="cleanup"),
        pytest.param(["prepare", "--target", "hls4ml"], id="prepare-hls4ml"),
        pytest.param(["transform", str(TRANSFORMS / "custom_pass_example.py")], id="transform-custom_pass_example"),
    ],
)
def test_channels_last_domain_gets_its_import(argv, tmp_path, capsys):
    model = _without_channels_last_import(tmp_path)
    out = tmp_path / "out.onnx"
    code, output = _run_in_process(_argv(argv, model, out), capsys)
    assert code in (0, 1) and out.is_file(), output
    assert_valid_onnx(out, f"qonnx {' '.join(argv)} on a channels-last file without the domain import")
    imports = {entry.domain: entry.version for entry in onnx.load(str(out), load_external_data=False).opset_import}
    assert imports[CHANNELS_LAST] == 1  # the version the op registry defines for the domain


def test_domains_used_only_in_subgraphs_and_aliases_get_imports(tmp_path):
    """save() imports a domain used only inside an If branch, and an alias spelling kept as written."""
    from onnx import TensorProto, helper

    from qonnx_tools import model_io

    def branch(name: str, domain: str) -> onnx.GraphProto:
        pool = helper.make_node("MaxPool", ["x"], [f"{name}_y"], name=f"{name}_pool", domain=domain,
                                kernel_shape=[2, 2], strides=[2, 2])
        y = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 2, 2, 3])
        return helper.make_graph([pool], name, [], [y])

    node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=branch("then", CHANNELS_LAST),
                            else_branch=branch("else", "finn.custom_op.channels_last"))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 3])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    source = tmp_path / "in.onnx"
    onnx.save(proto, str(source))
    for normalise in (True, False):  # load() rewrites the alias; a model built in memory may keep it
        out = tmp_path / f"out_{normalise}.onnx"
        model_io.save(model_io.load(source, normalise=normalise), out)
        assert_valid_onnx(out, f"save of a model using channels_last only in subgraphs (normalise={normalise})")
        imports = {entry.domain: entry.version for entry in onnx.load(str(out)).opset_import}
        expected = {"": 13, CHANNELS_LAST: 1}
        if not normalise:
            expected["finn.custom_op.channels_last"] = 1
        assert imports == expected
