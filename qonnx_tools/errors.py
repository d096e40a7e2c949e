"""Exception hierarchy: every error a user can cause derives from QonnxToolsError.

Messages are one line and name the file and, where there is one, the node or tensor.
The CLI turns BadInputError subclasses into exit code 2 and CheckFailedError into 1.
"""

from __future__ import annotations


class QonnxToolsError(Exception):
    """Base class of every error raised on purpose by qonnx_tools."""


class BadInputError(QonnxToolsError):
    """The model, an argument or an input array is not acceptable (CLI exit 2)."""


class ModelLoadError(BadInputError):
    """A model file cannot be read or is not a well-formed ONNX model."""


class ModelSaveError(QonnxToolsError):
    """A model could not be written; the target is left absent or intact."""


class IllegalModelError(BadInputError):
    """A model breaks QONNX's rules (illegal parameters, unknown QONNX ops) and is not transformed.

    ``problems`` holds one line per problem, each naming the node and the rule; the CLI prints
    each as its own ``error:`` line."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"{path}: " + "; ".join(self.problems))


class UnsupportedOpError(BadInputError):
    """A node's (domain, op_type, version) has no implementation here."""


class InvalidAttributeError(BadInputError):
    """A node attribute or constant parameter has an illegal value or type."""


class InvalidDataTypeError(BadInputError):
    """A quantized datatype string cannot be parsed or is out of range."""


class ExecutionError(QonnxToolsError):
    """A node failed while executing; the message names node, op and input shapes."""


class InputMismatchError(BadInputError):
    """Inputs given to the executor are missing, unknown or of the wrong shape/dtype."""


class CheckFailedError(QonnxToolsError):
    """A check the user asked for did not pass (CLI exit 1)."""


class VerificationError(CheckFailedError):
    """Two models (or a model and its reference) disagree beyond tolerance (CLI exit 1)."""


class ConversionError(CheckFailedError):
    """Some nodes could not be converted; the message lists each node and why (CLI exit 1)."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (its type name when there is none):
    what a one-line error report shows of an error raised by a library we call."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
