"""Shared fixtures: the ``shared`` marker skips tests cleanly when ../shared is absent."""

from __future__ import annotations

import pytest

from qonnx_tools.testing import shared_dir


def pytest_collection_modifyitems(config, items):
    if shared_dir() is not None:
        return
    skip = pytest.mark.skip(reason="../shared (real model corpus) is not present")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared():
    """Path of ../shared; skips the test when it is absent."""
    root = shared_dir()
    if root is None:
        pytest.skip("../shared (real model corpus) is not present")
    return root
