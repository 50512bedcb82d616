"""Hostile bundle files (issue 10, item 4 and the bundle half of item 11): a file's size is
checked before it is read, special files are refused rather than read, nesting and YAML
aliases cannot exhaust the compiler, and no error quotes a file that is not a ruleset.

The payloads live in tests/rules/hostile/; large ones (a 2 GB model) are sparse files made
by the test, which take no disk space."""
from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import pytest

import kernel
from kernel.bundle import Bundle
from kernel.errors import BundleError, PostloanError
from kernel.files import DEFAULT_MAX_MODEL_BYTES, DEFAULT_MAX_RULESET_BYTES, FileLimits
from kernel.models.errors import ModelError
from kernel.rules import RulesetError

from .conftest import HERE

HOSTILE = HERE / "hostile"
ROOT = HERE.parents[1]
SECRETS = ("root:x", "张三", "13800138000", "hunter2", "database_password", "owner", "phone", "zhangsan")


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A copy of the shipped bundle (rulesets and models) to spoil."""
    folder = tmp_path / "bundle"
    shutil.copytree(ROOT / "rulesets", folder / "rulesets")
    shutil.copytree(ROOT / "models", folder / "models", ignore=shutil.ignore_patterns("*.md"))
    return folder


# --- sizes, checked before reading ---------------------------------------------------------

def test_a_2_gb_sparse_model_is_refused_before_it_is_read(bundle):
    """The issue's reload of a 2 GB sparse model read and copied it whole (RSS +4 GB)."""
    huge = sparse(bundle / "models" / "rv_model.onnx", 2 << 30)
    before = max_rss_bytes()
    with pytest.raises(BundleError) as e:
        kernel.Kernel.load(bundle)
    assert str(e.value) == (f"{huge}: 2 GiB is over the 256 MiB limit for model files "
                            f"($POSTLOAN_MAX_MODEL_BYTES sets it)")
    assert max_rss_bytes() - before < 1 << 30          # reading it would take 2 GiB at least


