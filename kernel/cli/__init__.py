"""``postloan``: the command line.

Each verb lives in its own module of this package with ``HELP`` (one line), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``; verb modules import heavy libraries only
inside ``run`` so that ``postloan --help`` stays instant.

Errors meant for the user (:class:`kernel.errors.PostloanError`, bad arguments, unreadable
files) print one line on stderr and exit with code 2; nothing prints a traceback unless
``POSTLOAN_DEBUG=1`` is set.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import PostloanError

VERBS = ("demo", "generate", "check", "test", "decide", "train", "serve", "plugins")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage dumps."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="postloan",
        description="postloan — a decision kernel for auto-finance post-loan management (贷后管理).",
        epilog="Run 'postloan <verb> --help' for a verb's options. Docs: README.md and docs/.",
    )
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"postloan {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>", parser_class=_Parser)
    for verb in VERBS:
        module = importlib.import_module(f"{__name__}.{verb}")
        p = sub.add_parser(verb, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except PostloanError as e:
        _fail(f"postloan {args.verb}: error: {e}")
        return e.exit_code
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _fail(f"postloan {args.verb}: error: {where}{e.strerror or e}")
        return 2
    except KeyboardInterrupt:
        _fail(f"postloan {args.verb}: interrupted")
        return 130


def _fail(line: str) -> None:
    if os.environ.get("POSTLOAN_DEBUG") == "1":
        import traceback
        traceback.print_exc()
    print(line, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
