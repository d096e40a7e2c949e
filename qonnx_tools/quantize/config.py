"""What ``quantize`` does to a model: bit widths, calibration method, and per-layer overrides.

A ``QuantizeConfig`` holds the model-wide choices; its ``layers`` are ``LayerRule`` s that match
nodes by name and/or op type (shell-style patterns, ``fnmatch``) and set their weight and activation
bit widths or leave them float (``skip``). Rules apply in order, a later match overriding an earlier
one field by field, so a file reads like the precision plan it is::

    weights = 4
    acts = 4
    method = "percentile"

    [[layer]]
    match = "conv1*"        # the first layers keep 8 bits
    weights = 8
    acts = 8

    [[layer]]
    op = "Gemm"
    skip = true             # the classifier stays float

``load_config`` reads that from TOML or JSON (the same keys; JSON's rule list is ``"layer"`` too).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from qonnx_tools.errors import BadInputError

METHODS = ("max", "percentile", "mse", "entropy")
UNSIGNED_ACTS = ("auto", "on", "off")
BIAS_MODES = ("int32", "float")


@dataclass(frozen=True)
class LayerRule:
    """Overrides for the nodes whose name matches ``match`` and whose op type matches ``op``."""

    match: str = "*"
    op: str = "*"
    weights: int | None = None
    acts: int | None = None
    skip: bool | None = None

    def matches(self, name: str, op_type: str) -> bool:
        return fnmatch.fnmatchcase(name, self.match) and fnmatch.fnmatchcase(op_type, self.op)


@dataclass(frozen=True)
class QuantizeConfig:
    """Model-wide quantization choices (see the module docstring for ``layers``).

    - ``weights``/``acts``: bit widths (1 = bipolar, ±scale; 2..32 integer).
    - ``method``: the activation calibrator (weights always use ``max``, pytorch_quantization's default):
      ``max``, ``percentile`` (of |x|, ``percentile`` %), ``mse``, ``entropy`` (TensorRT's KL search).
    - ``per_channel``: one weight scale per output channel.
    - ``unsigned_acts``: ``auto`` makes an activation unsigned when no calibration value was negative
      (a ReLU output gains a bit); ``on``/``off`` force it.
    - ``narrow``: signed activations use [-(2^(b-1)-1), 2^(b-1)-1] (weights always do).
    - ``pow2``: scales rounded up to powers of two.
    - ``bias``: ``int32`` quantizes a bias at scale_in × scale_w with 32 bits (when both are quantized),
      ``float`` leaves it.
    - ``outputs``: quantize the graph outputs too; ``joins``: quantize the output of each Add/Sum/Concat
      that joins two computed tensors (residual joins).
    - ``exclude``: node-name patterns left float.
    """

    weights: int = 8
    acts: int = 8
    method: str = "max"
    percentile: float = 99.99
    per_channel: bool = False
    unsigned_acts: str = "auto"
    narrow: bool = False
    pow2: bool = False
    bias: str = "int32"
    outputs: bool = False
    joins: bool = False
    exclude: tuple[str, ...] = ()
    layers: tuple[LayerRule, ...] = ()
    num_bins: int = 2048

    def __post_init__(self):
        for name in ("weights", "acts"):
            _check_bits(name, getattr(self, name), "")
        for rule in self.layers:
            for name in ("weights", "acts"):
                if getattr(rule, name) is not None:
                    _check_bits(name, getattr(rule, name), f"layer rule {rule.match!r}/{rule.op!r}: ")
        _choice("method", self.method, METHODS)
        _choice("unsigned_acts", self.unsigned_acts, UNSIGNED_ACTS)
        _choice("bias", self.bias, BIAS_MODES)
        if not 0 < self.percentile <= 100:
            raise ValueError(f"percentile={self.percentile}: in (0, 100]")
        if self.num_bins < 2:
            raise ValueError("num_bins must be at least 2")

    def bits_for(self, name: str, op_type: str) -> tuple[int, int] | None:
        """(weight bits, activation bits) for a node, or None when it stays float."""
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude):
            return None
        weights, acts, skip = self.weights, self.acts, False
        for rule in self.layers:
            if rule.matches(name, op_type):
                weights = rule.weights if rule.weights is not None else weights
                acts = rule.acts if rule.acts is not None else acts
                skip = rule.skip if rule.skip is not None else skip
        return None if skip else (weights, acts)

    def updated(self, **changes: Any) -> QuantizeConfig:
        """A copy with the given fields changed (None values ignored: an option not given)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _check_bits(name: str, bits, where: str) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 32:
        raise ValueError(f"{where}{name}={bits!r}: a bit width from 1 to 32")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: one of {', '.join(allowed)}")


def config_from_mapping(data: Mapping[str, Any], source: str = "config") -> QuantizeConfig:
    """A QuantizeConfig from parsed TOML/JSON; BadInputError naming ``source`` and the key on any mistake."""
    known = {f.name for f in fields(QuantizeConfig)} - {"layers"}
    rule_keys = {f.name for f in fields(LayerRule)}
    unknown = sorted(set(data) - known - {"layer"})
    if unknown:
        raise BadInputError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known | {'layer'}))})")
    values = {k: v for k, v in data.items() if k != "layer"}
    if "exclude" in values:
        values["exclude"] = tuple(values["exclude"]) if isinstance(values["exclude"], list) else (values["exclude"],)
    rules = []
    for i, rule in enumerate(data.get("layer", [])):
        if not isinstance(rule, Mapping):
            raise BadInputError(f"{source}: layer rule {i + 1} is not a table")
        bad = sorted(set(rule) - rule_keys)
        if bad:
            raise BadInputError(f"{source}: layer rule {i + 1}: unknown key {bad[0]!r} (known: {', '.join(sorted(rule_keys))})")
        rules.append(LayerRule(**rule))
    try:
        return QuantizeConfig(**values, layers=tuple(rules))
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{source}: {exc}") from None


def load_config(path: str | Path) -> QuantizeConfig:
    """Read a TOML (``.toml``) or JSON (anything else) quantization config."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text.decode("utf-8"))
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'} ({exc})") from None
    if not isinstance(data, Mapping):
        raise BadInputError(f"{path}: the top level must be a table/object")
    return config_from_mapping(data, str(path))


__all__ = ["BIAS_MODES", "LayerRule", "METHODS", "QuantizeConfig", "UNSIGNED_ACTS", "config_from_mapping", "load_config"]
