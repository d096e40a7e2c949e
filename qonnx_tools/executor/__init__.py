"""NumPy reference executor (see engine.py) and its kernel registry."""

from qonnx_tools.executor.engine import Executor, execute
from qonnx_tools.executor.registry import NodeContext, claimed_ops, lookup, register

__all__ = ["Executor", "execute", "NodeContext", "register", "lookup", "claimed_ops"]
