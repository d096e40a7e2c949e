"""Helpers shared by the CLI commands."""

from __future__ import annotations

from qonnx_tools.cli._common import op_table


def test_op_table_lists_every_op_of_either_side_then_extra_rows():
    lines = op_table({"Conv": 2, "q:Quant": 3}, {"Conv": 2, "q:MultiThreshold": 3}, rows=[("nodes", 5, 5)], width=20)
    assert lines == [
        "op                    before   after",
        "Conv                        2       2",
        "q:MultiThreshold            0       3",
        "q:Quant                     3       0",
        "nodes                       5       5",
    ]
