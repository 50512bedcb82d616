"""postloan check: report every problem in a bundle (or one ruleset file) without running it."""
from __future__ import annotations

import sys

from . import args as a

HELP = "check rulesets: print every error and warning as file:line:col: message"
DESCRIPTION = """Parse and check every ruleset of a bundle (default: the shipped bundle) — syntax, types
against the data contract and upstream outputs, unknown names, hit-policy rules, names that
dangle between rulesets, cycles — and print every problem as file:line:col: message.
Warnings (rules that can never fire, integer ranges no rule covers) do not fail the check.
A single .yaml file is checked on its own, against the inputs it declares.

exit status: 0 no errors (warnings allowed), 1 errors found, 2 bad arguments.

examples:
  postloan check
  postloan check rulesets/collection_tier.yaml"""


def add_arguments(p) -> None:
    p.add_argument("path", nargs="?", type=a.existing_path, default=None,
                   help="a ruleset file or a bundle folder (default: the shipped bundle)")
    p.add_argument("--quiet", action="store_true", help="print errors only, no warnings or summary")


def run(args) -> int:
    from ..bundle import Bundle, bundle_files
    from ..rules import RulesetError
    from ..rules.ruleset import check_text, load_source
    from .args import shown_path

    diagnostics = []
    files = 0
    if args.path is not None and is_ruleset_file(args.path):
        files = 1
        try:
            file, text = load_source(args.path)
        except RulesetError as e:        # unreadable, not UTF-8, too large: listed like any problem
            diagnostics = e.diagnostics
        else:
            _, diagnostics = check_text(file, text, book_only=True)
    else:
        files = sum(1 for f in bundle_files(args.path) if f.suffix in (".yaml", ".yml"))
        try:
            bundle = Bundle.load(args.path)
            diagnostics = bundle.warnings
        except RulesetError as e:
            diagnostics = e.diagnostics
    diagnostics = sorted(diagnostics, key=lambda d: (not d.is_error, shown_path(d.file, args.path), d.line, d.column))
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    for d in diagnostics:
        if d.is_error or not args.quiet:
            print(shown(d, args.path))
    if not args.quiet:
        print(f"checked {files} ruleset file{'s' if files != 1 else ''}: "
              f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}",
              file=sys.stderr)
    return 1 if errors else 0


def is_ruleset_file(path: str) -> bool:
    """A single ruleset file (checked on its own); anything else — a folder, a model, a file of
    another kind — goes through the bundle loader, which says what it is."""
    import os
    return not os.path.isdir(path) and path.endswith((".yaml", ".yml"))


def shown(diagnostic, given: str | None) -> str:
    """A diagnostic with its file as the user would write it (see :func:`args.shown_path`)."""
    import dataclasses

    from .args import shown_path
    return str(dataclasses.replace(diagnostic, file=shown_path(diagnostic.file, given)))
