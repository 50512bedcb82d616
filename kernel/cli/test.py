"""postloan test: run every ruleset's `tests:` examples (the reference engine by default)."""
from __future__ import annotations

import sys

from . import args as a

HELP = "run the rulesets' tests: examples; report expected vs got"
DESCRIPTION = """Run every `tests:` example of every ruleset in a bundle (default: the shipped bundle), or of one
ruleset file. Each ruleset is tested on its own: an example's `given` values stand for all of
its inputs, other rulesets' outputs included. Each failure is reported as file:line:col with
the expected and the actual value of every output that differs.

The examples run on the reference engine, which defines the language's meaning and needs no
compilation, so a rule author gets an answer in about a second after every edit. The compiled
kernel decides exactly like it (the project's differential tests check that on every change);
`--engine compiled` runs the examples on the compiled kernel as well (it compiles the changed
rulesets first).

Then the bundle's scenarios (files *.scenarios.yaml anywhere in its folders): each gives one
account's book and state columns and expects outputs of several rulesets and models, decided
by the whole bundle on the same engine (the reference engine compiles nothing here either).

exit status: 0 all examples and scenarios pass, 1 one failed or a ruleset or scenario file does not load.

examples:
  postloan test
  postloan test rulesets/dpd_bucket.yaml --verbose"""


def add_arguments(p) -> None:
    p.add_argument("path", nargs="?", type=a.existing_path, default=None,
                   help="a ruleset file or a bundle folder (default: the shipped bundle)")
    p.add_argument("--verbose", "-v", action="store_true", help="also list the examples that pass")
    p.add_argument("--engine", choices=("compiled", "reference"), default="reference",
                   help="the engine to run the examples on (default: reference, no compilation)")


def run(args) -> int:
    import dataclasses

    from ..bundle import Bundle
    from ..rules import RulesetError, compile_ruleset
    from ..rules.testing import run_examples
    from ..scenarios import scenario_files
    from .args import shown_path
    from .check import is_ruleset_file, shown

    try:
        if args.path is not None and is_ruleset_file(args.path):
            rulesets = [compile_ruleset(args.path)]
        else:
            rulesets = Bundle.load(args.path).rulesets
    except RulesetError as e:
        for d in e.diagnostics:
            print(shown(d, args.path))
        errors = len(e.errors)
        print(f"postloan test: the rulesets do not compile ({errors} error{'s' if errors != 1 else ''}); "
              "run 'postloan check'", file=sys.stderr)
        return 1
    results = run_examples(rulesets, engine=args.engine)
    scenarios = [] if args.path is not None and is_ruleset_file(args.path) else scenario_files(args.path)
    scenario_results = []
    if scenarios:                      # bundle-level scenarios: the whole bundle decides
        from ..runtime import Kernel
        from ..scenarios import load_scenarios, run_scenarios
        kernel = Kernel.load(args.path, compile=args.engine == "compiled")
        loaded, problems = [], []
        for f in scenarios:
            try:
                loaded += load_scenarios(f, kernel.inputs, kernel.output_types, [rs.name for rs in rulesets])
            except RulesetError as e:
                problems += e.diagnostics
        if problems:
            for d in problems:
                print(shown(d, args.path))
            print(f"postloan test: the scenarios do not load ({len(problems)} error{'s' if len(problems) != 1 else ''})",
                  file=sys.stderr)
            return 1
        scenario_results = run_scenarios(kernel, loaded, engine=args.engine)
    failed = [r for r in results if not r.passed]
    for r in results:
        if not r.passed or args.verbose:
            print(dataclasses.replace(r, file=shown_path(r.file, args.path)))
    untested = [rs.name for rs in rulesets if not rs.tests]
    print(f"{len(results)} examples in {len(rulesets) - len(untested)} rulesets: {len(results) - len(failed)} passed, "
          f"{len(failed)} failed" + (f"; no examples in: {', '.join(untested)}" if untested else ""),
          file=sys.stderr)
    if scenarios:
        for r in scenario_results:
            if not r.passed or args.verbose:
                print(dataclasses.replace(r, file=shown_path(r.file, args.path)))
        bad = sum(not r.passed for r in scenario_results)
        print(f"{len(scenario_results)} scenarios in {len(scenarios)} file{'s' if len(scenarios) != 1 else ''}: "
              f"{len(scenario_results) - bad} passed, {bad} failed", file=sys.stderr)
        failed += [r for r in scenario_results if not r.passed]
    return 1 if failed else 0
