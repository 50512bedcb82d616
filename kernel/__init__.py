"""postloan's kernel: compile rulesets and models into one vectorized decision path.

The public API is imported lazily so that ``import kernel`` (and the CLI) stay fast:
Numba, onnxruntime and grpc load only when the part that needs them is first used.

>>> import datetime, kernel
>>> k = kernel.Kernel.load()                       # the shipped bundle
>>> out = k.decide(book, as_of=datetime.date(2026, 11, 28))   # doctest: +SKIP
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "PostloanError": "kernel.errors",
    "compile_ruleset": "kernel.rules",
    "RulesetError": "kernel.rules",
    "InputError": "kernel.rules",
    "Kernel": "kernel.runtime",
    "BundleError": "kernel.errors",
    "compile_model": "kernel.models",
    "ModelError": "kernel.models",
    "hookimpl": "kernel.hookspecs",
    "hookspec": "kernel.hookspecs",
}
_SUBMODULES = {"schema", "schedule", "synth", "client", "errors"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"kernel.{name}")
    raise AttributeError(f"module 'kernel' has no attribute {name!r}")
