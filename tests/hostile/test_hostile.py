"""Hostile files through the real CLI: clean one-line errors, right exit codes, nothing written.

Every case of build_hostile.py is run (as subprocesses, a few at a time) through
``qonnx info``, ``qonnx check``, ``qonnx cleanup -o`` and ``qonnx exec -o``, and the cases
of illegal QONNX parameters also through ``convert``, ``streamline``, ``prepare`` and
``transform``. For each run: the exit code is the case's (never 3, an internal error); a
failing run prints exactly one line ``error: ...`` on stderr (these cases have one problem
each), naming the file, and no traceback; it creates no output file; and no file of the
case (model, external data, symlink targets) changes. Also: Ctrl-C in the middle of a large save leaves the
target absent or intact, and the executor's memory bounds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError, InputMismatchError
from qonnx_tools.executor import Executor


def _load(file: str, name: str):
    path = Path(__file__).with_name(file)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


builder = _load("build_hostile.py", "qonnx_hostile_builder")
cli_batch = _load("cli_batch.py", "qonnx_hostile_cli_batch")
CASES = {case.name: case for case in builder.CASES}
COMMANDS = ("info", "check", "cleanup", "exec")
EXTRA = ("convert", "streamline", "prepare", "transform")  # for the cases that record them
OUTPUTS = {command: f"out_{command}.onnx" for command in ("cleanup", *EXTRA)} | {"exec": "out_exec.npz"}
#: a transform script that changes nothing: the command must refuse before running it
SCRIPT = "def transform(model):\n    return model\n"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    output_exists: bool


def qonnx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qonnx_tools.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _error_lines(stderr: str) -> list[str]:
    """stderr without the announcement of random inputs (``inputs: random ...``), which is information."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("inputs: random ")]


def _argv(command: str, model: Path) -> list[str]:
    if command not in OUTPUTS:
        return [command, str(model)]
    out = str(model.parent / OUTPUTS[command])
    if command == "transform":
        script = model.parent.parent / "identity_transform.py"
        return [command, str(script), str(model), out]
    extra = {"exec": ["--random"],  # exec runs only on inputs it is given or asked to draw
             "convert": ["--to", "qcdq"], "prepare": ["--target", "finn"]}.get(command, [])
    return [command, str(model), "-o", out, *extra]


