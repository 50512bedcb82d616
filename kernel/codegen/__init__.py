"""Numba code generation: a plan of rulesets (and models) → one fused, cached kernel.

``compile_plan(plan)`` generates one module per node and the driver (:mod:`.emit`), writes each
to a file named by its content hash (:mod:`.cache`), compiles each node on its own — or loads
its machine code from Numba's cache — and returns a :class:`~.driver.CompiledKernel` whose
driver calls the nodes through their addresses. A node's source names no position of the plan,
so its hash (and cache entry) depends only on its own content and its inputs' types: after a
change to one ruleset, that node alone compiles.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from .plan import ModelNode, Plan, RulesetNode

__all__ = ["compile_plan", "CompiledKernel", "Plan", "RulesetNode", "ModelNode"]


def __getattr__(name):
    # the driver imports NumPy, pyarrow and Numba: loaded when first used, so that reading the
    # cache folder (``kernel.codegen.cache``) costs a rule author's `postloan test` nothing
    if name == "CompiledKernel":
        from .driver import CompiledKernel
        return CompiledKernel
    raise AttributeError(name)


#: the driver's compile as a job of a cold compile shared with forked helpers
DRIVER_JOB = ("driver", 0)


def compile_plan(plan: Plan, progress=None, helpers: list | None = None):
    """Compile (or load from Numba's cache) the kernel of ``plan``.

    ``progress(done, total, name)`` is called before each node that really compiles (a cached
    node loads in milliseconds and is not reported): ``done`` nodes of ``total`` are ready.
    A model node whose block function (its straight-line block, or an interpreter shared by
    every model with the same ops) is not cached yet is reported first as ``"<model> (model
    block)"``. By default (``progress=None``) a bar "compiling node n of N: <name>"
    shows on stderr when it is a terminal (``kernel.cli.progress``) and each compiled node is
    logged (logger ``kernel.codegen``); ``progress=False`` only logs (``--quiet``).
    ``helpers``: helper processes started early (:func:`.parallel.prestart`), waiting for
    jobs: given a share of a cold compile, or ended (forked ones, which compile the driver
    meanwhile, are given jobs to claim or nothing, and waited for before the driver loads)."""
    import numpy as np

    from . import cache, emit
    from .driver import CompiledKernel

    generated = emit.generate(plan)
    total = len(generated.nodes)
    report = progress if callable(progress) else _Progress(total, bar=progress is None)
    signature = emit.node_signature()
    modules = [cache.import_source(cache.write_source(node.source)) for node in generated.nodes]
    arguments = {name: tuple(np.ascontiguousarray(p) for p in model.params) for name, model in generated.models.items()}
    idle = list(helpers or ())
    try:
        helpers, claims = _start_helpers(generated, modules, arguments, idle)
    finally:
        for helper in idle:                  # started early, not needed: ended
            helper.kill()
    shown: set = set()
    claimed_here: set = set()

    def show(k: int, label: str | None = None) -> None:
        """Report node ``k`` (once; its interpreter first when that compiles too)."""
        name = generated.nodes[k].name
        if label is None and k in shown:
            return
        report(len(shown), total, name if label is None else f"{name} ({label})")
        if label is None:
            shown.add(k)

    functions, keep, model_functions = [0] * total, [], {}
    try:
        if claims is not None:               # forked helpers: the jobs this process claims first
            for key in claims.order(0):
                if claims.take(key):
                    claimed_here.add(key)
                    _compile_job(generated, modules, arguments, key, show)
        # the parent's share first (everything, without helpers), then what helpers compiled:
        # loaded from Numba's cache once their helper is done
        for second in (False, True):
            for k, (node, module) in enumerate(zip(generated.nodes, modules)):
                model = generated.models.get(node.name)
                if model is not None and (("model", k) in helpers) == second:
                    if second and ("model", k) not in claimed_here:
                        helper = helpers[("model", k)]
                        if not helper.done:
                            show(k, "model block")
                        helper.wait()
                    model_functions[node.name] = (arguments[node.name], _model_function(
                        model, arguments[node.name], lambda k=k: show(k, "model block")))
                if (("node", k) in helpers) == second:
                    if second and ("node", k) not in claimed_here:
                        show(k)
                        helpers[("node", k)].wait()
                    result = cache.compile_function(module.node, signature, lambda k=k: show(k))
                    functions[k] = cache.native_address(result)
        if DRIVER_JOB in helpers and DRIVER_JOB not in claimed_here:
            helpers[DRIVER_JOB].wait()       # a helper compiles it: imported below from the cache
    finally:
        for helper in set(helpers.values()):
            helper.kill()
        if claims is not None:
            claims.close()
        if not callable(progress):
            report.close()
    keep.extend(modules)
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
                          MAP, generated.packing, model_params, keep, record=driver.record)


def _start_helpers(generated, modules: list, params: dict, idle: list) -> tuple[dict, object]:
    """Start helper processes for a cold compile worth sharing (:mod:`.parallel`), first
    handing jobs to the ``idle`` ones (started early; those given jobs are removed from the
    list): returns ``{("node" | "model", k): Helper}`` for the jobs handed out, and the
    :class:`.parallel.Claims` the parent claims its jobs from when the helpers are forked
    (None: spawned helpers with fixed shares, or none)."""
    from . import parallel
    jobs, details, interpreters = [], {}, {}
    for k, (node, module) in enumerate(zip(generated.nodes, modules)):
        model = generated.models.get(node.name)
        if model is not None:
            fn = model.block_fn
            described = [["<f4", 2], parallel.describe(params[node.name]), ["<f8", 2]]
            ident = (fn.__module__, fn.__name__, json.dumps(described))
            if ident in interpreters:
                interpreters[ident].append(("model", k))       # the same function: waits for it too
            elif not parallel.is_cached(fn):
                interpreters[ident] = []
                path = getattr(sys.modules.get(fn.__module__), "__file__", None)
                straight = fn.__module__.startswith("postloan_kernel_") and path
                jobs.append((("model", k), parallel.block_seconds(
                    Path(path).read_text(encoding="utf-8") if straight else None)))
                details[("model", k)] = {"kind": "function", "module": fn.__module__, "name": fn.__name__,
                                         "path": getattr(sys.modules.get(fn.__module__), "__file__", None),
                                         "args": described, "also": interpreters[ident]}
        if not parallel.is_cached(module.node):
            jobs.append((("node", k), parallel.node_seconds(node.source)))
            details[("node", k)] = {"kind": "node", "path": module.__file__}
    early = [helper for helper in idle if isinstance(helper, parallel.EarlyFork)]
    if early:
        idle[:] = [helper for helper in idle if helper not in early]
        return _share_with_early(generated, jobs, details, early)
    if sum(seconds for _, seconds in jobs) < parallel.MIN_SECONDS:
        return {}, None                 # a warm load or a small edit: no helper pays (nor the idle sample)
    helpers = max(parallel.workers(), len(idle)) if idle else parallel.workers()
    if not helpers:
        return {}, None
    fork = parallel.start_method() == "fork" and not idle
    if fork:                            # the driver too: compiled while the nodes are, not after them
        jobs.append((DRIVER_JOB, parallel.DRIVER_SECONDS))
        details[DRIVER_JOB] = {"kind": "driver"}
    shares = parallel.plan_jobs(jobs, helpers, parallel.PARENT_SECONDS)
    if len(shares) > 1:
        named = [["the driver" if what == "driver" else
                  f"{generated.nodes[k].name}{' (model block)' if what == 'model' else ''}" for what, k in share]
                 for share in shares]
        parallel.log.info("compiling in %d processes: %s", len(shares), "; ".join(", ".join(n) for n in named))
    started = {}
    if fork and len(shares) > 1:
        parallel.warm_up()                 # inherited by the children
        claims = parallel.Claims(shares)
        crew = parallel.Crew([parallel.ForkedHelper(functools.partial(_compile_claimed, generated, modules, params,
                                                                      claims, i)) for i in range(1, len(shares))])
        for key in details:
            started[key] = crew
            started.update({other: crew for other in details[key].get("also", ())})
        return started, claims
    for share in shares[1:]:
        jobs = [{**{n: v for n, v in details[key].items() if n != "also"}, "key": list(key)} for key in share]
        if idle:
            helper = idle.pop(0)
            helper.send(jobs)
        else:
            helper = parallel.Helper(jobs)
        for key in share:
            started[key] = helper
            started.update({other: helper for other in details[key].get("also", ())})
    return started, None


def _share_with_early(generated, jobs: list, details: dict, early: list) -> tuple[dict, object]:
    """Share a cold compile with helpers forked before the bundle was read
    (:class:`.parallel.EarlyFork`): the first has been compiling the driver since, so the
    driver is theirs, and the jobs — when worth sharing — are claimed by this process and them
    (:class:`.parallel.Claims`); each gets its claiming order, or nothing (it ends after the
    driver). Returns as :func:`_start_helpers`."""
    from . import parallel
    crew = parallel.Crew(early)
    started, claims, shares = {DRIVER_JOB: crew}, None, []
    if sum(seconds for _, seconds in jobs) >= parallel.MIN_SECONDS:
        shares = parallel.plan_jobs(jobs, len(early), parallel.PARENT_SECONDS)
    if len(shares) > 1:
        named = [[f"{generated.nodes[k].name}{' (model block)' if what == 'model' else ''}" for what, k in share]
                 for share in shares]
        parallel.log.info("compiling in %d processes (the driver in a helper): %s", len(shares),
                          "; ".join(", ".join(n) for n in named))
        claims = parallel.Claims(shares)
        for key in details:
            started[key] = crew
            started.update({other: crew for other in details[key].get("also", ())})
    for process, helper in enumerate(early, start=1):
        if claims is not None and process < len(shares):
            order = [(key, {n: v for n, v in details[key].items() if n != "also"}) for key in claims.order(process)]
            helper.send(claims.dir, order)
        else:
            helper.send()
    return started, claims


def _compile_claimed(generated, modules: list, params: dict, claims, process: int) -> None:
    """Forked helper ``process``'s work: every job it claims (:class:`.parallel.Claims`)
    compiled into Numba's cache, as the parent compiles its own (the parent loads them from
    the cache)."""
    for key in claims.order(process):
        if claims.take(key):
            _compile_job(generated, modules, params, key)


def _compile_job(generated, modules: list, params: dict, key: tuple, show=None) -> None:
    """Compile one job: ``("model", k)`` node k's model block function, ``("node", k)`` node
    k (``show(k[, label])``: the progress report, when it really compiles), :data:`DRIVER_JOB`
    the driver module (the parent then imports it from Numba's cache)."""
    from . import cache, emit
    what, k = key
    if what == "driver":
        cache.import_source(cache.write_source(generated.driver))
    elif what == "model":
        node = generated.nodes[k]
        _model_function(generated.models[node.name], params[node.name],
                        None if show is None else (lambda: show(k, "model block")))
    else:
        cache.compile_function(modules[k].node, emit.node_signature(), None if show is None else (lambda: show(k)))


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
            self.bar = bar(total, "compiling", unit="node", scale=False)
            self.bar.update(done)
        else:
            self.bar.update(done - self.bar.n)
        self.bar.set_description(f"compiling node {done + 1} of {total}: {name}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
