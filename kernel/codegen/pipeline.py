"""A shorter Numba compiler pipeline for generated code (nodes, the driver, the models'
straight-line blocks).

Numba's default nopython pipeline runs about thirty passes on every function, most of them
for Python features the generator never emits: closures and comprehensions
(``InlineClosureLikes``, ``MakeFunctionToJitFunction``), ``with`` blocks, ``literally`` and
``literal_unroll``, dead-branch pruning of constant conditions, dynamic ``raise``, the
array-expression rewrites after typing (generated code does arithmetic on scalars only),
and the SSA reconstruction with its phi stripping before lowering. Generated code is
straight-line code over scalars in which a variable keeps one type, so without SSA its
variables type the same; LLVM's ``mem2reg`` builds the SSA form the machine code needs
either way. Measured on the shipped bundle's nine ruleset nodes (one process, each node
compiled alone into an empty cache, alternating, see docs/compiler.md): the lean pipeline
takes about a fifth less CPU than the default for the same machine code.

What it keeps: bytecode → IR, type inference, the inlining of overloads marked
``inline="always"``, the legalization that checks and fixes the IR before lowering, and
lowering. Not the generic (pre-typing) rewrites either: they turn a subscript by a constant
into a ``static_getitem`` / ``static_setitem``, which generated code only ever applies to
pointers (``M[3]``, ``xr[0] = …``) and shapes — pointers have no static form, so each such
subscript cost a failed typing and a failed lowering lookup before Numba fell back to the
plain ``getitem`` it now gets at once (≈ 800 of them in the shipped bundle); generated code
prints nothing, raises nothing and has no ``**`` for the other rewrites to act on. Code that needs more (comprehensions, closures, ``inline="always"`` functions of
its own) keeps Numba's default pipeline: only :data:`LEAN` users get this one.
"""
from __future__ import annotations

from numba.core.compiler import CompilerBase
from numba.core.compiler_machinery import PassManager, register_pass
from numba.core.typed_passes import (AnnotateTypes, InlineOverloads, IRLegalization, NativeLowering,
                                     NoPythonBackend, NopythonTypeInference)
from numba.core.untyped_passes import FixupArgs, IRProcessing, TranslateByteCode

from . import frontend

frontend.install()              # before anything compiles: one typing of each call per compile

__all__ = ["LeanCompiler", "LEAN_PASSES"]


@register_pass(mutates_CFG=True, analysis_only=False)
class LeanLowering(NativeLowering):
    """Numba's lowering, without the per-function LLVM optimization that a library runs on
    every module added to it: the module pipeline (``-O3``) that Numba runs on the linked
    module when it finalizes the library optimizes every function again anyway."""

    _name = "lean_native_lowering"

    def run_pass(self, state):
        if state.library is None:
            codegen = state.targetctx.codegen()
            state.library = codegen.create_library(state.func_id.func_qualname)
            state.library.enable_object_caching()           # as Numba's own pass: cacheable
        layout = state.targetctx.codegen()._data_layout

        def no_function_passes(ll_module):
            ll_module.data_layout = layout                      # what Numba's own method sets first
        state.library._optimize_functions = no_function_passes
        return super().run_pass(state)


class LeanCompiler(CompilerBase):
    """Numba's nopython pipeline without the passes generated code never needs."""

    def define_pipelines(self):
        pm = PassManager("lean")
        for cls, description in LEAN_PASSES:
            pm.add_pass(cls, description)
        pm.finalize()
        return [pm]


#: the passes, in order (Numba's own descriptions)
LEAN_PASSES = (
    (TranslateByteCode, "analyzing bytecode"),
    (FixupArgs, "fix up args"),
    (IRProcessing, "processing IR"),
    (NopythonTypeInference, "nopython frontend"),
    (InlineOverloads, "inline overloaded functions"),
    (IRLegalization, "ensure IR is legal prior to lowering"),
    (AnnotateTypes, "annotate types"),
    (LeanLowering, "native lowering"),
    (NoPythonBackend, "nopython mode backend"),
)
