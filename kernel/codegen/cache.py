"""Generated kernels on disk: ``$POSTLOAN_CACHE_DIR/kernels/pl_<hash>.py``, imported as modules.

Numba can only cache code whose source lives in a real file (functions built with ``exec``
cannot use ``cache=True``), and it keys its cache on that file's path and modification time.
So the generated source is written once under a name derived from its content hash and never
rewritten: a second process, or a later run, finds the same file and Numba loads the compiled
machine code from ``__pycache__`` beside it instead of compiling again.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["cache_dir", "content_hash", "write_source", "import_source", "compile_function", "native_address",
           "configure_numba_cache", "source_fingerprint"]

_IMPORT_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where generated sources and Numba's cache live (``$POSTLOAN_CACHE_DIR``, default
    ``~/.cache/postloan``)."""
    root = os.environ.get("POSTLOAN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "postloan")
    return Path(root)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_source(source: str) -> Path:
    """Write ``source`` to its content-addressed file (once) and return the path."""
    digest = content_hash(source)[:32]
    folder = cache_dir() / "kernels"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pl_{digest}.py"
    if path.exists() and path.read_text(encoding="utf-8") == source:
        return path                      # untouched: its mtime keys Numba's cache
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pl_", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(source)
    os.replace(tmp, path)
    return path


def import_source(path: Path, inject: dict | None = None):
    """Import a generated module (compiling its kernels, or loading them from Numba's cache).
    ``inject`` sets module globals before its code runs."""
    name = f"postloan_kernel_{path.stem}"
    configure_numba_cache()
    with _IMPORT_LOCK:
        if name in sys.modules and not inject:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        if inject:
            module.__dict__.update(inject)
        # registered first: Numba finds a function's module through sys.modules, and a module it
        # cannot find counts as dynamic (never cached)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module


def configure_numba_cache() -> None:
    """Put Numba's cache in ``$NUMBA_CACHE_DIR``, by default ``$POSTLOAN_CACHE_DIR/numba``, for
    every function the kernel compiles (helpers, the model interpreter, generated nodes).

    Numba decides where a function's cache lives when the function is defined — under its
    configured folder if it has one by then, else beside the source — and re-reads the
    environment only when it compiles. Setting the variable here, before any of our functions
    is defined, and syncing Numba's configuration if it is already imported, keeps that
    decision the same in every process: a function defined before the process's first compile
    and the same one defined after it no longer look in two places (a cached node used to
    compile again, depending on what the process had imported first).

    The folder is named by :func:`source_fingerprint`: Numba keys a cached function on its own
    file's path and modification time only, so a function that calls into, or freezes a
    constant of, another module that changed would load stale machine code (seen when a
    branch appended event kinds: a pattern matcher kept the old codes). A new version of the
    code starts a fresh folder; the old ones are removed once unused for 30 days."""
    folder = os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba" / source_fingerprint()))
    config = sys.modules.get("numba.core.config")
    if config is not None and config.CACHE_DIR != folder:
        config.CACHE_DIR = folder


_FINGERPRINT: str | None = None
_STALE_AFTER_S = 30 * 86400


def source_fingerprint() -> str:
    """A digest of the kernel's and the built-in plugins' Python sources (≈ 15 ms once per
    process): everything whose compiled code Numba caches, or that such code reads."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        digest = hashlib.sha256()
        roots = [Path(__file__).resolve().parents[1]]
        spec = importlib.util.find_spec("postloan_builtins")
        if spec is not None and spec.origin:
            roots.append(Path(spec.origin).parent)
        for root in roots:
            for path in sorted(root.rglob("*.py")):
                digest.update(str(path.relative_to(root.parent)).encode())
                digest.update(path.read_bytes())
        _FINGERPRINT = "src-" + digest.hexdigest()[:16]
        _prune_stale(cache_dir() / "numba", _FINGERPRINT)
    return _FINGERPRINT


def _prune_stale(folder: Path, keep: str) -> None:
    """Remove the caches of earlier code versions untouched for 30 days (best effort: another
    process may be removing them too)."""
    import shutil
    import time

    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    cutoff = time.time() - _STALE_AFTER_S
    for entry in entries:
        try:
            if entry.name.startswith("src-") and entry.name != keep and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def compile_function(dispatcher, signature: tuple, on_compile=None):
    """Compile ``dispatcher`` for ``signature``, or load its machine code from Numba's cache;
    returns the compile result. ``on_compile()`` is called first when it really compiles
    (Numba's ``numba:compile`` event fires only then, never for a cache hit), so progress is
    shown for the nodes that take time and not for the others."""
    from numba.core import event

    existing = dispatcher.overloads.get(tuple(signature))
    if existing is not None:
        return existing
    if on_compile is None:
        dispatcher.compile(signature)
    else:
        class CompileStarted(event.Listener):
            def on_start(self, ev):
                if ev.data.get("dispatcher") is dispatcher:      # not a function it calls
                    on_compile()

            def on_end(self, ev):
                pass
        listener = CompileStarted()
        event.register("numba:compile", listener)
        try:
            dispatcher.compile(signature)
        finally:
            event.unregister("numba:compile", listener)
    return dispatcher.overloads[tuple(signature)]


def native_address(result) -> int:
    """The address of a compile result's native function (Numba's calling convention), for
    :func:`kernel.codegen.helpers.call_native`. The caller keeps the dispatcher alive (its
    module stays in ``sys.modules``)."""
    address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
    if not address:
        raise RuntimeError(f"no native code for {result.fndesc.llvm_func_name}")
    return address
