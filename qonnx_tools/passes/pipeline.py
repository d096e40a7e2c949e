"""Pipelines of passes: parsing pipeline strings, bounded fixpoints, timing and verify-each.

Pipeline strings name registered passes, with options in braces and bounded
fixpoint groups::

    "infer-shapes,fold-constants{max_bytes=1000000},fixpoint{steps=4}(remove-identity,remove-dead)"

A fixpoint group re-runs its passes until none reports a change, at most
``steps`` times; if they are still changing at the bound it warns and names them.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from qonnx_tools._ir import ir, passes
from qonnx_tools.errors import BadInputError, VerificationError
from qonnx_tools.passes.base import PassResult, QonnxPass, make_pass

DEFAULT_FIXPOINT_STEPS = 8


@dataclass
class PassRecord:
    """One run of one pass: its description, wall time and whether it changed the model."""

    name: str
    seconds: float
    modified: bool


class FixpointNotReached(UserWarning):
    """A fixpoint group was still changing the model when it hit its step bound."""


@dataclass
class Fixpoint:
    """Run ``passes`` repeatedly until none changes the model, at most ``steps`` rounds."""

    passes: list
    steps: int = DEFAULT_FIXPOINT_STEPS

    def describe(self) -> str:
        return f"fixpoint{{steps={self.steps}}}(" + ",".join(_describe(p) for p in self.passes) + ")"


@dataclass
class Pipeline:
    """A sequence of passes and fixpoint groups, run in place on a model.

    ``verify_each``: run the executor on seeded random inputs before the pipeline
    and after every pass that reports a change; stop with VerificationError at the
    first pass whose outputs differ (beyond ``atol``/``rtol``), naming it.
    """

    passes: list
    verify_each: bool = False
    verify_inputs: Mapping[str, np.ndarray] | None = None
    atol: float = 1e-5
    rtol: float = 1e-5
    records: list[PassRecord] = field(default_factory=list)

    def __call__(self, model: ir.Model) -> PassResult:
        self.records = []
        reference = self._reference(model) if self.verify_each else None
        modified = self._run_sequence(self.passes, model, reference)
        return PassResult(model, modified)

    def describe(self) -> str:
        return ",".join(_describe(p) for p in self.passes)

    # -- internals -----------------------------------------------------------
    def _run_sequence(self, items: Sequence, model: ir.Model, reference) -> bool:
        modified = False
        for item in items:
            if isinstance(item, Fixpoint):
                modified |= self._run_fixpoint(item, model, reference)
            else:
                modified |= self._run_pass(item, model, reference)
        return modified

    def _run_fixpoint(self, group: Fixpoint, model: ir.Model, reference) -> bool:
        modified = False
        for _ in range(max(1, group.steps)):
            start = len(self.records)
            changed = self._run_sequence(group.passes, model, reference)
            modified |= changed
            if not changed:
                return modified
        still = sorted({r.name for r in self.records[start:] if r.modified})
        warnings.warn(
            f"{group.describe()}: still changing after {group.steps} rounds (passes: {', '.join(still)})",
            FixpointNotReached,
            stacklevel=2,
        )
        return modified

    def _run_pass(self, pass_: passes.PassBase, model: ir.Model, reference) -> bool:
        begin = time.perf_counter()
        result = pass_(model)
        seconds = time.perf_counter() - begin
        if result.model is not model:
            raise BadInputError(f"pass {_describe(pass_)} is not in place; pipelines run in-place passes only")
        self.records.append(PassRecord(_describe(pass_), seconds, bool(result.modified)))
        if reference is not None and result.modified:
            self._check(model, reference, _describe(pass_))
        return bool(result.modified)

    def _reference(self, model: ir.Model):
        from qonnx_tools.executor import Executor
        from qonnx_tools.runtime import random_inputs

        feeds = dict(self.verify_inputs) if self.verify_inputs is not None else random_inputs(model, seed=0)
        return feeds, Executor(model).run(feeds)

    def _check(self, model: ir.Model, reference, pass_name: str) -> None:
        from qonnx_tools.compare import compare_outputs
        from qonnx_tools.executor import Executor

        feeds, expected = reference
        got = Executor(model).run(feeds)
        bad = [c for c in compare_outputs(expected, got, atol=self.atol, rtol=self.rtol) if not c.ok]
        if bad:
            worst = max(bad, key=lambda c: c.max_abs)
            raise VerificationError(
                f"pass {pass_name} changed output {worst.name!r} (max abs diff {worst.max_abs:.3g})"
            )


def _describe(item) -> str:
    describe = getattr(item, "describe", None)
    return describe() if callable(describe) else type(item).__name__


# -- parsing -----------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z][\w-]*)|(?P<brace>\{[^{}]*\})|(?P<punct>[(),]))")


def parse_pipeline(text: str, **pipeline_options) -> Pipeline:
    """Build a Pipeline from a pipeline string (see module docstring)."""
    tokens = _tokenize(text)
    items, rest = _parse_items(tokens, text)
    if rest:
        raise BadInputError(f"pipeline {text!r}: unexpected {rest[0][1]!r}")
    if not items:
        raise BadInputError("empty pipeline")
    return Pipeline(items, **pipeline_options)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise BadInputError(f"pipeline {text!r}: cannot parse at {text[pos:pos + 20]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _parse_items(tokens: list, text: str) -> tuple[list, list]:
    items: list = []
    while tokens:
        kind, value = tokens[0]
        if kind == "punct" and value == ")":
            return items, tokens
        if kind != "name":
            raise BadInputError(f"pipeline {text!r}: expected a pass name, got {value!r}")
        tokens = tokens[1:]
        options: dict[str, str] = {}
        if tokens and tokens[0][0] == "brace":
            options = _parse_options(tokens[0][1], text)
            tokens = tokens[1:]
        if value == "fixpoint":
            if not tokens or tokens[0] != ("punct", "("):
                raise BadInputError(f"pipeline {text!r}: fixpoint needs '(passes)'")
            inner, tokens = _parse_items(tokens[1:], text)
            if not tokens or tokens[0] != ("punct", ")"):
                raise BadInputError(f"pipeline {text!r}: missing ')'")
            tokens = tokens[1:]
            steps = int(options.pop("steps", DEFAULT_FIXPOINT_STEPS))
            if options:
                raise BadInputError(f"pipeline {text!r}: fixpoint takes only 'steps'")
            items.append(Fixpoint(inner, steps))
        else:
            items.append(make_pass(value, options))
        if tokens and tokens[0] == ("punct", ","):
            tokens = tokens[1:]
    return items, tokens


@dataclass
class CompositePass(QonnxPass):
    """A registered pass that is a pipeline of other passes (cleanup, qonnx-to-finn, streamline).

    Subclasses give the pipeline string (``pipeline_text``) and may read what the inner
    passes found (``collect``: declined lines, notes). ``last_records`` holds the
    per-pass records (name, seconds, modified) of the last run, also when it raised.
    """

    last_records: list[PassRecord] = field(default_factory=list, init=False, repr=False, compare=False)

    def pipeline_text(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def pipeline(self) -> Pipeline:
        return parse_pipeline(self.pipeline_text())

    def collect(self, pipeline: Pipeline) -> None:
        """Called after a successful run with the pipeline that ran; nothing by default."""

    def call(self, model: ir.Model) -> PassResult:
        pipeline = self.pipeline()
        try:
            result = pipeline(model)
        finally:
            self.last_records = list(pipeline.records)
        self.collect(pipeline)
        return PassResult(model, bool(result.modified))


def _parse_options(brace: str, text: str) -> dict[str, str]:
    options = {}
    for part in re.split(r"[\s;]+", brace[1:-1].strip()):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise BadInputError(f"pipeline {text!r}: option {part!r} needs key=value")
        options[key] = value
    return options
