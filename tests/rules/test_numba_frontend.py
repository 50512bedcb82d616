"""kernel.codegen.frontend: Numba's call typing remembered per compile, and its error markup
without colorama's set-up, change nothing Numba computes."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core import errors, targetconfig
from numba.core.types import functions

from kernel.codegen import frontend


def test_installed_by_the_pipeline():
    import kernel.codegen.pipeline  # noqa: F401
    assert getattr(functions.BaseFunction.get_call_type, "remembers", False)
    frontend.install()                                   # idempotent
    assert getattr(functions.BaseFunction.get_call_type, "remembers", False)


def test_markup_is_the_same_string():
    scheme = getattr(errors, "HighlightColorScheme", None)
    if scheme is None:
        pytest.skip("colorama not installed: Numba does not highlight")
    from colorama import Fore, Style
    plain = scheme()
    assert plain.errmsg("x") == f"{Style.BRIGHT}x{Style.RESET_ALL}"
    assert plain._markup("y", Fore.RED) == f"{Fore.RED}{Style.BRIGHT}y{Style.RESET_ALL}"
    assert plain._markup("z", None, None) == f"z{Style.RESET_ALL}"


def test_answers_per_compile_and_dropped_after():
    frontend.install()

    @njit
    def f(a, b):
        return (a + b) * 2 - (a // 3), a < b

    assert f(7, 5) == (22, False)
    assert f(1.5, 2.0) == (7.0, True)                  # a second compile: its own answers
    for k in range(8):                                 # ended compiles' answers do not pile up
        assert njit(lambda a, k=k: a * 2 + k)(k) == 3 * k
    assert not targetconfig._FlagsStack()._stack        # no compile running now
    assert len(frontend._memos) <= 2                   # the last compile's (and a nested one's)


def test_error_models_keep_their_own_implementations():
    """The same operator compiled under two error models in one process: each compile gets
    the implementation of its own flags, with or without the other compiled first."""
    frontend.install()

    @njit(error_model="numpy")
    def numpy_div(a, b):
        return a / b

    @njit(error_model="python")
    def python_div(a, b):
        return a / b

    assert numpy_div(1.0, 0.0) == np.inf
    with pytest.raises(ZeroDivisionError):
        python_div(1.0, 0.0)

    @njit(error_model="numpy")
    def numpy_after(a, b):
        return a / b

    assert numpy_after(1.0, 0.0) == np.inf


def test_a_type_error_still_names_the_problem():
    frontend.install()

    @njit
    def bad(a):
        return a + "text"

    with pytest.raises(errors.TypingError, match="add"):
        bad(1)


def test_refresh_runs_again_once_something_is_registered():
    """A registry refresh is skipped while nothing is new, and runs when an overload defined
    after the last refresh must be found."""
    from numba.core import base
    from numba.core.registry import cpu_target
    from numba.extending import overload
    frontend.install()
    context = cpu_target.target_context
    context.refresh()
    before = frontend._registrations(context)
    context.refresh()                                    # nothing new: skipped
    assert frontend._registrations(context) == before

    def doubled(x):
        raise NotImplementedError

    @overload(doubled)
    def _doubled(x):
        return lambda x: x * 2

    @njit
    def use(x):
        return doubled(x)

    assert use(21) == 42                                 # found: the refresh saw the new overload
    assert getattr(base.BaseContext.refresh, "when_new", False)


def test_abi_sizes_are_llvm_s():
    from llvmlite import ir as llvmir
    from numba.core.registry import cpu_target
    frontend.install()
    context = cpu_target.target_context
    for ty in (llvmir.IntType(8), llvmir.IntType(64), llvmir.DoubleType(),
               llvmir.LiteralStructType([llvmir.IntType(8), llvmir.DoubleType()]),
               llvmir.ArrayType(llvmir.IntType(32), 5)):
        assert context.get_abi_sizeof(ty) == ty.get_abi_size(context.target_data)
        assert context.get_abi_sizeof(ty) == ty.get_abi_size(context.target_data)   # remembered


def test_switched_off_or_on_an_untested_numba_it_changes_nothing(monkeypatch):
    """``$POSTLOAN_NUMBA_FRONTEND=0`` or a Numba release it was not read from: ``install``
    leaves Numba as shipped (it patches internals; another release may have moved them)."""
    import numba
    assert frontend.applies()
    monkeypatch.setenv("POSTLOAN_NUMBA_FRONTEND", "0")
    assert not frontend.applies()
    monkeypatch.delenv("POSTLOAN_NUMBA_FRONTEND")
    monkeypatch.setattr(numba, "__version__", "0.99.0")
    assert not frontend.applies()
    refresh = frontend.base.BaseContext.refresh
    monkeypatch.setattr(frontend.base.BaseContext, "refresh", lambda self: None)
    frontend.install()                                 # nothing put in place on that release
    assert not getattr(frontend.base.BaseContext.refresh, "when_new", False)
    monkeypatch.setattr(frontend.base.BaseContext, "refresh", refresh)