def _snapshot(root: Path) -> dict[str, str]:
    """Digest of every file under ``root`` (through symlinks); size and mtime of huge sparse ones."""
    digests = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name in OUTPUTS.values():
            continue
        info = path.stat()
        if info.st_size > 2**26:
            digests[str(path)] = f"{info.st_size}:{info.st_mtime_ns}"
        else:
            digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Build every case, run every command on it; (case, command) -> Run, plus snapshots."""
    root = tmp_path_factory.mktemp("hostile")
    built = dict((case.name, path) for case, path in builder.build_all(root))
    (root / "identity_transform.py").write_text(SCRIPT)
    before = _snapshot(root)
    jobs = [(name, command) for name in built for command in (*COMMANDS, *EXTRA) if command in CASES[name].codes]

    results = cli_batch.run_batch([_argv(command, built[name]) for name, command in jobs],
                                  workers=max(2, os.cpu_count() or 2))
    runs = {}
    for (name, command), result in zip(jobs, results):
        output = built[name].parent / OUTPUTS[command] if command in OUTPUTS else None
        exists = output is not None and output.exists()
        if exists and result.code == 0:
            output.unlink()  # accepted runs may write; only failed runs must not
        runs[(name, command)] = Run(result.code, result.stdout, result.stderr, exists)
    after = _snapshot(root)
    return {"runs": runs, "built": built, "before": before, "after": after}


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30
    assert len(set(CASES)) == len(builder.CASES)


@pytest.mark.parametrize(
    "name, command", [(name, command) for name in CASES for command in (*COMMANDS, *EXTRA) if command in CASES[name].codes]
)
def test_cli_on_hostile_file(hostile, name, command):
    case = CASES[name]
    run = hostile["runs"][(name, command)]
    model = hostile["built"][name]
    expected = case.codes[command]
    detail = f"stdout: {run.stdout[-500:]!r} stderr: {run.stderr[-800:]!r}"
    assert run.code == expected, detail
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    if expected == 0:
        return
    lines = _error_lines(run.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), detail
    assert not run.output_exists, f"{command} created its output although it failed"
    assert model.name in lines[0], detail  # names the file, whichever stage refused it
    if command == "check" and expected == 1:
        assert case.phrase in run.stdout, detail
    elif case.codes["info"] == 2:  # refused at load
        assert case.phrase in lines[0], detail
    elif command in builder.TRANSFORMS:  # refused before transforming: the rule, at the node
        assert case.phrase in lines[0] and "node 'quant'" in lines[0], detail
    else:  # the model loaded; execution refused a node: the message names it
        assert "node '" in lines[0], detail


def test_inputs_are_untouched(hostile):
    assert hostile["after"] == hostile["before"]


#: (case, command) pairs also run as real ``qonnx`` processes: one per kind of outcome.
_SAMPLE = [("garbage", "info"), ("cycle", "cleanup"), ("external_dotdot", "exec"), ("bitwidth_zero", "check"),
           ("scale_nan", "streamline"), ("unknown_qonnx_op", "transform"), ("unknown_op", "cleanup")]


@pytest.mark.parametrize("name, command", _SAMPLE)
def test_real_processes_agree_with_the_batch_driver(hostile, name, command, tmp_path):
    """The driver calls the CLI's main() in one interpreter; a real process must give the same answer."""
    model = hostile["built"][name]
    argv = _argv(command, model)
    if command in OUTPUTS:
        argv[argv.index(str(model.parent / OUTPUTS[command]))] = str(tmp_path / OUTPUTS[command])
    result = qonnx(*argv)
    batch = hostile["runs"][(name, command)]
    assert result.returncode == batch.code
    if result.returncode != 0:
        assert _error_lines(result.stderr) == _error_lines(batch.stderr)
    assert "Traceback" not in result.stderr


def test_check_json_lists_every_problem(tmp_path):
    model = builder.base_model()
    model.graph.node[1].input[1] = "nobody"  # missing producer
    model.graph.node.append(helper.make_node("Relu", ["mm"], ["y"], name="relu"))  # y twice, name twice
    for t in model.graph.initializer:
        if t.name == "scale":
            t.CopyFrom(numpy_helper.from_array(np.array(-1.0, np.float32), "scale"))
    path = tmp_path / "many.onnx"
    path.write_bytes(model.SerializeToString())
    result = qonnx("check", "--json", str(path))
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)
    assert all(set(f) == {"severity", "node", "op", "message"} for f in findings)
    messages = " | ".join(f["message"] for f in findings)
    assert "produced by no node" in messages
    assert "already produced" in messages
    assert "used by 2 nodes" in messages
    assert "scale must be finite and > 0" in messages
    assert result.stderr.strip().splitlines() == [f"error: {path}: {sum(f['severity'] == 'error' for f in findings)} errors found"]


def test_max_tensor_bytes_option(tmp_path):
    path = tmp_path / "base.onnx"
    path.write_bytes(builder.base_model().SerializeToString())
    assert qonnx("check", str(path)).returncode == 0
    small = qonnx("check", "--max-tensor-bytes", "32", str(path))
    assert small.returncode == 1 and "initializer 'W'" in small.stdout and "max_tensor_bytes" in small.stdout
    env_run = subprocess.run(
        [sys.executable, "-m", "qonnx_tools.cli.main", "info", str(path)],
        capture_output=True, text=True, env={**os.environ, "QONNX_TOOLS_MAX_TENSOR_BYTES": "32"},
    )
    assert env_run.returncode == 2 and "max_tensor_bytes" in env_run.stderr


