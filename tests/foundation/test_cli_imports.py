"""`postloan test` runs on the reference engine: a warm start imports none of the compiled
path's libraries (issue 16.1: the answer after an edit within 2 s, most of it start-up)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[2]

_TEST = textwrap.dedent("""\
    import json, sys
    from kernel.cli import main
    code = main(["test"])
    heavy = ("numba", "llvmlite", "onnx", "kernel.models.kernels", "kernel.codegen.helpers", "grpc", "pluggy")
    print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}))
""")


def _run(cache: Path) -> dict:
    env = {**os.environ, "POSTLOAN_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    out = subprocess.run([sys.executable, "-c", _TEST], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_postloan_test_imports_no_compiler_and_no_onnx(tmp_path):
    cold = _run(tmp_path)                  # fills the models' cache (onnx parses each model once)
    warm = _run(tmp_path)
    assert cold["code"] == 0 and warm["code"] == 0
    assert warm["imported"] == []


def test_the_element_types_fed_to_onnxruntime_are_onnx_s():
    from kernel.models.compiled import _ELEM
    for name in ("FLOAT", "INT32", "INT64", "STRING", "BOOL", "DOUBLE"):
        assert getattr(_ELEM, name) == getattr(onnx.TensorProto, name), name
