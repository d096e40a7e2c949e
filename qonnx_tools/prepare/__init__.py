"""``prepare``: get a model ready for a backend (hls4ml, FINN, onnxruntime, TensorRT) and check it.

``prepare(model, target)`` runs the target's preprocessing in place, then the
target's readiness rules (tables of :class:`Rule` in ``rules_<target>.py``);
``check(model, target)`` only runs the rules. Each violation names the node, the
rule, the precise problem and a suggested fix.

Pipelines:

- hls4ml: remove-static-inputs, change-batch-size{batch=1}, cleanup (folds static shapes),
  gemm-to-matmul, move-transpose-into-weight-quant (hls4ml reads MatMul weights as
  [in, out] quantized constants), to-channels-last (qonnx mode), absorb-transpose-into-matmul
  (the NHWC->NCHW Transpose before a Flatten goes into the dense weights), cleanup (names every node, folds
  quantizer parameters), unshare-initializers, rename-reserved
- finn: cleanup, then streamline when a ``streamline`` pass is registered
- ort: cleanup, convert to QCDQ
- tensorrt: refuses (ConversionError: ``qonnx_tools.refusals.Refused``) quantizers TensorRT cannot run (non-zero
  zero-point, other than 8 bits), then cleanup and QCDQ
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qonnx_tools._ir import ir
from qonnx_tools.decline import Decline
from qonnx_tools.errors import BadInputError
from qonnx_tools.prepare import rules_finn, rules_hls4ml, rules_ort
from qonnx_tools.prepare.rules import Rule, Violation, run_rules
from qonnx_tools.refusals import Refused, group_dicts, summary

TARGETS = ("hls4ml", "finn", "ort", "tensorrt")

RULES: dict[str, list[Rule]] = {
    "hls4ml": rules_hls4ml.RULES,
    "finn": rules_finn.RULES,
    "ort": rules_ort.ORT_RULES,
    "tensorrt": rules_ort.TENSORRT_RULES,
}


@dataclass
class PrepareResult:
    target: str
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "ready": self.ready,
            "steps": self.steps,
            "notes": self.notes,
            "violations": [v.to_dict() for v in self.violations],
            "groups": group_dicts(self.violations),
        }


def _target(target: str) -> str:
    if target not in TARGETS:
        raise BadInputError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    return target


def check(model: ir.Model, target: str) -> list[Violation]:
    """Every rule of ``target`` that a node of ``model`` breaks (the model is not changed)."""
    return run_rules(model, RULES[_target(target)])


def prepare(model: ir.Model, target: str) -> PrepareResult:
    """Run ``target``'s preprocessing on ``model`` in place, then its readiness check."""
    from qonnx_tools.passes import run_passes

    result = PrepareResult(_target(target))

    def run(text: str) -> None:
        run_passes(model, text)
        result.steps.append(text)

    if target == "hls4ml":
        run("remove-static-inputs,change-batch-size{batch=1},infer-shapes,cleanup")
        run("gemm-to-matmul,move-transpose-into-weight-quant,infer-shapes,to-channels-last,absorb-transpose-into-matmul,cleanup")
        run(f"unshare-initializers,sanitize-names{{reserved={','.join(sorted(rules_hls4ml.RESERVED_NAMES))}}}")
    elif target == "finn":
        run("cleanup")
        run("streamline")
    else:
        if target == "tensorrt":
            refused = tensorrt_refusals(model)
            if refused:
                raise Refused(
                    f"TensorRT cannot run {len(refused)} quantizer(s): " + "; ".join(str(v) for v in refused),
                    refused,
                    summary(refused, "quantizer(s) TensorRT cannot run"),
                )
        run("cleanup")
        from qonnx_tools.convert import convert

        converted = convert(model, to="qcdq")
        result.steps.append("convert{to=qcdq}")
        result.notes.extend(converted.notes)
    result.violations = check(model, target)
    return result


def tensorrt_refusals(model: ir.Model) -> list[Violation]:
    """QONNX quantizers whose QCDQ form TensorRT cannot run: non-zero zero-point or not 8 bits."""
    from qonnx_tools.prepare.rules import is_int_quant, nonzero_zeropoint, scalar

    def not_8bit(node: ir.Node, model: ir.Model) -> Decline | None:
        if _is_bias(node.inputs[0] if node.inputs else None):
            return None  # int32 bias quantizers become an int32 initializer -> DequantizeLinear
        bits = scalar(node.inputs[3]) if len(node.inputs) > 3 else None
        if bits == 8:
            return None
        return Decline(f"bit width {bits:g}" if bits is not None else "bit width not constant")

    table = [
        Rule("symmetric-zero-point", is_int_quant, nonzero_zeropoint,
             "TensorRT supports only symmetric quantization",
             "none automatic: re-export with symmetric quantizers, zero-point 0 (or --target ort)"),
        Rule("int8-only", is_int_quant, not_8bit, "TensorRT runs only 8-bit quantization",
             "none automatic: re-export with 8-bit quantizers (or --target ort)"),
    ]
    return run_rules(model, table)


def _is_bias(value) -> bool:
    from qonnx_tools.constants import constant_array

    array = constant_array(value)
    return array is not None and array.ndim == 1 and any(
        user.op_type in ("Conv", "Gemm", "Add", "ConvTranspose") for user, _ in _users_through_quant(value)
    )


def _users_through_quant(value):
    for user, index in value.uses():
        for out in user.outputs:
            yield from out.uses()


__all__ = ["TARGETS", "RULES", "Rule", "Violation", "PrepareResult", "prepare", "check", "tensorrt_refusals"]
