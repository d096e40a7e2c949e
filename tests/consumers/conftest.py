"""Our outputs that the real-consumer tests of this folder hand to other tools (built once per session)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from qonnx_tools.testing import shared_dir

_spec = importlib.util.spec_from_file_location("consumers_helper", Path(__file__).with_name("_consumer.py"))
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)


@pytest.fixture(scope="session")
def our_cleanup(tmp_path_factory) -> dict[str, Path | str]:
    """``cleanup`` output of every file of ``cleanup_corpus()`` (_consumer.py)."""
    if shared_dir() is None:
        pytest.skip("../shared (real model corpus) is not present")
    return consumer.build(tmp_path_factory.mktemp("cleanup"), consumer.cleanup_corpus(), consumer.cleaned)


@pytest.fixture(scope="session")
def our_qcdq(tmp_path_factory) -> dict[str, Path | str]:
    """``convert --to qcdq`` output of every file of ``qcdq_corpus()`` (_consumer.py)."""
    if shared_dir() is None:
        pytest.skip("../shared (real model corpus) is not present")
    return consumer.build(tmp_path_factory.mktemp("qcdq"), consumer.qcdq_corpus(), consumer.converted_qcdq)


@pytest.fixture(scope="session")
def our_qcdq_plain(tmp_path_factory) -> dict[str, Path | str]:
    """``convert --to qcdq --target openvino`` (the plain lowering, which ``--target tvm`` shares) of every
    file of ``qcdq_corpus()``: the form the OpenVINO and TVM tests judge."""
    if shared_dir() is None:
        pytest.skip("../shared (real model corpus) is not present")
    return consumer.build(tmp_path_factory.mktemp("qcdq_plain"), consumer.qcdq_corpus(),
                          lambda src, dst: consumer.converted_qcdq(src, dst, target="openvino"))
