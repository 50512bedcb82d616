"""Files postloan reads from outside and files it writes, handled so that no file can exhaust
the process or be clobbered.

Reading (bundles, configuration, data files): :func:`read_capped` checks the size with
``stat`` *before* reading and reads at most the cap, so a 2 GB (sparse) model costs nothing;
FIFOs, devices and directories are refused (a FIFO would block, ``/dev/zero`` never ends).
The caps (:class:`FileLimits`) default to :data:`DEFAULT_MAX_RULESET_BYTES` and
:data:`DEFAULT_MAX_MODEL_BYTES` and are set with ``$POSTLOAN_MAX_RULESET_BYTES`` /
``$POSTLOAN_MAX_MODEL_BYTES`` (bytes, or with a ``K``/``M``/``G`` suffix: binary units).
Errors name the file and the cap and never quote the content.

Writing (every CLI output and connector): :func:`open_output` and :func:`output_path`
write beside the final file and rename over it only when the writer succeeds, resolving a
symlink first so that the link stays a link and its target gets the content. ``-`` is
standard output; a special file (``/dev/stdout``, a FIFO, a device, a socket) is written in
place and never replaced.
"""
from __future__ import annotations

import io
import os
import re
import stat
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .errors import PostloanError

__all__ = ["FileLimits", "FileError", "read_capped", "open_output", "output_path", "is_special_output",
           "DEFAULT_MAX_RULESET_BYTES", "DEFAULT_MAX_MODEL_BYTES", "MAX_CONFIG_BYTES", "STDOUT"]

#: a ruleset file: the largest shipped one is 31 KB; a 10,000-row decision table ≈ 0.5 MB
DEFAULT_MAX_RULESET_BYTES = 16 << 20
#: an ONNX model: the shipped ones are ≈ 115 KB; 500 trees of depth 12 ≈ 80 MB
DEFAULT_MAX_MODEL_BYTES = 256 << 20
#: TOML configuration and plugin data files (channels, depreciation): hand-written tables
MAX_CONFIG_BYTES = 4 << 20
ENV_MAX_RULESET_BYTES = "POSTLOAN_MAX_RULESET_BYTES"
ENV_MAX_MODEL_BYTES = "POSTLOAN_MAX_MODEL_BYTES"
#: the name that means standard output wherever an output file is asked for
STDOUT = "-"


class FileError(PostloanError):
    """A file that is not read or written as asked: over its size cap, or not a regular file.
    ``path`` names it, ``problem`` says what is wrong without quoting its content."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileLimits:
    """The largest ruleset and model files a bundle load reads, in bytes."""

    ruleset_bytes: int = DEFAULT_MAX_RULESET_BYTES
    model_bytes: int = DEFAULT_MAX_MODEL_BYTES

    @classmethod
    def from_env(cls) -> "FileLimits":
        """The defaults, overridden by ``$POSTLOAN_MAX_RULESET_BYTES`` / ``$POSTLOAN_MAX_MODEL_BYTES``
        (read at each load, so that a server's reload follows its environment)."""
        return cls(_env_bytes(ENV_MAX_RULESET_BYTES, DEFAULT_MAX_RULESET_BYTES),
                   _env_bytes(ENV_MAX_MODEL_BYTES, DEFAULT_MAX_MODEL_BYTES))


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?)?\s*$", re.I)


