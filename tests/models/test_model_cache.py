"""A compiled model is remembered by content: a warm start rebuilds it without parsing it,
identical to a fresh compile; other bytes, or a damaged entry, compile again. Neither imports
onnx (≈ 0.6-1.5 s, ml_dtypes): a cold one reads the file through kernel.models.onnx_proto."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import kernel

ROOT = Path(__file__).resolve().parents[2]
PD = ROOT / "models" / "pd_model.onnx"

_COMPILE = textwrap.dedent("""\
    import json, sys
    import kernel
    m = kernel.compile_model(sys.argv[1])
    print(json.dumps({"onnx_imported": "onnx" in sys.modules or "ml_dtypes" in sys.modules,
                      "inputs": [i.name for i in m.inputs],
                      "outputs": [o.qualified for o in m.outputs],
                      "params": [p.tolist() for p in m._block_params]}))
""")


def _compile_in_fresh_process(cache: Path, model: Path) -> dict:
    env = {**os.environ, "POSTLOAN_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    out = subprocess.run([sys.executable, "-c", _COMPILE, str(model)], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_warm_start_rebuilds_the_model_and_neither_start_imports_onnx(tmp_path):
    cold = _compile_in_fresh_process(tmp_path, PD)
    assert list((tmp_path / "models").glob("compiled-*.pickle"))        # the cold start compiled it
    warm = _compile_in_fresh_process(tmp_path, PD)
    assert not cold["onnx_imported"] and not warm["onnx_imported"]
    assert {k: v for k, v in cold.items() if k != "onnx_imported"} == \
        {k: v for k, v in warm.items() if k != "onnx_imported"}


def test_the_cache_is_keyed_by_content_and_survives_damage(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path))
    fresh = kernel.compile_model(PD)
    entries = sorted((tmp_path / "models").glob("compiled-*.pickle"))
    assert len(entries) == 1
    cached = kernel.compile_model(PD)
    same = lambda a, b: all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a._block_params, b._block_params))  # noqa: E731
    assert same(cached, fresh) and cached.inputs == fresh.inputs and cached.outputs == fresh.outputs
    assert cached.source == str(PD)
    copy = tmp_path / "other_name.onnx"                 # same bytes, another name: another model
    copy.write_bytes(PD.read_bytes())
    assert kernel.compile_model(copy).name == "other_name"
    assert len(list((tmp_path / "models").glob("compiled-*.pickle"))) == 2
    entries[0].write_bytes(b"not a pickle")
    again = kernel.compile_model(PD)                    # compiled again, entry rewritten
    assert same(again, fresh)
    assert entries[0].read_bytes() != b"not a pickle"
