"""Two repeated costs of Numba's front end, cut for every compile in the process (generated
code, helpers, plugins): call typing remembered per compile, and error messages without a
terminal set-up per message. Neither changes what Numba computes.

**One resolution per call.**

Numba types a call to a built-in or overloaded function (``operator.add``, ``getitem``,
``np.uint64``, an ``@overload``) by trying every template registered for it in turn, and it
asks the same question many times in one compile: type inference repeats each call's
resolution until the types settle, and lowering asks once more for each operator
(``lower_binop``, ``lower_getitem``). Every answer is the same, but each costs the whole
search again — templates that do not match build an error message (with colorama's
terminal set-up), and each ``@overload`` template hashes the compile's ``Flags`` to look up
its implementation (``TargetConfig.values()`` over some twenty options). On the shipped
bundle's cold compile 10,344 of 12,329 such resolutions were repeats within their compile:
≈ 4 s of the ≈ 27 s of CPU (one process, 2026-12-07).

:func:`install` makes ``BaseFunction.get_call_type`` remember each successful answer for the
compile that asked (Numba enters a fresh copy of the flags for every compile,
``ConfigStack().enter(flags.copy())``: that copy identifies the compile), keyed by the function
type, the typing context and the argument types. A repeat returns the signature it got the
first time and puts back the implementation key the first resolution chose
(``_impl_keys[args]``, which lowering reads: a nested compile with other flags may have
replaced it since). Failures are not remembered (they raise, as before), nor is anything
outside a compile (no flags on the stack), nor across compiles: a compile with other flags
(``error_model``, ``fastmath``…) resolves an ``@overload`` to an implementation of its own,
exactly as without the memo. A compile's answers are dropped once it has left the stack.

**Error messages without colorama's set-up.** Numba's front end raises and catches errors as
part of ordinary typing — a global that is not a value it can type, a constant that cannot be
a literal (``types.literal`` in lowering, for every constant argument), a template that does
not match — and builds each message with its highlighting, which (colorama being installed)
wraps and unwraps ``sys.stdout`` and ``sys.stderr`` for every message: ≈ 28,000 times in the
shipped bundle's cold compile. The wrapping writes nothing (only Windows consoles need it);
:func:`install` keeps the markup, same characters, without it.
"""
from __future__ import annotations

from numba.core import errors, targetconfig
from numba.core.types import functions

__all__ = ["install"]

#: ``id(flags)`` → (the flags of a compile on the stack, its answers)
_memos: dict[int, tuple[object, dict]] = {}


def _answers(flags) -> dict:
    """The answers of the compile whose flags are ``flags``; those of compiles that have
    ended are dropped when a new compile starts asking."""
    entry = _memos.get(id(flags))
    if entry is not None and entry[0] is flags:
        return entry[1]
    on_stack = {id(f) for f in targetconfig._FlagsStack()._stack}
    for stale in [k for k in _memos if k not in on_stack]:
        del _memos[stale]
    answers = {}
    _memos[id(flags)] = (flags, answers)
    return answers


def install() -> None:
    """Remember call resolutions per compile; error markup without terminal set-up
    (idempotent)."""
    _plain_markup()
    if getattr(functions.BaseFunction.get_call_type, "remembers", False):
        return
    resolve = functions.BaseFunction.get_call_type

    def get_call_type(self, context, args, kws):
        flags = targetconfig.ConfigStack.top_or_none()
        if flags is None:
            return resolve(self, context, args, kws)
        key = (self, context, tuple(args), tuple(kws.items()) if kws else ())
        answers = _answers(flags)
        try:
            known = answers.get(key)
        except TypeError:                   # an argument type that cannot be hashed: ask
            return resolve(self, context, args, kws)
        if known is not None:
            signature, impl_key = known
            self._impl_keys[signature.args] = impl_key
            return signature
        signature = resolve(self, context, args, kws)
        if signature is not None:
            answers[key] = (signature, self._impl_keys[signature.args])
        return signature

    get_call_type.remembers = True
    get_call_type.__doc__ = resolve.__doc__
    functions.BaseFunction.get_call_type = get_call_type


def _plain_markup() -> None:
    """Numba's highlighting scheme (when colorama is installed) builds the same string
    without initializing colorama around each message."""
    scheme = getattr(errors, "HighlightColorScheme", None)
    if scheme is None or getattr(scheme._markup, "plain", False):
        return
    from colorama import Style
    reset = Style.RESET_ALL

    def markup(self, msg, color=None, style=Style.BRIGHT):
        return f"{color or ''}{style or ''}{msg}{reset}"

    markup.plain = True
    scheme._markup = markup