def _env_bytes(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    m = _SIZE.match(text)
    if not m or int(m.group(1)) == 0:
        raise PostloanError(f"${name} = {text!r}: expected a size in bytes above 0, such as 16777216 or 16M")
    unit = (m.group(2) or "").upper()[:1]
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[unit]


def size_text(n: int) -> str:
    """``n`` bytes as people read it: ``512 B``, ``16 MiB``, ``2.0 GiB``."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_capped(path, limit: int, what: str, env: str | None = None) -> bytes:
    """The bytes of the regular file ``path``, refused before reading when it is larger than
    ``limit`` (``what`` names the kind of file, ``env`` the variable that sets the cap). Raises
    :class:`FileError` for a file too large or not regular, :class:`OSError` when it cannot
    be opened."""
    info = os.stat(path)                     # follows symlinks: the file that would be read
    if not stat.S_ISREG(info.st_mode):
        raise FileError(path, f"is {_kind(info.st_mode)}, expected a {what} file")
    how = f" (${env} sets it)" if env else ""
    if info.st_size > limit:
        raise FileError(path, f"{size_text(info.st_size)} is over the {size_text(limit)} limit for {what} files{how}")
    # O_NONBLOCK: a regular file swapped for a FIFO after the stat must not block the open
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb", closefd=True) as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileError(path, f"is {_kind(os.fstat(fd).st_mode)}, expected a {what} file")
        data = f.read(limit + 1)             # a file growing since the stat stops at the cap too
    if len(data) > limit:
        raise FileError(path, f"over the {size_text(limit)} limit for {what} files{how}")
    return data


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _through_proc(path: str) -> bool:
    """Whether ``path`` is, or links through, a procfs entry (``/dev/stdout`` links to
    ``/proc/self/fd/1``): a process's open file, which is written through, never renamed over."""
    path = os.path.abspath(path)
    for _ in range(40):                       # the kernel's own limit on a chain of links
        if path.startswith("/proc/"):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return False


def is_special_output(target: str) -> bool:
    """Whether ``target`` is standard output, links through ``/proc`` (``/dev/stdout``) or is
    an existing file that is neither regular nor a directory (FIFO, device, socket): such
    targets are written in place, never replaced."""
    if target == STDOUT or _through_proc(target):
        return True
    try:
        mode = os.stat(target).st_mode
    except OSError:                          # missing, a link loop, unreadable: not special; writing says why
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _final_path(target: str) -> str:
    """The regular file that receives ``target``'s content: a symlink's target (the link
    stays), otherwise ``target`` itself."""
    if os.path.isdir(target):
        raise FileError(target, "is a directory, expected a file")
    final = os.path.realpath(target) if os.path.islink(target) else target
    if os.path.islink(final):                # realpath stops inside a loop of links
        raise FileError(target, "is a symlink that leads back to itself")
    parent = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(parent):
        raise FileError(target, f"directory {parent} does not exist")
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def output_path(target: str) -> Iterator[str]:
    """A temporary path beside ``target``'s final file, renamed over it only if the block
    succeeds (a symlink's target gets the content; the link stays). For writers that need a
    path of their own (such as a database): a special file or ``-`` is refused."""
    if target == STDOUT:
        raise FileError(target, "this format cannot be written to standard output: give a file name")
    if is_special_output(target):
        raise FileError(target, "is not a regular file; this format is written to a regular file renamed into place")
    final = _final_path(target)
    tmp = None
    try:
        # Ctrl-C or SIGTERM between creating the file and knowing its name would leave it
        # behind: they wait until the name is known, then interrupt as usual
        with _signals_held():
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(final)}.", suffix=".part",
                                       dir=os.path.dirname(os.path.abspath(final)))
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())    # mkstemp makes 0600; the file gets what open() would give
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def _signals_held():
    """SIGINT and SIGTERM held back (for this thread) until the block ends."""
    import signal
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def open_output(target: str) -> Iterator[BinaryIO]:
    """A binary file to write ``target``'s content to, in place only when the block
    succeeds: ``-`` is standard output; a special file is written as it is; a regular file
    (or a symlink's target) is written beside and renamed over (:func:`output_path`)."""
    if target == STDOUT:
        sys.stdout.flush()
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, io.UnsupportedOperation):      # stdout replaced in-process (tests)
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
            return
        with os.fdopen(os.dup(fd), "wb") as out:               # a copy: closing it keeps stdout open
            yield out
        return
    if is_special_output(target):
        with open(target, "wb") as out:
            yield out
        return
    with output_path(target) as tmp, open(tmp, "wb") as out:
        yield out
