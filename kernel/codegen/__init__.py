"""Numba code generation: a plan of rulesets (and models) → one fused, cached kernel.

``compile_plan(plan)`` generates one module per node and the driver (:mod:`.emit`), writes each
to a file named by its content hash (:mod:`.cache`), compiles each node on its own — or loads
its machine code from Numba's cache — and returns a :class:`~.driver.CompiledKernel` whose
driver calls the nodes through their addresses. A node's source names no position of the plan,
so its hash (and cache entry) depends only on its own content and its inputs' types: after a
change to one ruleset, that node alone compiles.
"""
from __future__ import annotations

from .plan import ModelNode, Plan, RulesetNode

__all__ = ["compile_plan", "CompiledKernel", "Plan", "RulesetNode", "ModelNode"]


def __getattr__(name):
    # the driver imports NumPy, pyarrow and Numba: loaded when first used, so that reading the
    # cache folder (``kernel.codegen.cache``) costs a rule author's `postloan test` nothing
    if name == "CompiledKernel":
        from .driver import CompiledKernel
        return CompiledKernel
    raise AttributeError(name)


def compile_plan(plan: Plan, progress=None):
    """Compile (or load from Numba's cache) the kernel of ``plan``.

    ``progress(done, total, name)`` is called before each node that really compiles (a cached
    node loads in milliseconds and is not reported): ``done`` nodes of ``total`` are ready.
    A model node whose block function (the model interpreter, shared by every model and
    compiled once per machine) is not cached yet is reported first as ``"<model> (model
    interpreter)"``. By default (``progress=None``) a bar "compiling node n of N: <name>"
    shows on stderr when it is a terminal (``kernel.cli.progress``) and each compiled node is
    logged (logger ``kernel.codegen``); ``progress=False`` only logs (``--quiet``)."""
    import numpy as np

    from . import cache, emit
    from .driver import CompiledKernel

    generated = emit.generate(plan)
    total = len(generated.nodes)
    report = progress if callable(progress) else _Progress(total, bar=progress is None)
    signature = emit.node_signature()
    functions, keep, model_functions = [], [], {}
    try:
        for k, node in enumerate(generated.nodes):
            model = generated.models.get(node.name)
            if model is not None:          # the interpreter first: the longest compile, reported
                params = tuple(np.ascontiguousarray(p) for p in model.params)
                model_functions[node.name] = (params, _model_function(
                    model, params, lambda k=k, name=node.name: report(k, total, f"{name} (model interpreter)")))
            module = cache.import_source(cache.write_source(node.source))
            result = cache.compile_function(module.node, signature,
                                            lambda k=k, name=node.name: report(k, total, name))
            functions.append(cache.native_address(result))
            keep.append(module)
    finally:
        if not callable(progress):
            report.close()
    driver = cache.import_source(cache.write_source(generated.driver))
    keep.append(driver)
    tables = _tables(generated.nodes)
    model_params, node_map = [], []
    for k, node in enumerate(generated.nodes):
        model = generated.models.get(node.name)
        params = address = None
        if model is not None:
            params, address = model_functions[node.name]
            model_params.append(params)
            keep.append(model.block_fn)
        node_map.append([_position(key, k, tables, address, params) for key in node.keys])
    width = max([len(m) for m in node_map] + [1])
    MAP = np.zeros((len(node_map), width), dtype=np.int64)
    for k, row in enumerate(node_map):
        MAP[k, :len(row)] = row
    return CompiledKernel(plan, driver.block, {g: t for g, (t, _) in tables.items()}, np.array(functions, np.int64),
                          MAP, generated.packing, model_params, keep)


def _tables(nodes) -> dict:
    """Every node's constant tables concatenated per group: ``{group: (array, [start per node])}``."""
    import numpy as np
    result = {}
    for group, dtype in (("TI64", np.int64), ("TF64", np.float64), ("TU64", np.uint64)):
        parts = [node.tables[group] for node in nodes]
        starts = np.cumsum([0] + [p.size for p in parts])[:-1].tolist()
        array = np.concatenate(parts).astype(dtype) if sum(p.size for p in parts) else np.zeros(1, dtype)
        result[group] = (np.ascontiguousarray(array), starts)
    return result


def _position(key: tuple, k: int, tables: dict, model_address, params) -> int:
    """The value ``M[local]`` of node ``k`` holds for one of its keys (see
    :class:`.emit.NodeSource`)."""
    what = key[0]
    if what == "TABLE":
        return tables[key[1]][1][k]
    if what == "MODEL_FN":
        return model_address
    if what == "MODEL_PARAM":
        return params[key[1]].ctypes.data
    if what == "MODEL_PARAM_SIZE":
        return params[key[1]].size
    return key[1]                 # ("PTR", index) or (output group, row)


def _model_function(model, params, on_compile=None) -> int:
    """The address of a model's block function compiled for the arguments its node passes:
    ``(X float32[rows, features], params, Y float64[rows, outputs])``."""
    import numba
    from numba import types

    from . import cache
    signature = (types.Array(types.float32, 2, "C"), numba.typeof(params), types.Array(types.float64, 2, "C"))
    return cache.native_address(cache.compile_function(model.block_fn, signature, on_compile))


class _Progress:
    """The default progress report of :func:`compile_plan`: a bar on a terminal, created at the
    first node that compiles, and one log line per compiled node."""

    def __init__(self, total: int, bar: bool = True):
        self.total = total
        self.show = bar
        self.bar = None

    def __call__(self, done: int, total: int, name: str) -> None:
        import logging
        logging.getLogger("kernel.codegen").info("compiling node %d of %d: %s", done + 1, total, name)
        if not self.show:
            return
        if self.bar is None:
            from ..cli.progress import bar
            self.bar = bar(total, "compiling", unit="node")
            self.bar.update(done)
        else:
            self.bar.update(done - self.bar.n)
        self.bar.set_description(f"compiling node {done + 1} of {total}: {name}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