# -- Ctrl-C in the middle of a save ------------------------------------------------------------------


def _large_model(path: Path, megabytes: int) -> None:
    """x (1, 2048) -> a chain of MatMuls whose weights total about ``megabytes``."""
    n = 2048
    count = max(1, megabytes * 2**20 // (n * n * 4))
    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(count):
        inits.append(numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), f"W{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"h{i}"], name=f"mm{i}"))
        current = f"h{i}"
    nodes.append(helper.make_node("Relu", [current], ["y"], name="relu"))
    graph = helper.make_graph(nodes, "large", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], inits)
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


@pytest.fixture(scope="module")
def large_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("large") / "large.onnx"
    _large_model(path, 256)
    return path


@pytest.mark.parametrize("existing", [True, False], ids=["target-exists", "no-target"])
def test_ctrl_c_mid_save_leaves_target_absent_or_intact(large_model, tmp_path, existing):
    source_digest = hashlib.sha256(large_model.read_bytes()).hexdigest()
    target = tmp_path / "cleaned.onnx"
    if existing:
        target.write_bytes(b"previous contents")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qonnx_tools.cli.main", "cleanup", str(large_model), "-o", str(target), "--force"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    interrupted_mid_write = False
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        partial = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        try:
            writing = bool(partial) and partial[0].stat().st_size > 0
        except FileNotFoundError:
            writing = False
        if writing:  # the temporary file is being written: interrupt now
            proc.send_signal(signal.SIGINT)
            interrupted_mid_write = True
            break
        time.sleep(0.001)
    _, stderr = proc.communicate(timeout=300)
    assert interrupted_mid_write, "the save finished before the test could interrupt it"
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["error: interrupted"]
    if existing:
        assert target.read_bytes() == b"previous contents"
    else:
        assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["cleaned.onnx"] if existing else [])  # no temporary left
    assert hashlib.sha256(large_model.read_bytes()).hexdigest() == source_digest


