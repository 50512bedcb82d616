"""The compiled form of one ruleset file and ``compile_ruleset``, the language's Python API."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from . import ir
from .check import Checked, check_document, swallowed_keys
from .columns import COLLECT_RULE_TYPE, RULE_TYPE, find_columns, from_python, rule_array, to_python
from .diagnostics import Diagnostic, Diagnostics, RulesetError, collapse
from .parse import parse_yaml
from .reference import evaluate_rules

__all__ = ["Ruleset", "compile_ruleset", "load_source"]


def load_source(path_or_text) -> tuple[str, str]:
    """(file name, text) of a path or of YAML text given directly (file ``<string>``)."""
    if isinstance(path_or_text, os.PathLike) or (
            isinstance(path_or_text, str) and "\n" not in path_or_text
            and (path_or_text.endswith((".yaml", ".yml")) or os.path.isfile(path_or_text))):
        from ..files import ENV_MAX_RULESET_BYTES, FileError, FileLimits, read_capped
        path = os.fspath(path_or_text)
        try:
            data = read_capped(path, FileLimits.from_env().ruleset_bytes, "ruleset", ENV_MAX_RULESET_BYTES)
            return path, data.decode("utf-8")
        except FileNotFoundError:
            raise RulesetError([Diagnostic(path, 1, 1, None, "no such file")]) from None
        except FileError as e:
            raise RulesetError([Diagnostic(path, 1, 1, None, e.problem)]) from None
        except UnicodeDecodeError as e:
            raise RulesetError([Diagnostic(path, 1, 1, None, f"not UTF-8 text ({e.reason} at byte {e.start})")]) from None
        except OSError as e:
            raise RulesetError([Diagnostic(path, 1, 1, None, f"cannot read: {e.strerror}")]) from None
    if isinstance(path_or_text, bytes):
        path_or_text = path_or_text.decode("utf-8")
    if not isinstance(path_or_text, str):
        raise TypeError(f"compile_ruleset takes a path or YAML text, got {type(path_or_text).__name__}")
    return "<string>", path_or_text


def check_text(file: str, text: str, *, book_only: bool = False,
               partial: dict | None = None) -> tuple[Checked | None, list[Diagnostic]]:
    """Parse and check one file; returns the result (None on errors) and every diagnostic,
    the consequences of a reported root cause left out (:func:`~.diagnostics.collapse`).
    ``book_only``: every bare input must be a column of the data contract (a bundle's files).
    ``partial``, when given, receives what a file with errors still declares: its ``name``
    and its ``inputs`` as (name, type, position).

    Results of files that check cleanly are cached under ``$POSTLOAN_CACHE_DIR/checked``,
    keyed by the file's name and text and by the compiler's own source: parsing YAML with
    positions is the slowest step of a warm start."""
    key = _check_key(file, text + ("\0book" if book_only else ""))
    cached = _load_checked(key)
    if cached is not None:
        return cached
    d = Diagnostics(file)
    root = parse_yaml(text, d)
    checked = check_document(root, d, book_only=book_only) if root is not None else None
    if root is not None:
        swallowed_keys(root, text, d)
    if partial is not None:
        partial.update(d.partial)
    items = collapse(d.items)
    if checked is not None and len(checked.ir.rules) <= _CACHE_MAX_RULES:
        _store_checked(key, (checked, items))
    return checked, items


def _compiler_hash() -> str:
    global _COMPILER_HASH
    if _COMPILER_HASH is None:
        import hashlib
        digest = hashlib.sha256()
        here = Path(__file__).parent
        for f in sorted(here.glob("*.py")) + [here.parent / "schema.py"]:    # the contract too
            digest.update(f.name.encode() + f.read_bytes())
        _COMPILER_HASH = digest.hexdigest()
    return _COMPILER_HASH


_COMPILER_HASH = None
#: larger rulesets (decision tables) pickle about as slowly as they parse: not cached
_CACHE_MAX_RULES = 2000


def _check_key(file: str, text: str) -> str:
    import hashlib
    return hashlib.sha256("\0".join((_compiler_hash(), file, text)).encode("utf-8")).hexdigest()


def _checked_path(key: str) -> Path:
    from ..codegen.cache import cache_dir
    return cache_dir() / "checked" / f"{key[:40]}.pickle"


def _load_checked(key: str):
    import pickle
    try:
        with open(_checked_path(key), "rb") as f:
            return pickle.load(f)
    except Exception:            # missing, unreadable or stale: check again
        return None


def _store_checked(key: str, value) -> None:
    import pickle
    import tempfile
    path = _checked_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:              # a read-only cache only costs speed
        pass


def compile_ruleset(path_or_yaml_text) -> "Ruleset":
    """Parse and check one ruleset (a file path or YAML text). Raises :class:`RulesetError`
    with every error found; warnings are kept on ``Ruleset.warnings``. Inputs that are columns
    of the data contract must be declared with the contract's type (``dpd: float`` is an
    error: the contract says int); other bare names are the caller's own columns."""
    file, text = load_source(path_or_yaml_text)
    checked, diagnostics = check_text(file, text)
    if checked is None:
        raise RulesetError(diagnostics)
    return Ruleset(checked, [d for d in diagnostics if not d.is_error], text)


