"""Run qonnx's ``cleanup_model`` on each file given; print one JSON line per file.

Runs in a separate Python environment that has qonnx 1.0 (never in the project's own):
tests/consumers/test_qonnx_cleanup_consumer.py calls it with that interpreter.

Each line: ``file``, ``ok`` (or ``error``), graph counts ``before``/``after`` (nodes, graph
inputs, initializers, op types), the op-type multisets ``removed_ops``/``added_ops``, and
``steps``: for each transformation cleanup_model applied, the nodes it removed/added,
described by where their inputs come from.
"""

import copy
import sys

from _script import report_each
from _graph_diff import counts, node_diff, op_difference


def clean(path: str) -> dict:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    steps = []
    original_transform = ModelWrapper.transform
    depth = [0]

    def recording_transform(self, transformation, *args, **kwargs):
        """ModelWrapper.transform, also recording which nodes each top-level transformation changes.

        Transformations return new ModelWrapper objects, so the method is swapped on the class
        (in this subprocess only, for the duration of one cleanup_model call)."""
        top = depth[0] == 0
        before = copy.deepcopy(self.model.graph) if top else None
        depth[0] += 1
        try:
            result = original_transform(self, transformation, *args, **kwargs)
        finally:
            depth[0] -= 1
        if top:
            diff = node_diff(before, result.model.graph)
            if diff["removed"] or diff["added"]:
                steps.append({"name": type(transformation).__name__, **diff})
        return result

    model = ModelWrapper(path)
    before = counts(model.model.graph)
    ModelWrapper.transform = recording_transform
    try:
        cleaned = cleanup_model(model)
    finally:
        ModelWrapper.transform = original_transform
    after = counts(cleaned.model.graph)
    removed, added = op_difference(before, after)
    return {"before": before, "after": after, "removed_ops": removed, "added_ops": added, "steps": steps}


if __name__ == "__main__":
    sys.exit(report_each(sys.argv[1:], clean))