def test_interrupt_right_after_the_temporary_is_created_leaves_nothing(tmp_path, monkeypatch):
    from qonnx_tools import atomic

    real_close = atomic.os.close

    def close_then_interrupt(fd):
        real_close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_bytes_atomic(tmp_path / "out.bin", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# -- resource bounds of the executor ----------------------------------------------------------------


def _tile_model(reps: list[int] | None, *, declare_shapes: bool = False) -> ir.Model:
    """x (N, 16) -> Tile(reps) -> ReduceSum -> y; reps constant, or an input when None."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])]
    inits = []
    if reps is None:
        inputs.append(helper.make_tensor_value_info("reps", TensorProto.INT64, [2]))
    else:
        inits.append(numpy_helper.from_array(np.array(reps, np.int64), "reps"))
    value_info = [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 16 * reps[1]])] if declare_shapes else []
    graph = helper.make_graph(
        [helper.make_node("Tile", ["x", "reps"], ["t"], name="tile"),
         helper.make_node("ReduceSum", ["t"], ["y"], name="sum", keepdims=0)],
        "tile", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], inits, value_info=value_info,
    )
    return ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_executor_refuses_a_run_larger_than_available_memory():
    model = _tile_model([1, 2**40])  # 64 PiB of intermediate at batch 1
    with pytest.raises(BadInputError, match=r"refusing to run: .*estimated .*available"):
        Executor(model).run({"x": np.zeros((1, 16), np.float32)})
    # shapes were inferred for the estimate, but the model is left as it was
    assert [(v.name, v.shape) for n in model.graph for v in n.outputs] == [("t", None), ("y", ir.Shape([]))]


def test_executor_estimate_scales_with_the_batch():
    model = _tile_model([1, 1024], declare_shapes=True)
    executor = Executor(model, max_memory_bytes=10 * 2**20)
    peak, _ = executor.estimate_memory({"x": np.zeros((8, 16), np.float32)})
    assert peak == 8 * 16 * 1024 * 4 + 4
    executor.run({"x": np.zeros((8, 16), np.float32)})  # 512 KiB: fine
    with pytest.raises(BadInputError, match=r"at batch 256 .*allowed \(max_memory_bytes\)"):
        executor.run({"x": np.zeros((256, 16), np.float32)})  # 16 MiB


def test_executor_stops_when_unknown_shapes_outgrow_the_limit():
    model = _tile_model(None)  # reps is a run-time input: no estimate possible
    executor = Executor(model, max_memory_bytes=2**20)
    feeds = {"x": np.zeros((1, 16), np.float32), "reps": np.array([1, 2**15], np.int64)}  # 2 MiB
    with pytest.raises(BadInputError, match="stopped before running out of memory"):
        executor.run(feeds)


def test_executor_refuses_inputs_of_the_wrong_shape():
    executor = Executor(_tile_model([1, 2]))
    with pytest.raises(InputMismatchError, match="expected shape"):
        executor.run({"x": np.zeros((1, 15), np.float32)})
    with pytest.raises(InputMismatchError, match="expected rank"):
        executor.run({"x": np.zeros((16,), np.float32)})


def test_exec_cli_refuses_with_an_estimate(tmp_path):
    path = tmp_path / "tile.onnx"
    path.write_bytes(ir.to_proto(_tile_model([1, 2**40])).SerializeToString())
    result = qonnx("exec", str(path), "-o", str(tmp_path / "out.npz"), "--random")
    assert result.returncode == 2
    (line,) = _error_lines(result.stderr)
    assert line.startswith(f"error: {path}: refusing to run: intermediate tensors need an estimated")
    assert not (tmp_path / "out.npz").exists()


# -- writing commands protect their input and existing outputs -------------------------------------


@pytest.mark.parametrize(
    "command, extra",
    [("cleanup", []), ("convert", ["--to", "qcdq"])],
)
def test_writing_commands_protect_input_and_outputs(tmp_path, command, extra):
    model = tmp_path / "model.onnx"
    model.write_bytes(builder.base_model().SerializeToString())
    original = model.read_bytes()
    same = qonnx(command, str(model), *extra, "-o", str(model))
    assert same.returncode == 2 and "refusing to overwrite the input file" in same.stderr
    assert model.read_bytes() == original
    other = tmp_path / "other.onnx"
    other.write_bytes(b"keep me")
    exists = qonnx(command, str(model), *extra, "-o", str(other))
    assert exists.returncode == 2 and "already exists (use --force" in exists.stderr
    assert other.read_bytes() == b"keep me"
    forced = qonnx(command, str(model), *extra, "-o", str(other), "--force")
    assert forced.returncode == 0, forced.stderr
    assert other.read_bytes() != b"keep me" and model.read_bytes() == original
    in_place = qonnx(command, str(model), *extra, "-o", str(model), "--in-place")
    assert in_place.returncode == 0, in_place.stderr
    onnx.checker.check_model(onnx.load(str(model)))
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["model.onnx", "other.onnx"]  # no temporaries


def test_exec_output_protects_the_model_and_existing_files(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(builder.base_model().SerializeToString())
    original = model.read_bytes()
    onto_model = qonnx("exec", str(model), "-o", str(model), "--force", "--random")
    assert onto_model.returncode == 2 and "refusing to overwrite the input file" in onto_model.stderr
    assert model.read_bytes() == original
    (tmp_path / "out.npz").write_bytes(b"old")
    assert qonnx("exec", str(model), "-o", str(tmp_path / "out.npz"), "--random").returncode == 2
    assert (tmp_path / "out.npz").read_bytes() == b"old"
    assert qonnx("exec", str(model), "-o", str(tmp_path / "out.npz"), "--force", "--random").returncode == 0
    assert np.load(tmp_path / "out.npz")["y"].shape == (1, 4)