class Ruleset:
    """One checked ruleset: its IR, where it came from, its warnings and test examples."""

    def __init__(self, checked: Checked, warnings: list[Diagnostic], source: str):
        self.checked = checked
        self.ir: ir.RulesetIR = checked.ir
        self.warnings = warnings
        self.source = source
        self._kernel = None

    name = property(lambda self: self.ir.name)
    version = property(lambda self: self.ir.version)
    file = property(lambda self: self.checked.file)
    tests = property(lambda self: self.checked.tests)

    @property
    def inputs(self) -> dict[str, ir.Type]:
        return {i.name: i.type for i in self.ir.inputs}

    @property
    def outputs(self) -> dict[str, ir.Type]:
        return {o.name: o.type for o in self.ir.outputs}

    def __repr__(self) -> str:
        return f"<Ruleset {self.name} {self.version} ({self.ir.hit}, {len(self.ir.rules)} rules) from {self.file}>"

    def output_schema(self) -> pa.Schema:
        from .columns import arrow_type
        fields = [pa.field(f"{self.name}.{o.name}", arrow_type(o.type)) for o in self.ir.outputs]
        rule = COLLECT_RULE_TYPE if self.ir.hit == "collect" else RULE_TYPE
        return pa.schema(fields + [pa.field(f"{self.name}.rule", rule)])

    def kernel(self):
        """This ruleset alone compiled to a Numba kernel (inputs read from columns by name)."""
        if self._kernel is None:
            from ..codegen import Plan, RulesetNode, compile_plan
            node = RulesetNode(self.ir, {i.name: ("column", i.name) for i in self.ir.inputs})
            self._kernel = compile_plan(Plan.build([node]))
        return self._kernel

    def evaluate(self, table, as_of=None, engine: str = "compiled") -> pa.Table:
        """Decide every row of ``table`` (a pyarrow Table or RecordBatch): one column per output
        (``<ruleset>.<output>``) plus ``<ruleset>.rule``, row for row."""
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if not isinstance(table, pa.Table):
            raise TypeError(f"evaluate takes a pyarrow Table or RecordBatch, got {type(table).__name__}")
        find_columns(table.schema, [(i.name, i.type) for i in self.ir.inputs])
        if engine == "compiled":
            kernel = self.kernel()
            batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
            parts = [pa.RecordBatch.from_arrays([a for _, a in cols], names=[c for c, _ in cols])
                     for cols in kernel.run_batches(batches, as_of)]
            return pa.Table.from_batches(parts, schema=self.output_schema())
        if engine == "reference":
            from ..codegen.driver import as_of_days
            return reference_table(self.ir, table, as_of_days(as_of), self.output_schema())
        raise ValueError(f"engine must be 'compiled' or 'reference', got {engine!r}")


def reference_table(rs: ir.RulesetIR, table: pa.Table, as_of: int, schema: pa.Schema) -> pa.Table:
    """Evaluate one ruleset with the reference interpreter, row by row."""
    cols = {i.name: to_python(i.name, table.column(i.name), i.type) for i in rs.inputs}
    n = table.num_rows
    results = [evaluate_rules(rs, {k: v[r] for k, v in cols.items()}, as_of) for r in range(n)]
    arrays = [from_python([res[o.name] for res in results], o.type) for o in rs.outputs]
    arrays.append(rule_array([res["rule"] for res in results], rs))
    return pa.Table.from_arrays(arrays, schema=schema)
