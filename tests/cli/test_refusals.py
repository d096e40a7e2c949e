"""Refusal reports through the CLI (issue 16, bullet 5): one line per reason with a count, one line
per node under ``--verbose``, hints that name flags ``qonnx convert --help`` lists, QOp options as
flags, and nothing written when a command refuses.

Expected counts come from the model files read with plain onnx, not from qonnx_tools.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
QONNX_DOMAIN = "qonnx.custom_op.general"
GROUP = re.compile(r"^\s+(\d+) × (\S+): (.*?)(?: \((?:e\.g\. )?[^()]*\))?$")
LIMIT = 200


def qonnx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


def bn_chain(path: Path, layers: int = 4, bits: int = 4) -> Path:
    """x -> Quant -> [Conv(Quant w) -> BatchNormalization -> Quant] * layers -> Conv(Quant w) -> y.

    ``layers`` Convs have a BatchNormalization between them and their output quantizer, the
    last Conv none at all (its output is the graph output). The weights are 8-bit with codes beyond +-64,
    so the exact BatchNormalization fold (fold-batchnorm-into-qdq) declines them: these layers exercise
    the refusal, --fold-batchnorm and the float epilogue."""
    rng = np.random.default_rng(0)
    c = 4
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def quant(x, out, name, scale, width=bits):
        s, z, b = const(f"{name}_s", scale), const(f"{name}_z", 0.0), const(f"{name}_b", width)
        nodes.append(helper.make_node("Quant", [x, s, z, b], [out], name=name, domain=QONNX_DOMAIN,
                                      signed=1, narrow=0, rounding_mode="ROUND"))
        return out

    def conv(x, i):
        w = quant(const(f"w{i}", rng.uniform(-0.4, 0.4, (c, c, 1, 1))), f"w{i}_q", f"layer{i}_wquant", 0.004, 8)
        nodes.append(helper.make_node("Conv", [x, w], [f"conv{i}_out"], name=f"layer{i}_conv", kernel_shape=[1, 1]))
        return f"conv{i}_out"

    h = quant("x", "x_q", "input_quant", 0.25)
    for i in range(layers):
        y = conv(h, i)
        params = [const(f"bn{i}_{k}", v) for k, v in (
            ("scale", rng.uniform(0.5, 2, c)), ("bias", rng.normal(0, 0.5, c)), ("mean", rng.normal(0, 0.5, c)),
            ("var", rng.uniform(0.5, 2, c)))]
        nodes.append(helper.make_node("BatchNormalization", [y, *params], [f"bn{i}_out"], name=f"layer{i}_bn"))
        h = quant(f"bn{i}_out", f"act{i}", f"layer{i}_aquant", 0.5)
    nodes.append(helper.make_node("Conv", [h, quant(const("w_last", rng.normal(0, 0.5, (c, c, 1, 1))), "w_last_q",
                                                    "last_wquant", 0.125)], ["y"], name="last_conv",
                                  kernel_shape=[1, 1]))
    graph = helper.make_graph(nodes, "bn_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 3, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def census(path: Path) -> dict:
    """Independent counts read with plain onnx."""
    model = onnx.load(str(path))
    graph = model.graph
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    return {
        "conv_into_bn": sorted(n.name for n in convs
                               if [u.op_type for u in users.get(n.output[0], [])] == ["BatchNormalization"]),
        "conv_into_output": sorted(n.name for n in convs if n.output[0] in outputs),
        "qonnx_nodes": sorted(n.name for n in graph.node if n.domain == QONNX_DOMAIN),
        "quant_bits": Counter(int(inits[n.input[3]]) for n in graph.node if n.op_type == "Quant"),
        "layers": Counter(n.op_type for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")),
    }


def groups(stdout: str) -> dict[tuple[str, str], int]:
    """{(op, reason): count} of the grouped lines."""
    found = {}
    for line in stdout.splitlines():
        m = GROUP.match(line)
        if m:
            found[(m.group(2), m.group(3))] = int(m.group(1))
    return found


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path = bn_chain(tmp_path_factory.mktemp("refusals") / "chain.onnx")
    return path, census(path)


def test_qop_refusal_is_grouped_with_counts_and_writes_nothing(chain, tmp_path):
    path, counts = chain
    out = tmp_path / "out.onnx"
    run = qonnx("convert", "--to", "qop", path, "-o", out, "--no-float-epilogue")
    assert run.returncode == 1, run.stderr
    assert not out.exists()
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not converted to qop" in err[0], err
    found = groups(run.stdout)
    expected = {len(counts["conv_into_bn"]), len(counts["conv_into_output"])}
    assert sorted(found.values()) == sorted(expected) and sum(found.values()) == sum(counts["layers"].values())
    bn = [(op, reason) for (op, reason), n in found.items() if "BatchNormalization" in reason]
    assert bn == [("Conv", bn[0][1])] and found[bn[0]] == len(counts["conv_into_bn"]) == 4
    assert "--fold-batchnorm" in bn[0][1]
    (graph_out,) = [k for k in found if "graph output" in k[1]]
    assert found[graph_out] == len(counts["conv_into_output"]) == 1
    for op, reason in found:  # no node or value name in a reason: that is what makes them group
        assert not re.search(r"layer\d|last_conv|conv\d_out|bn\d_out", reason), reason
    assert f"{sum(found.values())} node(s)" in run.stdout and err[0].count(str(sum(found.values()))) >= 1


def test_verbose_lists_one_line_per_node(chain, tmp_path):
    path, counts = chain
    run = qonnx("convert", "--to", "qop", path, "-o", tmp_path / "out.onnx", "--verbose", "--no-float-epilogue")
    assert run.returncode == 1 and not (tmp_path / "out.onnx").exists()
    refused = counts["conv_into_bn"] + counts["conv_into_output"]
    lines = [line for line in run.stdout.splitlines() if "(Conv): " in line]
    assert len(lines) == len(refused)
    for name in refused:
        (line,) = [line for line in lines if line.strip().startswith(f"{name} (Conv): ")]
        assert "no output quantizer" in line
    assert not groups(run.stdout)


def test_hint_flag_is_listed_by_help_and_the_flags_state_their_defaults(chain, tmp_path):
    path, _ = chain
    run = qonnx("convert", "--to", "qop", path, "-o", tmp_path / "out.onnx", "--allow-partial", "--no-float-epilogue")
    assert run.returncode == 0 and (tmp_path / "out.onnx").exists()  # partial: written, refusals reported
    flags = set(re.findall(r"(--[a-z][a-z-]+)", "\n".join(run.stdout.splitlines()[1:])))
    flags -= {"--verbose", "--allow-partial", "--no-float-epilogue"}  # the report's own pointers
    assert "--fold-batchnorm" in flags
    help_text = qonnx("convert", "--help").stdout
    listed = set(re.findall(r"(--[a-z][a-z-]+)", help_text))
    assert flags <= listed, flags - listed
    assert {"--fold-batchnorm", "--requantize-bias", "--no-requantize-bias", "--verbose"} <= listed
    squashed = " ".join(help_text.split())
    assert re.search(r"--fold-batchnorm\s+fold .*?\(default: off", squashed)
    assert re.search(r"rounded to int32 at that scale, giving QLinearConv: each bias value moves by at most half",
                     squashed) and "(default: off: such a layer becomes ConvInteger/MatMulInteger" in squashed


def test_fold_batchnorm_flag_converts_those_layers(chain, tmp_path):
    path, counts = chain
    out = tmp_path / "folded.onnx"
    run = qonnx("convert", "--to", "qop", path, "-o", out, "--fold-batchnorm", "--allow-partial", "--json",
                "--no-float-epilogue")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["written"] and out.exists()
    assert len(report["unconverted"]) == len(counts["conv_into_output"])
    assert [(g["op"], g["count"], g["nodes"]) for g in report["groups"]] == [("Conv", 1, counts["conv_into_output"])]
    written = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert written["QLinearConv"] == len(counts["conv_into_bn"]) and written["BatchNormalization"] == 0
    assert any("bias requantized" in note for note in report["notes"])  # the folding is reported


def test_layers_without_output_quantizer_take_the_float_epilogue_by_default(chain, tmp_path):
    """The same chain converts whole by default: every Conv becomes ConvInteger (counted with onnx in
    the written file), the BatchNormalizations stay, and the result verifies exactly."""
    path, counts = chain
    out = tmp_path / "out.onnx"
    run = qonnx("convert", "--to", "qop", path, "-o", out, "--verify", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["unconverted"] == [] and report["verify"]["ok"]
    written = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert written["ConvInteger"] == len(counts["conv_into_bn"]) + len(counts["conv_into_output"])
    assert written["BatchNormalization"] == len(counts["conv_into_bn"]) and written["Conv"] == 0


@pytest.mark.parametrize("flag", ["--fold-batchnorm", "--no-requantize-bias", "--no-float-epilogue"])
def test_qop_flags_with_another_target_are_bad_arguments(chain, tmp_path, flag):
    path, _ = chain
    out = tmp_path / "out.onnx"
    run = qonnx("convert", "--to", "qcdq", path, "-o", out, flag)
    assert run.returncode == 2 and not out.exists()
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("error: ") and flag in line and "--to qop" in line


def test_prepare_refusal_and_violations_are_grouped(chain, tmp_path):
    path, counts = chain
    out = tmp_path / "trt.onnx"
    run = qonnx("prepare", "--target", "tensorrt", path, "-o", out)  # 4-bit activations: refused before anything
    assert run.returncode == 1 and not out.exists()
    assert len(run.stderr.strip().splitlines()) == 1
    proto = onnx.load(str(path))  # the activation quantizers: Quant nodes that do not read an initializer
    weights = {t.name for t in proto.graph.initializer}
    activations = sum(n.op_type == "Quant" and n.input[0] not in weights for n in proto.graph.node)
    assert activations and groups(run.stdout) == {
        ("Quant", "activation of 4 bits (TensorRT takes no Clip between Q and DQ)"): activations}

    run = qonnx("prepare", "--target", "ort", path, "--check-only", "--verbose")
    assert run.returncode == 1
    lines = [line.strip() for line in run.stdout.splitlines() if " (Quant): [no-custom-ops]" in line]
    assert sorted(line.split(" (Quant): ")[0] for line in lines) == counts["qonnx_nodes"]
    assert f"{len(counts['qonnx_nodes'])} problem(s)" in run.stdout


@pytest.mark.shared
def test_real_model_reports_stay_short(shared, tmp_path):
    path = shared / "models" / "brevitas" / "imagenet_mobilenet_v1_4b" / "qonnx.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not in the corpus")
    counts = census(path)
    out = tmp_path / "out.onnx"
    run = qonnx("convert", "--to", "qop", path, "-o", out, "--no-float-epilogue")
    assert run.returncode == 1 and not out.exists()
    assert sum(groups(run.stdout).values()) == sum(counts["layers"].values())  # no layer converts without folding
    prep = qonnx("prepare", "--target", "hls4ml", path, "--check-only")
    assert prep.returncode == 1
    (total,) = re.findall(r"not ready for hls4ml: (\d+) problem", prep.stdout)
    assert sum(groups(prep.stdout).values()) == int(total) > 100
    for text in (run.stdout, prep.stdout):
        long = [line for line in text.splitlines() if len(line) > LIMIT]
        assert not long, long
    (err,) = run.stderr.strip().splitlines()
    assert len(err) <= LIMIT + len(str(path))


def test_grouped_lines_stay_short_whatever_the_names_and_reasons():
    """In-process (no model needed): 21 KB of names and reasons still give short lines, counts intact."""
    from qonnx_tools.convert.result import Unconverted
    from qonnx_tools.refusals import format_each, format_grouped

    long_reason = "no output quantizer: " + "the output feeds a very long chain of ops " * 50
    items = [Unconverted("/blocks/" + "deep/" * 40 + f"layer{i}/Conv", "Conv", long_reason) for i in range(300)]
    items += [Unconverted(f"n{i}", "Gemm", "short reason") for i in range(2)]
    lines = format_grouped(items)
    assert [GROUP.match(line).group(1, 2) for line in lines] == [("300", "Conv"), ("2", "Gemm")]
    assert all(len(line) <= LIMIT for line in lines), [len(line) for line in lines]
    assert lines[1].endswith("short reason (n0, n1)")
    assert len(format_each(items)) == 302 and long_reason in format_each(items)[0]  # --verbose: everything


def test_qcdq_lowering_notes_are_grouped_by_form(tmp_path):
    """TFC_2W2A: 8 Quant nodes, 4 on weights (read initializers) and 4 on activations (counted with
    onnx): two groups of 4, and one note line per node with --verbose."""
    source = Path(__file__).resolve().parents[2] / "models" / "tfc" / "TFC_2W2A.onnx"
    proto = onnx.load(str(source))
    inits = {t.name for t in proto.graph.initializer}
    quants = [n for n in proto.graph.node if n.op_type == "Quant"]
    on_weights = sum(n.input[0] in inits for n in quants)
    assert (len(quants), on_weights) == (8, 4)
    run = subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", "convert", "--to", "qcdq", str(source),
                          "-o", str(tmp_path / "a.onnx")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"quantizers lowered: {len(quants)} node(s) in 2 form(s)" in run.stdout
    groups = [line.split()[0] for line in run.stdout.splitlines() if " × Quant: " in line]
    assert groups == [str(on_weights), str(len(quants) - on_weights)]
    run = subprocess.run([sys.executable, "-m", "qonnx_tools.cli.main", "convert", "--to", "qcdq", str(source),
                          "-o", str(tmp_path / "b.onnx"), "--verbose"], capture_output=True, text=True, timeout=300)
    per_node = [line for line in run.stdout.splitlines() if line.startswith("  note: ") and "(Quant): " in line]
    assert len(per_node) == len(quants)
