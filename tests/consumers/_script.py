"""The main loop of the scripts run inside a consumer's own environment (needs only the stdlib).

Each script turns one model file into a dict; ``report_each`` prints one JSON line per file
(``file``, ``ok`` and the dict, or ``error`` with what the consumer raised) and keeps the
consumer's own prints on stderr, so stdout carries only the results.

``staged_inputs`` and ``graph_io_names`` serve the scripts that run a model on the inputs the
test staged beside it (``M.inputs.npz``); the first imports numpy when called.
"""

import json
import sys
import warnings


def report_each(paths, work) -> int:
    warnings.filterwarnings("ignore")
    for path in paths:
        stdout = sys.stdout
        sys.stdout = sys.stderr
        try:
            result = {"file": path, "ok": True, **work(path)}
        except Exception as exc:  # the test reports what the consumer said
            result = {"file": path, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            sys.stdout = stdout
        print(json.dumps(result), flush=True)
    return 0


def staged_inputs(path: str) -> tuple[str, dict]:
    """For model file ``M.onnx``: ``M`` (the stem for output files) and the arrays of ``M.inputs.npz`` by name."""
    import numpy as np

    stem = path[: -len(".onnx")] if path.endswith(".onnx") else path
    return stem, dict(np.load(stem + ".inputs.npz"))


def graph_io_names(graph) -> tuple[list, list]:
    """Names of an ONNX ``GraphProto``'s inputs that are not initializers, and of its outputs."""
    initialized = {t.name for t in graph.initializer}
    return [v.name for v in graph.input if v.name not in initialized], [v.name for v in graph.output]


def op_counts(graph) -> dict:
    """Op counts of an onnx GraphProto, ``domain:op`` for other domains, sorted by name."""
    from collections import Counter

    return dict(sorted(Counter(f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in graph.node).items()))
