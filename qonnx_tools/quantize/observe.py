"""Run calibration data through our executor and feed chosen tensors to calibrators.

``observe(model, batches, calibrators)`` streams the batches (any iterable of input dicts, or of arrays
for a one-input model) through ``qonnx_tools.executor.Executor`` once each; the executor hands every
tensor named in ``calibrators`` to its calibrator as soon as it is computed (``Executor.run(hooks=)``),
and frees intermediates as usual, so memory is one batch's working set plus the calibrators' state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from qonnx_tools._ir import ir
from qonnx_tools.errors import BadInputError


def observe(model: ir.Model, batches: Iterable[Any], calibrators: Mapping[str, Any], *, progress=None) -> int:
    """Collect each named tensor into its calibrator over all ``batches``; returns the number of batches.

    ``progress``: an optional callable wrapping the iterable (e.g. ``tqdm``) for a progress display."""
    from qonnx_tools.executor import Executor

    executor = Executor(model)
    names = [n for n in executor.input_names if n not in model.graph.initializers]
    missing = sorted(set(calibrators) - executor.tensor_names)
    if missing:
        raise BadInputError(f"tensors {missing} are not computed by the model")
    hooks = {name: calibrator.collect for name, calibrator in calibrators.items()}
    count = 0
    for batch in progress(batches) if progress is not None else batches:
        if not isinstance(batch, Mapping):
            if len(names) != 1:
                raise BadInputError(f"the model has inputs {sorted(names)}: give each batch as a dict")
            batch = {names[0]: batch}
        executor.run({k: np.asarray(v) for k, v in batch.items()}, hooks=hooks)
        count += 1
    if count == 0:
        raise BadInputError("no calibration batches")
    return count

