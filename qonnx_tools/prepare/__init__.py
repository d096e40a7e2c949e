"""``prepare``: get a model ready for a backend (hls4ml, FINN, onnxruntime, TensorRT, DPU) and check it.

``prepare(model, target)`` runs the target's preprocessing in place, then the
target's readiness rules (tables of :class:`Rule` in ``rules_<target>.py``);
``check(model, target)`` only runs the rules. Each violation names the node, the
rule, the precise problem and a suggested fix.

Pipelines:

- hls4ml: remove-static-inputs, change-batch-size{batch=1}, cleanup (folds static shapes),
  gemm-to-matmul, move-transpose-into-weight-quant (hls4ml reads MatMul weights as
  [in, out] quantized constants), to-channels-last (qonnx mode), absorb-transpose-into-matmul
  (the NHWC->NCHW Transpose before a Flatten goes into the dense weights), cleanup (names every node, folds
  quantizer parameters), unshare-initializers, bipolar-weights-to-int2 and positive-batchnorm-before-sign
  (hls4ml's one-bit encoding of bipolar tensors, see those passes), dequantize-rescaled-constants and
  factor-out-weight-scale (constants hls4ml 1.3 cannot rescale), explicit-default-attributes (hls4ml
  reads strides/dilations/pads/rounding_mode without defaults), rename-reserved
- finn: cleanup, then streamline when a ``streamline`` pass is registered
- ort: cleanup, convert to QCDQ
- tensorrt: refuses (ConversionError: ``qonnx_tools.refusals.Refused``) quantizers TensorRT cannot run
  exactly (``qonnx_tools.convert.tensorrt``), then cleanup and QCDQ in the TensorRT profile
- dpu: cleanup, QCDQ (plain lowering, ``--target openvino``), uint8-codes-to-int8 (unsigned activations
  whose codes fit [0, 127] become int8, exact); the rules (``rules_dpu``) report the rest per node
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError
from qonnx_tools.prepare import rules_dpu, rules_finn, rules_hls4ml, rules_ort
from qonnx_tools.prepare.rules import Rule, Violation, run_rules
from qonnx_tools.refusals import Refused, group_dicts, summary

TARGETS = ("hls4ml", "finn", "ort", "tensorrt", "dpu")

RULES: dict[str, list[Rule]] = {
    "hls4ml": rules_hls4ml.RULES,
    "finn": rules_finn.RULES,
    "ort": rules_ort.ORT_RULES,
    "tensorrt": rules_ort.TENSORRT_RULES,
    "dpu": rules_dpu.DPU_RULES,
}


@dataclass
class PrepareResult:
    target: str
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    #: hls4ml only: per-layer precisions for hls4ml's configuration (``prepare.hls4ml_config``)
    hls4ml_config: dict | None = None

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
            **({"hls4ml_config": self.hls4ml_config} if self.hls4ml_config is not None else {}),
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
        run("unshare-initializers,bipolar-weights-to-int2,positive-batchnorm-before-sign,"
            "dequantize-rescaled-constants,factor-out-weight-scale,explicit-default-attributes")
        run(f"sanitize-names{{reserved={','.join(sorted(rules_hls4ml.RESERVED_NAMES))}}}")
    elif target == "finn":
        run("cleanup")
        run("streamline")
    else:
        from qonnx_tools.convert import convert

        if target == "tensorrt":  # the TensorRT profile refuses (Refused) what it cannot express exactly
            from qonnx_tools.convert.tensorrt import refusals

            refused = refusals(model)
            if refused:
                raise Refused(
                    f"TensorRT cannot run {len(refused)} quantizer(s) exactly: " + "; ".join(map(str, refused)),
                    refused, summary(refused, "quantizer(s) TensorRT cannot run exactly"),
                )
        run("cleanup")
        profile = {"tensorrt": "tensorrt", "dpu": "openvino"}.get(target)
        converted = convert(model, to="qcdq", **({"target": profile} if profile else {}))
        result.steps.append("convert{to=qcdq" + (f" target={profile}}}" if profile else "}"))
        result.notes.extend(converted.notes)
        if target == "dpu":
            run("uint8-codes-to-int8")
    result.violations = check(model, target)
    if target == "hls4ml":
        from qonnx_tools.prepare.hls4ml_config import hls4ml_config

        result.hls4ml_config = hls4ml_config(model)
    return result


__all__ = ["TARGETS", "RULES", "Rule", "Violation", "PrepareResult", "prepare", "check"]
