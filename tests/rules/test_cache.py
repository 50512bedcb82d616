"""Generated kernels are content-addressed files, written once and reused."""
import os

import kernel
from kernel.codegen import Plan, RulesetNode, compile_plan

from .test_bundle import BUCKET


def _plan(text):
    rs = kernel.compile_ruleset(text)
    return Plan.build([RulesetNode(rs.ir, {i.name: ("column", i.name) for i in rs.ir.inputs})])


def test_sources_are_written_once_and_named_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path))
    first = compile_plan(_plan(BUCKET))
    files = sorted((tmp_path / "kernels").glob("pl_*.py"))
    assert len(files) == 2                       # the node and the driver
    stamps = {f: os.stat(f).st_mtime_ns for f in files}
    again = compile_plan(_plan(BUCKET))          # same source: same files, untouched (Numba's cache key)
    assert {f: os.stat(f).st_mtime_ns for f in sorted((tmp_path / "kernels").glob("pl_*.py"))} == stamps
    assert again.module is first.module
    changed = compile_plan(_plan(BUCKET.replace("dpd > 30", "dpd > 31")))
    assert len(list((tmp_path / "kernels").glob("pl_*.py"))) == 4
    assert changed.module is not first.module


def test_checked_rulesets_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLOAN_CACHE_DIR", str(tmp_path))
    path = tmp_path / "bucket.yaml"
    path.write_text(BUCKET, encoding="utf-8")
    kernel.compile_ruleset(path)
    assert len(list((tmp_path / "checked").glob("*.pickle"))) == 1
    assert kernel.compile_ruleset(path).ir == kernel.compile_ruleset(BUCKET).ir   # text given directly: cached too
    assert len(list((tmp_path / "checked").glob("*.pickle"))) == 2
    path.write_text(BUCKET.replace("dpd > 30", "dpd > 40"), encoding="utf-8")
    assert kernel.compile_ruleset(path).ir.rules[0].when.right.value == 40
    assert len(list((tmp_path / "checked").glob("*.pickle"))) == 3
