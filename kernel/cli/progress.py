"""Progress bars on stderr for long steps (hidden when stderr is not a terminal)."""
from __future__ import annotations


def bar(total: int, desc: str, unit: str = "it", disable: bool = False, scale: bool = True):
    """``scale``: counts shown as 1.2k, 3.4M (accounts); False for small counts (nodes)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, leave=False,
                disable=True if disable else None, dynamic_ncols=True)


def say(message: str, quiet: bool = False) -> None:
    """A status line on stderr (stdout stays the report)."""
    if not quiet:
        import sys
        print(message, file=sys.stderr, flush=True)
