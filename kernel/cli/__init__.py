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

VERBS = ("demo", "generate", "check", "test", "decide", "ingest", "state", "ledger", "report", "train", "serve",
         "plugins")


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


#: verbs whose job is to report a bundle's errors: they exit 1 when they find some
CHECKING_VERBS = ("check", "test")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds as for Ctrl-C: partial
    output files are removed on the way out."""


def _terminate(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 2
    previous = _on_sigterm(_terminate)
    try:
        return int(args._run(args) or 0)
    except (PostloanError, OSError) as e:
        if _reader_went_away(e):
            return SIGPIPE_EXIT
        if isinstance(e, OSError):        # the system's text for its errno, never the message: it may quote data
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            what = os.strerror(e.errno) if isinstance(e.errno, int) and e.errno > 0 else type(e).__name__
            _fail(f"postloan {args.verb}: error: {where}{what}")
            return 2
        diagnostics = getattr(e, "diagnostics", None)
        if diagnostics and args.verb not in CHECKING_VERBS:
            _fail(f"postloan {args.verb}: error: {_does_not_compile(diagnostics, getattr(args, 'bundle', None))}")
            return 2
        _fail(f"postloan {args.verb}: error: {e}")
        return e.exit_code
    except _Terminated:
        _fail(f"postloan {args.verb}: terminated")
        return 143
    except KeyboardInterrupt:
        _fail(f"postloan {args.verb}: interrupted")
        return 130
    finally:
        _on_sigterm(previous)


#: the exit status of a filter whose reader closed the pipe (`postloan generate --out - | head`)
SIGPIPE_EXIT = 128 + 13


def _reader_went_away(error: BaseException) -> bool:
    """Whether ``error`` is, or was caused by, writing to a pipe nobody reads any more: not
    an error of the command, which stops quietly as a Unix filter does."""
    while error is not None:
        if isinstance(error, BrokenPipeError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _on_sigterm(handler):
    """Install ``handler`` for SIGTERM where the default would kill the process outright (not
    where an embedding program set its own); returns the handler it replaced."""
    import signal
    import threading
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    current = signal.getsignal(signal.SIGTERM)
    if handler is _terminate and current is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, handler)
    return current


def _does_not_compile(diagnostics, bundle) -> str:
    """A bundle's errors met by a verb that runs it, in one line: the first, and how to see all."""
    import dataclasses

    from .args import shown_path
    errors = [d for d in diagnostics if d.is_error] or list(diagnostics)
    first = dataclasses.replace(errors[0], file=shown_path(errors[0].file, bundle))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f" {bundle}" if bundle else ""
    return f"the bundle does not compile: {first}{more}; 'postloan check{where}' lists every problem"


def _fail(line: str) -> None:
    if os.environ.get("POSTLOAN_DEBUG") == "1":
        import traceback
        traceback.print_exc()
    print(line, file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
