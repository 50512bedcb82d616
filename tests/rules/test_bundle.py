"""Bundles: DAG order, dangling names, type agreement with producers and the contract, cycles,
duplicates; every problem reported at once with its file and line."""
import textwrap

import pyarrow as pa
import pytest

import kernel
from kernel.bundle import Bundle, BundleCheckError
from kernel.errors import BundleError
from kernel.rules import RulesetError


def ruleset(name, inputs, outputs, rules, hit="first"):
    return textwrap.dedent(f"""\
        ruleset: {name}
        version: "v-{name}"
        hit: {hit}
        inputs: {inputs}
        outputs: {outputs}
        rules:
        """) + textwrap.indent(textwrap.dedent(rules), "  ")


def write(folder, **files):
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


BUCKET = ruleset("bucket", "{dpd: int}", "{late: {type: bool, default: false}}",
                 "- id: late\n  when: dpd > 30\n  then: {late: true}\n")
ACTION = ruleset("action", "{bucket.late: bool, overdue_amount: float}",
                 "{call: {type: bool, default: false}, weight: {type: float, default: 0}}",
                 "- id: call\n  when: bucket.late and overdue_amount > 100\n  then: {call: true, weight: overdue_amount / 100}\n")


def test_order_follows_who_reads_what(tmp_path):
    # "action" sorts first by name but reads "bucket": it must come after it
    b = Bundle.load(write(tmp_path, a_action=ACTION, z_bucket=BUCKET))
    assert [n.name for n in b.nodes] == ["bucket", "action"]
    assert b.sources["action"] == {"bucket.late": ("output", "bucket", "late"),
                                   "overdue_amount": ("column", "overdue_amount")}


def test_kernel_decides_through_the_dag(tmp_path):
    k = kernel.Kernel.load(write(tmp_path, action=ACTION, bucket=BUCKET))
    assert k.nodes == ("bucket", "action")
    assert k.version == {"bucket": "v-bucket", "action": "v-action"}
    assert set(k.inputs) == {"dpd", "overdue_amount"}
    assert list(k.outputs) == ["bucket.late", "bucket.rule", "action.call", "action.weight", "action.rule"]
    book = pa.table({"dpd": pa.array([0, 45, 45, None], pa.int32()), "overdue_amount": [500.0, 500.0, 50.0, 500.0]})
    out = k.decide(book, as_of="2026-11-28")
    assert out.column("action.call").to_pylist() == [False, True, False, False]
    assert out.column("action.weight").to_pylist() == [0.0, 5.0, 0.0, 0.0]
    assert out.column("bucket.rule").to_pylist() == [None, "late", "late", None]
    assert out.equals(k.decide(book, as_of="2026-11-28", engine="reference"))


def test_dangling_names_and_type_disagreements_all_at_once(tmp_path):
    bad = ruleset("bad", "{bucket.lat: bool, bucke.late: bool, dppd: int, name: int, overdue_amount: int, "
                         "bucket.late: int}",
                  "{x: {type: bool, default: false}}", "- id: r\n  when: true\n  then: {}\n")
    with pytest.raises(BundleCheckError) as info:
        Bundle.load(write(tmp_path, bucket=BUCKET, bad=bad))
    assert isinstance(info.value, BundleError) and isinstance(info.value, RulesetError)
    messages = [d.message for d in info.value.diagnostics]
    assert any("`bucket` has no output `lat` — did you mean `late`?" in m for m in messages)
    assert any("no ruleset or model named `bucke` in the bundle — did you mean `bucket`?" in m for m in messages)
    assert any("`dppd` is not a column of the book" in m and "did you mean `dpd`?" in m for m in messages)
    assert any("`name`: the book column is string, which rules cannot read" in m for m in messages)
    assert any("`overdue_amount` is declared as int, but the data contract says float" in m for m in messages)
    assert any("`bucket.late` is declared as int, but `bucket` produces it as bool" in m for m in messages)
    assert all(d.file.endswith("bad.yaml") and d.line == 4 for d in info.value.diagnostics)


def test_a_cycle_is_named(tmp_path):
    a = ruleset("a", "{b.y: bool}", "{x: {type: bool, default: false}}", "- id: r\n  when: b.y\n  then: {x: true}\n")
    b = ruleset("b", "{c.z: bool}", "{y: {type: bool, default: false}}", "- id: r\n  when: c.z\n  then: {y: true}\n")
    c = ruleset("c", "{a.x: bool}", "{z: {type: bool, default: false}}", "- id: r\n  when: a.x\n  then: {z: true}\n")
    with pytest.raises(BundleCheckError) as info:
        Bundle.load(write(tmp_path, a=a, b=b, c=c))
    [d] = info.value.diagnostics
    assert "cycle: " in d.message and {"a", "b", "c"} <= set(d.message.replace("→", " ").split())


def test_duplicate_names_and_file_errors_together(tmp_path):
    write(tmp_path, one=BUCKET, two=BUCKET, broken="ruleset: broken\nversion: '1'\noutputs: {}\n")
    with pytest.raises(RulesetError) as info:
        Bundle.load(tmp_path)
    text = str(info.value)
    assert "`bucket` is already defined by" in text
    assert "broken.yaml" in text


def test_paths_lists_and_missing_paths(tmp_path):
    write(tmp_path, bucket=BUCKET)
    assert [n.name for n in Bundle.load([tmp_path / "bucket.yaml"]).nodes] == ["bucket"]
    with pytest.raises(BundleError, match="no such file"):
        Bundle.load(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="no rulesets or models found"):
        Bundle.load(empty)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BundleError, match="not a ruleset"):
        Bundle.load(tmp_path / "notes.txt")


def test_bundle_hash_is_the_content(tmp_path):
    first = Bundle.load(write(tmp_path / "a" if (tmp_path / "a").mkdir() is None else tmp_path, bucket=BUCKET)).hash
    other = tmp_path / "b"
    other.mkdir()
    assert Bundle.load(write(other, bucket=BUCKET)).hash == first
    write(other, bucket=BUCKET.replace("dpd > 30", "dpd > 31"))
    assert Bundle.load(other).hash != first


def test_environment_overrides_the_shipped_bundle(tmp_path, monkeypatch):
    from kernel.bundle import default_bundle_paths
    monkeypatch.setenv("POSTLOAN_BUNDLE", str(write(tmp_path, bucket=BUCKET)))
    assert default_bundle_paths() == [tmp_path]
    assert [n.name for n in Bundle.load().nodes] == ["bucket"]


def test_bundle_hash_does_not_depend_on_folder_layout():
    """The shipped bundle's files copied as models/ before rulesets/ (and as one flat folder)
    hash the same: the hash names the content, wherever the files sit."""
    import shutil
    import tempfile
    from pathlib import Path
    from kernel.bundle import default_bundle_paths
    shipped = Bundle.load()
    files = [f for p in default_bundle_paths() for f in sorted(Path(p).rglob("*"))
             if f.suffix in (".yaml", ".onnx")]
    with tempfile.TemporaryDirectory() as tmp:
        flat, reordered = Path(tmp, "flat"), Path(tmp, "reordered")
        flat.mkdir()
        for f in files:
            shutil.copy(f, flat / f.name)
            (reordered / ("a_models" if f.suffix == ".onnx" else "b_rulesets")).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, reordered / ("a_models" if f.suffix == ".onnx" else "b_rulesets") / f.name)
        assert Bundle.load(flat).hash == Bundle.load(reordered).hash == shipped.hash
