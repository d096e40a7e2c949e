"""Helpers shared by the CLI commands."""

from __future__ import annotations

from qonnx_tools.cli._common import op_table


def _row(label, before, after):
    return label.ljust(20) + " " + str(before).rjust(7) + " " + str(after).rjust(7)


def test_op_table_lists_every_op_of_either_side_then_extra_rows():
    lines = op_table({"Conv": 2, "q:Quant": 3}, {"Conv": 2, "q:MultiThreshold": 3}, rows=[("nodes", 5, 5)], width=20)
    assert lines == [
        _row("op", "before", "after"),
        _row("Conv", 2, 2),
        _row("q:MultiThreshold", 0, 3),
        _row("q:Quant", 3, 0),
        _row("nodes", 5, 5),
    ]
    assert op_table({}, {"Relu": 1}, indent="  ", width=20)[1] == "  " + _row("Relu", 0, 1)
