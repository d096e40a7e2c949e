"""Run onnxslim, with all its fusion patterns skipped, on each file given; print one JSON line per file.

Runs in a separate Python environment that has onnxslim and onnxruntime (onnxslim folds
constants with onnxruntime; never in the project's own environment):
tests/consumers/test_onnxslim_consumer.py calls it with that interpreter.

Fusions (Conv+BN, Conv+Mul/Add, MatMul+Add -> Gemm, Pad+Conv, ...) change a quantized
graph's structure on purpose, so they are skipped: every pattern registered from
``onnxslim.core.pattern.fusion`` is passed as ``skip_fusion_patterns``. Constant folding,
the elimination patterns (Reshape/Transpose/Slice/Concat/Unsqueeze chains), dead-node
elimination (Identity, no-op Pad/Cast/Reshape/Mul/Add/...), common-subexpression
elimination and weight tying stay on.

Each line: ``file``, ``ok`` (or ``error``), ``before``/``after`` counts, ``removed_ops``/
``added_ops``, ``steps`` (one entry, ``onnxslim``: nodes removed/added, described) and
``notes`` (e.g. onnxslim's constant folding failing on custom-domain ops).
"""

import contextlib
import io
import logging
import sys

import onnx

from _script import report_each
from _graph_diff import counts, node_diff, op_difference


def fusion_patterns() -> list:
    """Names of every fusion pattern registered in the installed onnxslim."""
    from onnxslim.core.pattern.registry import DEFAULT_FUSION_PATTERNS

    return sorted(name for name, matchers in DEFAULT_FUSION_PATTERNS.items()
                  if any(type(m).__module__.startswith("onnxslim.core.pattern.fusion") for m in matchers))


def slim(path: str) -> dict:
    import onnxslim

    original = onnx.load(path)
    before = counts(original.graph)
    log = io.StringIO()
    # verbose=True only raises log levels (onnxslim's quiet default hides failed constant folding):
    # onnx-graphsurgeon's messages go to stdout, captured here; onnxslim's own logger is muted.
    quiet = logging.getLogger("onnxslim")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    with contextlib.redirect_stdout(log):
        slimmed = onnxslim.slim(onnx.load(path), skip_fusion_patterns=fusion_patterns(), verbose=True)
    if slimmed is None:
        raise RuntimeError("onnxslim returned no model")
    after = counts(slimmed.graph)
    removed, added = op_difference(before, after)
    diff = node_diff(original.graph, slimmed.graph)
    notes = []
    text = log.getvalue()
    if "Inference failed" in text:
        detail = next((line.strip() for line in text.splitlines() if "[ONNXRuntimeError]" in line), "")
        notes.append(f"onnxslim's constant folding failed, nothing was folded by onnxruntime: {detail[:300]}")
    return {"before": before, "after": after, "removed_ops": removed, "added_ops": added,
            "steps": [{"name": "onnxslim", **diff}] if diff["removed"] or diff["added"] else [],
            "notes": notes, "skipped_fusions": fusion_patterns()}


if __name__ == "__main__":
    sys.exit(report_each(sys.argv[1:], slim))
