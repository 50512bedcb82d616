"""Repeated costs of Numba's front end, cut for every compile in the process (generated
code, helpers, plugins): call typing remembered per compile, error messages without a
terminal set-up per message, a registry refresh only when something was registered since the
last one, and each LLVM type's ABI size asked of LLVM once. None changes what Numba computes.

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

**A refresh only when there is something new.** When lowering finds no implementation for a
key on the first try, Numba refreshes its target and typing contexts (re-imports the modules
of its extra registries, reinstalls each registry's new entries) and tries once more. Lowering
asks for keys that never have one all the time — ``__array__`` for every array structure it
builds (``make_array``: only array-like subclasses define it), ``static_getitem`` and
``static_setitem`` on pointers before falling back to ``getitem`` — so the shipped bundle's
cold compile refreshed 2,060 times (≈ 1.4 s of CPU). A refresh can only find what was
registered since the last one: :func:`install` skips it when no registry known to either
context has grown (the number of entries of each, and of registries) since the last refresh.

**ABI sizes.** ``BaseContext.get_abi_sizeof`` asks LLVM for the size of a type by parsing a
module made for the question; lowering asks it for every variable it allocates (1,163 times,
≈ 0.4 s). The answer depends only on the type and the context's target data: remembered per
context and type.
"""
from __future__ import annotations

import os

import numba
from numba.core import base, errors, targetconfig
from numba.core.types import functions

__all__ = ["install", "applies"]

#: the Numba releases whose internals these four were read from and tested on (pyproject's
#: range is wider: on another release, or with ``$POSTLOAN_NUMBA_FRONTEND=0``, Numba runs as
#: shipped — slower to compile, the same machine code)
TESTED = ((0, 68),)

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
    """Put the four in place (idempotent): call resolutions remembered per compile, error
    markup without terminal set-up, refreshes only when a registry has grown, ABI sizes
    remembered. Nothing on a Numba release not in :data:`TESTED`, with internals not as
    expected, or with ``$POSTLOAN_NUMBA_FRONTEND=0``."""
    if not applies():
        return
    _plain_markup()
    _refresh_when_new()
    _remember_abi_sizes()
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


def applies() -> bool:
    """Whether :func:`install` puts its changes in place on this Numba: a tested release whose
    internals are where they were read, and not switched off by ``$POSTLOAN_NUMBA_FRONTEND=0``."""
    if os.environ.get("POSTLOAN_NUMBA_FRONTEND", "1").strip() == "0":
        return False
    if tuple(int(x) for x in numba.__version__.split(".")[:2]) not in TESTED:
        return False
    return (hasattr(targetconfig.ConfigStack, "top_or_none") and hasattr(targetconfig, "_FlagsStack")
            and hasattr(functions.BaseFunction, "get_call_type") and hasattr(base.BaseContext, "refresh")
            and hasattr(base.BaseContext, "get_abi_sizeof"))


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


def _registrations(context) -> tuple:
    """How many entries each registry known to ``context`` (and its typing context) holds."""
    counts = []
    for registries in (context._registries, context.typing_context._registries):
        counts.append(len(registries))
        for registry in registries:
            counts.extend(len(v) for v in vars(registry).values() if isinstance(v, list))
    return tuple(counts)


def _refresh_when_new() -> None:
    """``BaseContext.refresh`` skipped while no registry has grown since the last one."""
    refresh = base.BaseContext.refresh
    if getattr(refresh, "when_new", False):
        return

    def refresh_when_new(self):
        try:
            now = _registrations(self)
        except Exception:                     # internals not as expected: always refresh
            return refresh(self)
        if now == self.__dict__.get("_postloan_registrations"):
            return
        refresh(self)
        self._postloan_registrations = _registrations(self)

    refresh_when_new.when_new = True
    refresh_when_new.__doc__ = refresh.__doc__
    base.BaseContext.refresh = refresh_when_new


def _remember_abi_sizes() -> None:
    """``BaseContext.get_abi_sizeof`` asks LLVM once per context and type."""
    sizeof = base.BaseContext.get_abi_sizeof
    if getattr(sizeof, "remembers", False):
        return

    def get_abi_sizeof(self, ty):
        sizes = self.__dict__.get("_postloan_abi_sizes")
        if sizes is None:
            sizes = self._postloan_abi_sizes = {}
        key = str(ty)
        size = sizes.get(key)
        if size is None:
            size = sizes[key] = sizeof(self, ty)
        return size

    get_abi_sizeof.remembers = True
    get_abi_sizeof.__doc__ = sizeof.__doc__
    base.BaseContext.get_abi_sizeof = get_abi_sizeof
