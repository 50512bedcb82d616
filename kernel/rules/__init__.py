"""The ruleset compiler: YAML rulesets (RULESET_LANGUAGE.md) → checked, typed IR.

Stages, each a pure function with its own tests: :mod:`.parse` (YAML with line/column,
expressions through Python's ``ast``) → :mod:`.check` (types, names, "did you mean", all errors
at once) → :mod:`.static` (shadowed rules, integer gaps, overlaps under ``unique``) → the IR
(:mod:`.ir`), run by :mod:`.reference` (row at a time) or compiled by :mod:`kernel.codegen`.
"""
from __future__ import annotations

from .columns import InputError
from .diagnostics import Diagnostic, RulesetError
from .ruleset import Ruleset, compile_ruleset

__all__ = ["compile_ruleset", "Ruleset", "RulesetError", "Diagnostic", "InputError"]
