"""Large decision tables go through the bitset index; they must pick exactly the rows a plain
scan over the cells picks (an independent NumPy oracle), under every hit policy."""
import numpy as np
import pyarrow as pa
import pytest

import kernel
from kernel.codegen.emit import INDEX_MIN_ROWS

from .conftest import AS_OF

PRODUCTS = ["NEW", "USED", "LEASE"]


def _table(rows: int, hit: str, seed: int) -> tuple[str, list]:
    """A table over dpd (int), amount (float), product (enum), flag (bool); returns its YAML and,
    per row, (dpd lo, dpd hi, amount lo, amount hi, products, flag or None, score, salience)."""
    rng = np.random.default_rng(seed)
    spec, lines = [], []
    for r in range(rows):
        if hit == "unique":   # a partition: one dpd value and product per row, nothing overlaps
            d_lo = d_hi = r // 3
            a_lo, a_hi, products, flag = -np.inf, np.inf, [PRODUCTS[r % 3]], None
        else:
            d_lo = int(rng.integers(0, 200))
            d_hi = d_lo + int(rng.integers(0, 40))
            a_lo = float(rng.integers(0, 100)) * 1000
            a_hi = a_lo + float(rng.integers(1, 60)) * 1000
            products = sorted(rng.choice(PRODUCTS, size=int(rng.integers(1, 4)), replace=False), key=PRODUCTS.index)
            flag = [None, True, False][int(rng.integers(0, 3))]
        score, salience = int(rng.integers(0, 1000)), int(rng.integers(0, 50))
        amount = "-" if a_lo == -np.inf else f"[{a_lo:.0f}..{a_hi:.0f})"
        cells = [f"'[{d_lo}..{d_hi}]'", f"'{amount}'", f"'{', '.join(products)}'",
                 "'-'" if flag is None else str(flag).lower(), str(score)]
        if hit == "priority":
            cells.append(str(salience))
        lines.append(f"    - [{', '.join(cells)}]")
        spec.append((d_lo, d_hi, a_lo, a_hi, products, flag, score, salience))
    collect = hit == "collect"
    text = "\n".join([
        f"ruleset: big_{hit}", 'version: "1"', f"hit: {hit}",
        "inputs: {dpd: int, amount: float, variant: {enum: [NEW, USED, LEASE]}, flag: bool}",
        "outputs:",
        "  score: {type: int, default: -1" + (", collect: sum}" if collect else "}"),
        *(["  fired: {type: int, default: 0, collect: count}"] if collect else []),
        "table:", "  when: [dpd, amount, variant, flag]",
        "  then: [score" + (", salience]" if hit == "priority" else "]"), "  rows:", *lines]) + "\n"
    return text, spec


def _book(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    dpd = rng.integers(-5, 260, n)
    amount = rng.integers(0, 170, n) * 1000.0 - 500 * rng.integers(0, 2, n)
    product = rng.choice(PRODUCTS, n).astype(object)
    flag = rng.integers(0, 2, n).astype(bool)
    nulls = rng.random((4, n)) < 0.05
    return pa.table({
        "dpd": pa.array(dpd, mask=nulls[0]), "amount": pa.array(amount, mask=nulls[1]),
        "variant": pa.array(list(product), pa.string(), mask=nulls[2]).dictionary_encode(),
        "flag": pa.array(flag, mask=nulls[3])})


def _oracle(spec, book: pa.Table, hit: str):
    """Per data row, the matching table rows (evaluation order) by brute force."""
    d_lo, d_hi, a_lo, a_hi = (np.array([s[k] for s in spec], dtype=float) for k in range(4))
    prods = np.array([[p in s[4] for p in PRODUCTS] for s in spec])
    flags = [s[5] for s in spec]
    out = []
    for row in book.to_pylist():
        ok = np.ones(len(spec), dtype=bool)
        d, a, p, f = row["dpd"], row["amount"], row["variant"], row["flag"]
        ok &= (d is not None) & (d_lo <= (d if d is not None else 0)) & ((d if d is not None else 0) <= d_hi)
        amount_any = np.isinf(a_lo)
        ok &= amount_any | ((a is not None) & (a_lo <= (a if a is not None else 0)) & ((a if a is not None else 0) < a_hi))
        ok &= prods[:, PRODUCTS.index(p)] if p is not None else np.zeros(len(spec), dtype=bool)
        ok &= np.array([fl is None or (f is not None and f == fl) for fl in flags])
        out.append(np.nonzero(ok)[0])
    return out


@pytest.mark.parametrize("hit, rows", [("first", 5000), ("priority", 700), ("collect", 300), ("unique", 600)])
def test_indexed_table_equals_a_scan(hit, rows):
    assert rows >= INDEX_MIN_ROWS
    text, spec = _table(rows, hit, seed=len(hit))
    rs = kernel.compile_ruleset(text)
    book = _book(1500, seed=rows)
    out = rs.evaluate(book, AS_OF).to_pylist()
    for r, (matches, decided) in enumerate(zip(_oracle(spec, book, hit), out)):
        name = f"big_{hit}"
        if hit == "first":
            want = matches[0] if len(matches) else None
        elif hit == "priority":
            want = min(matches, key=lambda m: (-spec[m][7], m)) if len(matches) else None
        elif hit == "unique":
            want = matches[0] if len(matches) == 1 else None
        else:
            assert decided[f"{name}.rule"] == [f"row{m + 1}" for m in matches], r
            assert decided[f"{name}.fired"] == len(matches), r
            assert decided[f"{name}.score"] == (sum(spec[m][6] for m in matches) if len(matches) else -1), r
            continue
        assert decided[f"{name}.rule"] == (None if want is None else f"row{want + 1}"), r
        assert decided[f"{name}.score"] == (-1 if want is None else spec[want][6]), r
