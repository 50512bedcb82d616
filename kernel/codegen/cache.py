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

__all__ = ["cache_dir", "content_hash", "write_source", "import_source"]

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
    ``inject`` sets module globals before its code runs (the models' parameter types)."""
    name = f"postloan_kernel_{path.stem}"
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
