"""Numba code generation: a plan of rulesets (and models) → one fused, cached kernel.

``compile_plan(plan)`` generates the kernel's source (:mod:`.emit`), writes it to a file named
by its content hash (:mod:`.cache`), imports it — Numba compiles it, or loads the machine code
it cached for that file earlier — and returns a :class:`~.driver.CompiledKernel`.
"""
from __future__ import annotations

from .driver import CompiledKernel
from .plan import ModelNode, Plan, RulesetNode

__all__ = ["compile_plan", "CompiledKernel", "Plan", "RulesetNode", "ModelNode"]


def compile_plan(plan: Plan) -> CompiledKernel:
    import numba

    from . import cache, emit
    models = [n for n in plan.nodes if isinstance(n, ModelNode)]
    extra = ";".join(f"model {m.name} {m.source_hash}" for m in models)
    header = f"generator {emit.GENERATOR_VERSION}, numba {numba.__version__}" + (f"; {extra}" if extra else "")
    source, tables, _ = emit.generate(plan, header)
    path = cache.write_source(source)
    inject = {"MP_TYPES": [numba.typeof(m.params) for m in models]} if models else None
    module = cache.import_source(path, inject)
    return CompiledKernel(plan, module, tables, [m.params for m in models])
