"""Numba's cache is per version of the code: a change anywhere in the kernel's sources moves it
to a fresh folder, so no function loads machine code compiled against another module's old
constants (a pattern matcher once kept the event codes of an older branch)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PRINT = "from kernel.codegen.cache import source_fingerprint; import os; " \
         "import kernel.ledger.fold; print(source_fingerprint(), os.environ['NUMBA_CACHE_DIR'])"


def _run(root: Path, cache: Path) -> tuple[str, str]:
    env = {**os.environ, "POSTLOAN_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins")])}
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _PRINT], env=env, capture_output=True, text=True, check=True, cwd=root)
    fingerprint, folder = out.stdout.split()
    return fingerprint, folder


def test_the_cache_folder_is_named_by_the_sources_and_moves_when_they_change(tmp_path):
    copy = tmp_path / "src"
    for part in ("kernel", "plugins/postloan_builtins"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    before, folder = _run(copy, cache)
    assert folder == str(cache / "numba" / before)
    assert _run(copy, cache)[0] == before                       # stable across processes
    events = copy / "kernel" / "ledger" / "events.py"
    events.write_text(events.read_text() + "\n# a change elsewhere than in the compiled module\n")
    after, folder = _run(copy, cache)
    assert after != before and folder == str(cache / "numba" / after)


def test_a_folder_the_user_names_is_kept(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "mine"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    out = subprocess.run([sys.executable, "-c", _PRINT], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split()[1] == str(tmp_path / "mine")
