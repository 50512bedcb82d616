"""Numba code generation: a plan of rulesets (and models) → one fused, cached kernel.

``compile_plan(plan)`` generates the kernel's modules (:mod:`.emit`: one per node and a
driver), writes each to a file named by its content hash (:mod:`.cache`) and imports it —
Numba compiles it, or loads the machine code it cached for that file — and returns a
:class:`~.driver.CompiledKernel`.
"""
from __future__ import annotations

from .driver import CompiledKernel
from .plan import ModelNode, Plan, RulesetNode

__all__ = ["compile_plan", "CompiledKernel", "Plan", "RulesetNode", "ModelNode"]


def compile_plan(plan: Plan) -> CompiledKernel:
    """Compile (or load from Numba's cache) the kernel of ``plan``."""
    import numba

    from . import cache, emit
    generated = emit.generate(plan)
    modules = []
    for name, source in generated.nodes:
        modules.append(cache.import_source(cache.write_source(source)))
    driver = generated.driver.format(**{f"module_{k}": m.__name__ for k, m in enumerate(modules)})
    inject = {"MP_TYPES": [numba.typeof(m.params) for m in generated.models]} if generated.models else None
    module = cache.import_source(cache.write_source(driver), inject)
    return CompiledKernel(plan, module, generated.tables, [m.params for m in generated.models], generated.packing)
