"""Bundles: the rulesets (and models) that decide together, as a DAG in evaluation order.

A bundle is a set of files: ``*.yaml`` / ``*.yml`` rulesets and ``*.onnx`` models. Values flow
between them by qualified name: a ruleset that declares the input ``early_warning.level`` reads
the output ``level`` of the ruleset ``early_warning``; bare input names are columns of the book
(the data contract, :mod:`kernel.schema`). Loading checks every file, then the bundle as a
whole, and reports every problem at once:

- two nodes with one name; an input naming a node or output that does not exist ("did you
  mean"); a declared type that disagrees with the producer's output or with the contract;
- a cycle (``a.x`` read by ``b``, ``b.y`` read by ``a``), named node by node.

The evaluation order is a topological order of the DAG, ties broken by file name, so it is
stable across runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BundleError
from .files import ENV_MAX_MODEL_BYTES, ENV_MAX_RULESET_BYTES, FileError, FileLimits, read_capped
from .rules.diagnostics import Diagnostic, RulesetError, did_you_mean
from .rules.ir import FLOAT, INT, Type, enum_type

__all__ = ["Bundle", "BundleCheckError", "default_bundle_paths", "bundle_files"]

RULESET_SUFFIXES = (".yaml", ".yml")
SCENARIO_SUFFIX = ".scenarios.yaml"          # kernel.scenarios.SUFFIX: not rulesets
MODEL_SUFFIXES = (".onnx",)


class BundleCheckError(RulesetError, BundleError):
    """The files compile one by one but not together (dangling names, type disagreements,
    cycles, duplicate names). Both a :class:`RulesetError` (it carries ``diagnostics``) and a
    :class:`~kernel.errors.BundleError`."""


def default_bundle_paths() -> list[Path]:
    """The shipped bundle: ``$POSTLOAN_BUNDLE`` if set, else the repository's ``rulesets/`` and
    ``models/`` folders next to the ``kernel`` package."""
    env = os.environ.get("POSTLOAN_BUNDLE")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    root = Path(__file__).resolve().parent.parent
    return [p for p in (root / "rulesets", root / "models") if p.exists()]


def bundle_files(paths) -> list[Path]:
    """Every ruleset and model file under ``paths`` (files or folders, searched recursively);
    scenario files (``*.scenarios.yaml``) are not rulesets and are left out."""
    if paths is None:
        paths = default_bundle_paths()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise BundleError(f"{p}: no such file or directory")
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in RULESET_SUFFIXES + MODEL_SUFFIXES
                                and not f.name.endswith(SCENARIO_SUFFIX)
                                and not any(part.startswith(".") for part in f.relative_to(p).parts)))
        elif p.name.endswith(SCENARIO_SUFFIX):
            continue                 # bundle-level scenarios (kernel.scenarios), run by `postloan test`
        elif p.suffix in RULESET_SUFFIXES + MODEL_SUFFIXES:
            found.append(p)
        else:
            raise BundleError(f"{p}: not a ruleset (.yaml, .yml) or model (.onnx) file")
    unique = list(dict.fromkeys(f.resolve() for f in found))
    if not unique:
        raise BundleError(f"no rulesets or models found in {', '.join(str(p) for p in paths) or 'the bundle'}")
    return unique


@dataclass
class Node:
    name: str
    kind: str                       # ruleset | model
    file: str
    ruleset: object = None          # kernel.rules.Ruleset
    model: object = None            # the model compiler's compiled model
    outputs: dict = field(default_factory=dict)     # output name -> Type
    version: str = ""


class Bundle:
    """A checked bundle: its nodes in evaluation order and how their inputs are wired."""

    def __init__(self, nodes: list[Node], sources: dict, files: list[Path], warnings: list[Diagnostic],
                 content_hash: str):
        self.nodes = nodes
        self.sources = sources       # node name -> {input name: ("column", col) | ("output", node, out)}
        self.files = files
        self.warnings = warnings
        self.hash = content_hash

    @classmethod
    def load(cls, paths=None, *, limits: FileLimits | None = None) -> "Bundle":
        """Load and check the files under ``paths`` (default: the shipped bundle). ``limits``
        caps each file's size, checked before it is read (default
        :meth:`~kernel.files.FileLimits.from_env`)."""
        from .rules.ruleset import Ruleset, check_text
        limits = limits or FileLimits.from_env()
        files = bundle_files(paths)
        file_digests: list[bytes] = []
        diagnostics: list[Diagnostic] = []
        nodes: list[Node] = []
        failed: dict[str, str] = {}     # ruleset name -> its file, for the files that do not compile
        failed_inputs: list = []        # (file, [(input, type, position)]) of those files
        for f in files:
            model = f.suffix in MODEL_SUFFIXES
            try:
                data = read_capped(f, limits.model_bytes if model else limits.ruleset_bytes,
                                   "model" if model else "ruleset", ENV_MAX_MODEL_BYTES if model else ENV_MAX_RULESET_BYTES)
            except FileError as e:
                if model:
                    raise BundleError(str(e)) from None
                diagnostics.append(Diagnostic(str(f), 1, 1, None, e.problem))
                continue
            except OSError as e:
                raise BundleError(f"{f}: cannot read: {e.strerror}") from None
            file_digests.append(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
            if model:
                nodes.append(_model_node(f, limits.model_bytes))
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                diagnostics.append(Diagnostic(str(f), 1, 1, None, f"not UTF-8 text ({e.reason} at byte {e.start})"))
                continue
            partial: dict = {}
            checked, diags = check_text(str(f), text, book_only=True, partial=partial)
            diagnostics.extend(diags)
            if checked is None and partial.get("name"):
                failed[partial["name"]] = str(f)
                failed_inputs.append((str(f), partial["inputs"]))
            if checked is not None:
                rs = Ruleset(checked, [d for d in diags if not d.is_error], text)
                nodes.append(Node(rs.name, "ruleset", str(f), ruleset=rs, outputs=rs.outputs, version=rs.version))
        file_errors = any(d.is_error for d in diagnostics)
        bundle_diags = _wire(nodes, failed_inputs)
        sources = bundle_diags.pop("sources")
        problems = bundle_diags["diagnostics"]
        diagnostics, problems = _follow_from_failed_files(diagnostics, problems, failed)
        if file_errors or problems:
            cls_ = BundleCheckError if problems else RulesetError
            raise cls_(diagnostics + problems)
        ordered = _order(nodes, sources)
        warnings = [d for d in diagnostics if not d.is_error]
        # the content, not where it sits: the same files in other folders hash the same
        digest = hashlib.sha256(b"".join(sorted(file_digests)))
        return cls(ordered, sources, files, warnings, digest.hexdigest())

    @property
    def rulesets(self) -> list:
        return [n.ruleset for n in self.nodes if n.kind == "ruleset"]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def _follow_from_failed_files(diagnostics: list[Diagnostic], problems: list[Diagnostic],
                              failed: dict[str, str]) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """A ruleset that does not compile makes every input reading it dangle ("no ruleset named
    `dpd_bucket`" in each file that reads it): those are left out, and the failed file's first
    error says how many more errors follow from it."""
    more: dict[str, int] = {}
    kept = []
    for p in problems:
        producer = p.follows[len("ruleset:"):] if p.follows and p.follows.startswith("ruleset:") else None
        if producer in failed:
            more[failed[producer]] = more.get(failed[producer], 0) + 1
        else:
            kept.append(p)
    if not more:
        return diagnostics, problems
    out, done = [], set()
    for d in sorted(diagnostics, key=lambda d: (not d.is_error, d.line, d.column)):
        if d.is_error and d.file in more and d.file not in done:
            d = dataclasses.replace(d, more=d.more + more[d.file])
            done.add(d.file)
        out.append(d)
    return out, kept


def _model_node(path: Path, max_bytes: int) -> Node:
    from . import models
    model = models.compile_model(str(path), max_bytes=max_bytes)
    name = getattr(model, "name", path.stem)
    outputs = {}
    for out in model.outputs:
        out_name, out_type = (out.name, out.type) if hasattr(out, "name") else out
        outputs[out_name] = _as_type(out_type)
    version = str((getattr(model, "metadata", None) or {}).get("version", "") or "")
    return Node(name, "model", str(path), model=model, outputs=outputs, version=version)


def _as_type(t) -> Type:
    if isinstance(t, Type):
        return t
    if isinstance(t, dict) and "enum" in t:
        return enum_type(t["enum"])
    return {"float": FLOAT, "int": INT}.get(str(t), FLOAT)


def _contract_type(col) -> Type | None:
    from .schema import logical_type
    lt = logical_type(col)
    if isinstance(lt, dict):
        return enum_type(lt["enum"])
    return {"int": INT, "float": FLOAT, "bool": Type("bool"), "date": Type("date")}.get(lt)


def _node_inputs(node: Node) -> list[tuple[str, Type | None, tuple]]:
    """(input name, declared type, position) of a node; a model's features have no declared
    type (None): numeric features read any number, categorical ones any enum or string."""
    if node.kind == "ruleset":
        rs = node.ruleset
        pos = rs.checked.input_pos
        return [(i.name, i.type, pos.get(i.name, (1, 1))) for i in rs.ir.inputs]
    return [(feature.name, None, (1, 1)) for feature in node.model.inputs]


def _model_feature(node: Node, name: str):
    return next(f for f in node.model.inputs if f.name == name)


def _feature_problem(node: Node, name: str, actual: Type | None, column) -> str | None:
    """Why a model feature cannot read a value of type ``actual`` (None: fine)."""
    feature = _model_feature(node, name)
    if feature.kind == "category":
        if actual is not None and actual.kind == "enum":
            return None
        if actual is None and column is not None and str(column.type) in ("string", "large_string"):
            return None
        return f"model feature `{name}` is categorical, but the value is {actual or column.type}"
    if actual is not None and actual.kind in ("int", "float", "bool"):
        return None
    return f"model feature `{name}` is numeric, but the value is {actual or column.type}"


def _wire(nodes: list[Node], failed_inputs=()) -> dict:
    """Resolve every node's inputs; returns {"sources": ..., "diagnostics": [...]}. The
    qualified inputs of files that do not compile (``failed_inputs``: (file, [(name, type,
    position)])) are checked too, so that a bundle's problems are reported all at once."""
    from .schema import columns as contract_columns
    book = contract_columns("input")
    by_name: dict[str, Node] = {}
    problems: list[Diagnostic] = []
    for node in nodes:
        if node.name in by_name:
            other = by_name[node.name]
            line, col = node.ruleset.checked.name_pos if node.kind == "ruleset" else (1, 1)
            problems.append(Diagnostic(node.file, line, col, None,
                                       f"`{node.name}` is already defined by {other.file}: names are unique in a bundle"))
            continue
        by_name[node.name] = node
    sources: dict[str, dict] = {}
    for node in nodes:
        wiring = {}
        for name, declared, (line, col) in _node_inputs(node):
            def err(message):
                problems.append(Diagnostic(node.file, line, col, None, message))
            if "." in name:
                producer, output = name.split(".", 1)
                if producer not in by_name:
                    problems.append(Diagnostic(node.file, line, col, None,
                                               f"input `{name}`: no ruleset or model named `{producer}` in the bundle"
                                               f"{did_you_mean(producer, by_name)}", follows=f"ruleset:{producer}"))
                    continue
                target = by_name[producer]
                if output not in target.outputs:
                    err(f"input `{name}`: `{producer}` has no output `{output}`"
                        f"{did_you_mean(output, target.outputs)} (it has: {', '.join(target.outputs)})")
                    continue
                actual = target.outputs[output]
                if declared is None:
                    problem = _feature_problem(node, name, actual, None)
                    if problem:
                        err(problem)
                        continue
                elif actual != declared:
                    err(f"input `{name}` is declared as {declared}, but `{producer}` produces it as {actual}")
                    continue
                wiring[name] = ("output", producer, output)
            else:
                col_def = book.get(name)
                if col_def is None:
                    err(f"input `{name}` is not a column of the book (kernel.schema){did_you_mean(name, book)}")
                    continue
                actual = _contract_type(col_def)
                if declared is None:
                    problem = _feature_problem(node, name, actual, col_def)
                    if problem:
                        err(problem)
                        continue
                elif actual is None:
                    err(f"input `{name}`: the book column is {col_def.type}, which rules cannot read")
                    continue
                elif declared != actual and not (declared == FLOAT and actual == INT):
                    err(f"input `{name}` is declared as {declared}, but the data contract says {actual}")
                    continue
                wiring[name] = ("column", name)
        sources[node.name] = wiring
    for file, inputs in failed_inputs:
        for name, declared, (line, col) in inputs:
            if "." not in name:
                continue
            producer, output = name.split(".", 1)
            target = by_name.get(producer)
            if target is None:
                problems.append(Diagnostic(file, line, col, None,
                                           f"input `{name}`: no ruleset or model named `{producer}` in the bundle"
                                           f"{did_you_mean(producer, by_name)}", follows=f"ruleset:{producer}"))
            elif output not in target.outputs:
                problems.append(Diagnostic(file, line, col, None,
                                           f"input `{name}`: `{producer}` has no output `{output}`"
                                           f"{did_you_mean(output, target.outputs)} (it has: {', '.join(target.outputs)})"))
            elif target.outputs[output] != declared:
                problems.append(Diagnostic(file, line, col, None, f"input `{name}` is declared as {declared}, "
                                           f"but `{producer}` produces it as {target.outputs[output]}"))
    problems.extend(_cycles(nodes, sources))
    return {"sources": sources, "diagnostics": problems}


def _cycles(nodes: list[Node], sources: dict) -> list[Diagnostic]:
    """One diagnostic per cycle, at the input that closes it, naming every node on it."""
    deps = {n.name: sorted({s[1] for s in sources.get(n.name, {}).values() if s[0] == "output"}) for n in nodes}
    by_name = {n.name: n for n in nodes}
    state: dict[str, int] = {}
    found: list[Diagnostic] = []
    reported: set[frozenset] = set()

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in deps.get(name, []):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [name, dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    node = by_name[name]
                    pos = (1, 1)
                    if node.kind == "ruleset":
                        inputs = node.ruleset.checked.input_pos
                        pos = next((inputs[i] for i, s in sources[name].items() if s[0] == "output" and s[1] == dep),
                                   (1, 1))
                    found.append(Diagnostic(node.file, pos[0], pos[1], None,
                                            "cycle: " + " → ".join(cycle)
                                            + " (each reads the next one's output)"))
            elif dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for n in sorted(deps):
        if n not in state:
            visit(n, [n])
    return found


def _order(nodes: list[Node], sources: dict) -> list[Node]:
    """Topological order, ties broken by file name then node name."""
    by_name = {n.name: n for n in nodes}
    deps = {n.name: {s[1] for s in sources[n.name].values() if s[0] == "output"} for n in nodes}
    done: list[Node] = []
    placed: set[str] = set()
    remaining = sorted(nodes, key=lambda n: (Path(n.file).name, n.name))
    while remaining:
        for n in remaining:
            if deps[n.name] <= placed:
                done.append(n)
                placed.add(n.name)
                remaining.remove(n)
                break
        else:  # pragma: no cover - cycles are rejected before ordering
            raise BundleError("cycle among " + ", ".join(n.name for n in remaining))
    assert len(done) == len(by_name)
    return done
