"""Fixtures the benchmarks share: the shipped bundle compiled once per module, and a pipeline
over it with its audit log in a temporary folder."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def kernel():
    import kernel as k
    return k.Kernel.load()


@pytest.fixture(scope="module")
def pipeline(kernel, tmp_path_factory):
    from kernel.pipeline import Pipeline
    return Pipeline(kernel, audit_path=tmp_path_factory.mktemp("audit") / "audit.log")