def test_compile_model_refuses_a_model_over_its_cap(tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(ROOT / "models" / "rv_model.onnx", model)      # ≈ 114 KiB (the PD model may be a small scorecard)
    with pytest.raises(ModelError, match=r"m.onnx: [0-9.]+ KiB is over the 64 KiB limit for model files"):
        kernel.compile_model(model, max_bytes=64 << 10)
    assert kernel.compile_model(model, max_bytes=DEFAULT_MAX_MODEL_BYTES).name == "m"


def test_a_ruleset_over_its_cap_is_a_diagnostic_that_check_lists(bundle):
    big = sparse(bundle / "rulesets" / "zz_big.yaml", 20 << 20)
    with pytest.raises(RulesetError) as e:
        Bundle.load(bundle)
    [d] = e.value.errors
    assert (d.file, d.line, d.column) == (str(big), 1, 1)
    assert d.message == "20 MiB is over the 16 MiB limit for ruleset files ($POSTLOAN_MAX_RULESET_BYTES sets it)"


def test_caps_are_set_by_the_environment_or_by_the_caller(bundle, monkeypatch):
    monkeypatch.setenv("POSTLOAN_MAX_RULESET_BYTES", "8K")
    with pytest.raises(RulesetError) as e:
        Bundle.load(bundle)
    over = {p.name for p in (bundle / "rulesets").iterdir() if p.stat().st_size > 8 << 10}
    assert "risk_segment.yaml" in over and "dpd_bucket.yaml" not in over
    assert {Path(d.file).name for d in e.value.errors} == over
    assert all("over the 8 KiB limit for ruleset files" in d.message for d in e.value.errors)
    with pytest.raises(RulesetError, match="over the 8 KiB limit"):
        kernel.compile_ruleset(bundle / "rulesets" / "risk_segment.yaml")
    # the caller's limits win over the environment (a server's flags)
    assert Bundle.load(bundle, limits=FileLimits(ruleset_bytes=DEFAULT_MAX_RULESET_BYTES)).nodes
    with pytest.raises(BundleError, match=r"rv_model.onnx: 11[0-9].[0-9] KiB is over the 100 KiB limit for model files"):
        kernel.Kernel.load(bundle, limits=FileLimits(model_bytes=100 << 10))
    monkeypatch.setenv("POSTLOAN_MAX_MODEL_BYTES", "lots")
    with pytest.raises(PostloanError, match=r"\$POSTLOAN_MAX_MODEL_BYTES = 'lots': expected a size in bytes above 0"):
        Bundle.load(bundle)


def test_check_reports_an_oversized_model_in_one_line(bundle, capsys):
    from kernel.cli import main
    sparse(bundle / "models" / "pd_model.onnx", 300 << 20)
    assert main(["check", str(bundle)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"postloan check: error: {bundle / 'models' / 'pd_model.onnx'}: 300 MiB is over the 256 MiB "
                   f"limit for model files ($POSTLOAN_MAX_MODEL_BYTES sets it)"]


# --- special files are refused, never read -------------------------------------------------

@pytest.mark.parametrize("name, what", [("x.yaml", "ruleset"), ("x.onnx", "model")])
def test_a_fifo_given_as_a_bundle_file_is_refused_without_blocking(tmp_path, name, what):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(PostloanError, match=rf"x\.(yaml|onnx)(:1:1)?: is a FIFO, expected a {what} file"):
        kernel.Kernel.load(fifo)


def test_a_ruleset_linked_to_a_device_is_refused(tmp_path):
    """/dev/zero never ends: read whole, it would fill the memory."""
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    with pytest.raises(RulesetError, match=r"^/dev/zero:1:1: is a device, expected a ruleset file"):
        kernel.Kernel.load(tmp_path / "zero.yaml")          # a bundle names files by their real path
    with pytest.raises(RulesetError, match=r"zero.yaml:1:1: is a device, expected a ruleset file"):
        kernel.compile_ruleset(tmp_path / "zero.yaml")


# --- files that are not rulesets: never quoted ------------------------------------------------

@pytest.mark.parametrize("payload", ["passwd_lookalike.yaml", "other_config.yaml"])
def test_a_file_that_is_not_a_ruleset_is_reported_without_its_content(bundle, payload):
    """ReloadBundle quoted /etc/passwd through a symlinked rulesets/x.yaml (item 11): the
    content, or a YAML file's top-level keys, must not reach an error message or a log."""
    (bundle / "rulesets" / "x.yaml").symlink_to(HOSTILE / payload)
    with pytest.raises(RulesetError) as e:
        kernel.Kernel.load(bundle)
    [d] = e.value.errors
    assert d.message.startswith("not a ruleset: a ruleset file is a mapping with `ruleset: <name>`")
    assert not any(secret in str(e.value) for secret in SECRETS), str(e.value)


def test_a_scalar_or_list_file_is_described_by_its_shape_only():
    for text, shape in [("just some secret text\n", "text"), ("- hunter2\n- 张三\n", "a list"), ("12345\n", "a int")]:
        [d] = pytest.raises(RulesetError, kernel.compile_ruleset, text).value.errors
        assert d.message.endswith(f"this file is {shape}")
        assert "hunter2" not in d.message and "secret" not in d.message


def test_a_misspelt_ruleset_still_gets_its_did_you_mean():
    """A file with the ruleset's own keys is a ruleset with mistakes: its unknown keys are named."""
    text = (ROOT / "rulesets" / "dpd_bucket.yaml").read_text("utf-8").replace("table:", "tabel:")
    messages = [d.message for d in pytest.raises(RulesetError, kernel.compile_ruleset, text).value.errors]
    assert any("unknown key `tabel`" in m and "did you mean `table`?" in m for m in messages)


# --- nesting and aliases ----------------------------------------------------------------------

def test_deep_flow_nesting_is_an_error_not_a_recursion_error():
    """1,000 nested `[` raised RecursionError through the CLI (a traceback)."""
    [d] = pytest.raises(RulesetError, kernel.compile_ruleset, HOSTILE / "deep_flow_nesting.yaml").value.errors
    assert (d.line, d.message) == (3, "invalid YAML: mappings and lists nested more than 64 deep")


def test_very_deep_nesting_does_not_crash_the_process():
    """100,000 nested `[` segfaulted the process in libyaml's composer (the C stack), after
    47 s in its parser: the depth check stops reading at level 65."""
    text = (HOSTILE / "deep_flow_nesting.yaml").read_text("utf-8").replace("[" * 1000, "[" * 100_000)
    text = text.replace("]" * 1000, "]" * 100_000)
    [d] = pytest.raises(RulesetError, kernel.compile_ruleset, text).value.errors
    assert d.message == "invalid YAML: mappings and lists nested more than 64 deep"


def test_deep_block_nesting_is_an_error():
    [d] = pytest.raises(RulesetError, kernel.compile_ruleset, HOSTILE / "deep_block_nesting.yaml").value.errors
    assert d.message == "invalid YAML: mappings and lists nested more than 64 deep"


def test_an_alias_bomb_is_refused_before_it_is_expanded():
    """393 bytes of nested aliases expanded to 10⁸ nodes: 40 s per 10⁷ and growing."""
    [d] = pytest.raises(RulesetError, kernel.compile_ruleset, HOSTILE / "alias_bomb.yaml").value.errors
    assert d.message == "invalid YAML: aliases (*name) expand to more than 100,000 nodes"


def test_a_small_alias_is_still_fine():
    text = (ROOT / "rulesets" / "dpd_bucket.yaml").read_text("utf-8")
    text = text.replace("description:", "x-note: &note shared\ndescription:", 1)
    with pytest.raises(RulesetError, match="unknown key `x-note`"):   # parsed, then checked as usual
        kernel.compile_ruleset(text)


@pytest.mark.parametrize("payload", ["deep_expression_sum.yaml", "deep_expression_not.yaml",
                                     "deep_expression_ternary.yaml"])
def test_deeply_nested_expressions_are_errors_at_the_rule(payload):
    """4,900 terms of `1+1+…`, 2,400 `not`s or 550 chained `x if c else …` (each under the
    10,000-character cap) raised RecursionError."""
    [d] = pytest.raises(RulesetError, kernel.compile_ruleset, HOSTILE / payload).value.errors
    assert (d.line, d.rule) == (7, "a")
    assert d.message == "expression nested more than 100 deep (split it over several rules or outputs)"


def test_an_expression_over_10000_characters_is_an_error_at_the_rule():
    text = (HOSTILE / "deep_expression_sum.yaml").read_text("utf-8").replace("1+" * 4900 + "1", "dpd + 1 " * 1300)
    [d] = pytest.raises(RulesetError, kernel.compile_ruleset, text).value.errors
    assert (d.line, d.rule) == (7, "a")
    assert d.message == ("expression of 10,405 characters, more than 10,000 (split it over several rules or "
                         "outputs)")


def test_an_expression_just_under_the_depth_limit_compiles_and_agrees_with_the_reference():
    import datetime as dt

    import pyarrow as pa
    text = (HOSTILE / "deep_expression_sum.yaml").read_text("utf-8").replace("1+" * 4900 + "1", "dpd+" * 97 + "1")
    rs = kernel.compile_ruleset(text)
    book = pa.table({"dpd": pa.array([0, 1, None], pa.int64())})
    compiled = rs.evaluate(book, dt.date(2026, 11, 28))
    assert compiled.equals(rs.evaluate(book, dt.date(2026, 11, 28), engine="reference"))
    assert compiled.column("deep.y").to_pylist() == [1, 0, 0]
