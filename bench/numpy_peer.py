"""The NumPy peer of the compiled kernel: the same IR evaluated column-wise with NumPy.

This is how one would run the shipped rules without a compiler: every expression over whole
columns (value and validity arrays, SQL nulls), every rule in turn, the hit policy as masks;
models through onnxruntime. The benchmarks check that it decides exactly like the kernel
before timing it, so the ratio compares equal work.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from kernel.rules import ir

_EPOCH = np.datetime64("1970-01-01", "D")


def columns_of(table: pa.Table, inputs: dict) -> dict:
    """(values, valid) NumPy arrays per input, enums as member codes, dates as days."""
    out = {}
    for name, t in inputs.items():
        col = table.column(name).combine_chunks()
        valid = np.asarray(col.is_valid())
        if t.kind == "enum":
            if pa.types.is_dictionary(col.type):
                remap = np.array([t.members.index(m) for m in col.dictionary.to_pylist()] + [0])
                idx = col.indices.fill_null(len(col.dictionary)).to_numpy()
                values = remap[idx]
            else:
                lookup = {m: i for i, m in enumerate(t.members)}
                values = np.array([lookup.get(v, 0) for v in col.to_pylist()])
        elif t.kind == "string":
            values = np.array(col.cast(pa.string()).to_pylist(), dtype=object)
        elif t.kind == "date":
            values = col.cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64)
        elif t.kind == "bool":
            values = col.fill_null(False).to_numpy(zero_copy_only=False)
        elif t.kind == "float":
            values = col.cast(pa.float64()).fill_null(np.nan).to_numpy()
            valid = valid & ~np.isnan(values)
        else:
            values = col.cast(pa.int64()).fill_null(0).to_numpy()
        out[name] = (values, valid)
    return out


class Evaluator:
    def __init__(self, env: dict, as_of: int, n: int):
        self.env, self.as_of, self.n = env, as_of, n

    def ev(self, e):
        n = self.n
        t = type(e)
        if t is ir.Const:
            if e.value is None:
                return np.zeros(n), np.zeros(n, dtype=bool)
            return np.full(n, e.value), np.ones(n, dtype=bool)
        if t is ir.Name:
            return self.env[e.name]
        if t is ir.AsOf:
            return np.full(n, self.as_of), np.ones(n, dtype=bool)
        if t is ir.ToFloat:
            v, m = self.ev(e.arg)
            return v.astype(np.float64), m
        if t is ir.Compare:
            (a, am), (b, bm) = self.ev(e.left), self.ev(e.right)
            op = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                  "==": np.equal, "!=": np.not_equal}[e.op]
            return op(a, b), am & bm
        if t is ir.Logic:
            pairs = [self.ev(a) for a in e.args]
            if e.op == "and":
                decided = np.logical_or.reduce([m & ~v.astype(bool) for v, m in pairs])
                known = np.logical_and.reduce([m for _, m in pairs])
                return ~decided, decided | known
            decided = np.logical_or.reduce([m & v.astype(bool) for v, m in pairs])
            known = np.logical_and.reduce([m for _, m in pairs])
            return decided, decided | known
        if t is ir.Unary:
            v, m = self.ev(e.arg)
            if e.op == "not":
                return ~v.astype(bool), m
            return (-v if e.op == "neg" else np.abs(v)), m
        if t is ir.Arith:
            (a, am), (b, bm) = self.ev(e.left), self.ev(e.right)
            m = am & bm
            with np.errstate(all="ignore"):
                if e.op == "+":
                    v = a + b
                elif e.op == "-":
                    v = a - b
                elif e.op == "*":
                    v = a * b
                elif e.op == "/":
                    zero = b == 0
                    v = np.where(zero, 0.0, a / np.where(zero, 1, b))
                    m = m & ~zero
                else:
                    zero = b == 0
                    v = np.where(zero, 0, np.mod(a, np.where(zero, 1, b)))
                    m = m & ~zero
            if e.type == ir.FLOAT:
                m = m & ~np.isnan(v)
            return v, m
        if t is ir.InList:
            v, m = self.ev(e.arg)
            hit = np.isin(v, list(e.values))
            return (~hit if e.negate else hit), m
        if t is ir.IfElse:
            (c, cm), (a, am), (b, bm) = self.ev(e.cond), self.ev(e.then), self.ev(e.other)
            f = cm & c.astype(bool)
            return np.where(f, a, b), np.where(f, am, bm)
        if t is ir.EnumMap:
            v, m = self.ev(e.arg)
            codes = np.array(e.codes)[np.clip(v.astype(np.int64), 0, len(e.codes) - 1)]
            return codes, m & (codes >= 0)
        if t is ir.Call:
            return self.call(e)
        raise TypeError(e)

    def call(self, e):
        if e.fn == "is_null":
            _, m = self.ev(e.args[0])
            return ~m, np.ones(self.n, dtype=bool)
        pairs = [self.ev(a) for a in e.args]
        if e.fn == "coalesce":
            v, m = pairs[-1]
            for pv, pm in reversed(pairs[:-1]):
                v, m = np.where(pm, pv, v), pm | m
            return v, m
        m = np.logical_and.reduce([pm for _, pm in pairs])
        vals = [pv for pv, _ in pairs]
        if e.fn == "min":
            return np.minimum.reduce(vals), m
        if e.fn == "max":
            return np.maximum.reduce(vals), m
        if e.fn == "clip":
            return np.minimum(np.maximum(vals[0], vals[1]), vals[2]), m
        if e.fn == "days_between":
            return vals[1] - vals[0], m
        days = (_EPOCH + vals[0].astype("timedelta64[D]"))
        if e.fn == "year":
            return days.astype("datetime64[Y]").astype(np.int64) + 1970, m
        if e.fn == "month":
            return days.astype("datetime64[M]").astype(np.int64) % 12 + 1, m
        return (days - days.astype("datetime64[M]")).astype(np.int64) + 1, m


def evaluate_ruleset(rs: ir.RulesetIR, env: dict, as_of: int, n: int) -> dict:
    """{output: (values, valid), "rule": codes} of one ruleset over whole columns."""
    ev = Evaluator(env, as_of, n)
    outs = {o.name: (np.full(n, 0 if o.default is None else o.default),
                     np.full(n, o.default is not None)) for o in rs.outputs}
    code = {r.id: k for k, r in enumerate(rs.rules)}
    if rs.hit in ("first", "priority"):
        winner = np.full(n, -1)
        for rule in rs.evaluation_order():
            v, m = ev.ev(rule.when)
            fires = m & v.astype(bool) & (winner < 0)
            if not fires.any():
                continue
            winner[fires] = code[rule.id]
            for name, e in rule.then:
                tv, tm = ev.ev(e)
                ov, om = outs[name]
                outs[name] = (np.where(fires, tv, ov), np.where(fires, tm, om))
        outs["rule"] = winner
        return outs
    fired = [(rule, (lambda vm: vm[1] & vm[0].astype(bool))(ev.ev(rule.when))) for rule in rs.rules]
    if rs.hit == "unique":
        count = np.sum([f for _, f in fired], axis=0)
        winner = np.full(n, -1)
        for rule, f in fired:
            one = f & (count == 1)
            winner[one] = code[rule.id]
            for name, e in rule.then:
                tv, tm = ev.ev(e)
                ov, om = outs[name]
                outs[name] = (np.where(one, tv, ov), np.where(one, tm, om))
        for name, (ov, om) in list(outs.items()):
            outs[name] = (ov, om & (count <= 1))
        outs["rule"] = np.where(count > 1, len(rs.rules), winner)
        return outs
    count = np.sum([f for _, f in fired], axis=0)
    for o in rs.outputs:
        ov, om = outs[o.name]
        if o.collect == "count":
            outs[o.name] = (np.where(count > 0, count, ov), om | (count > 0))
            continue
        acc, present, named = None, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        first_v, first_m = ov, om
        for rule, f in fired:
            e = dict(rule.then).get(o.name)
            if e is None:
                continue
            tv, tm = ev.ev(e)
            if o.collect == "first":
                new = f & ~named
                first_v, first_m = np.where(new, tv, first_v), np.where(new, tm, first_m)
            else:
                use = f & tm
                if acc is None:
                    acc = np.where(use, tv, 0 if o.collect == "sum" else tv)
                elif o.collect == "sum":
                    acc = np.where(use, acc + tv, acc)
                elif o.collect in ("min", "max"):
                    pick = np.minimum if o.collect == "min" else np.maximum
                    acc = np.where(use, np.where(present, pick(acc, tv), tv), acc)
                elif o.collect == "any":
                    acc = np.where(use, np.where(present, acc | tv, tv), acc)
                else:
                    acc = np.where(use, np.where(present, acc & tv, tv), acc)
                present |= use
            named |= f
        if o.collect == "first":
            outs[o.name] = (first_v, first_m)
        elif acc is not None:
            outs[o.name] = (np.where(named, acc, ov), np.where(named, present, om))
    masks = np.zeros((n, len(rs.rules)), dtype=bool)
    for k, (_, f) in enumerate(fired):
        masks[:, k] = f
    outs["rule"] = masks
    return outs


def decide(kernel, table: pa.Table, as_of_days: int, model_outputs: pa.Table | None = None) -> dict:
    """Every decision column of ``kernel``'s bundle for ``table``: NumPy rules, onnxruntime models
    (or, to check the rules alone, the model columns of ``model_outputs``)."""
    n = table.num_rows
    env = columns_of(table, kernel.inputs)
    results = {}
    bundle = kernel.bundle
    for node in bundle.nodes:
        sources = bundle.sources[node.name]
        if node.kind == "model":
            model = node.model
            if model_outputs is not None:
                for name in node.outputs:
                    col = np.asarray(model_outputs.column(f"{node.name}.{name}").to_numpy(zero_copy_only=False),
                                     dtype=np.float64)
                    env[f"{node.name}.{name}"] = results[f"{node.name}.{name}"] = (col, ~np.isnan(col))
                continue
            X = np.empty((n, len(model.inputs)), np.float32)
            for j, feature in enumerate(model.inputs):
                src = sources[feature.name]
                key = src[1] if src[0] == "column" else f"{src[1]}.{src[2]}"
                v, m = env[key]
                if feature.kind == "category":
                    t = kernel.inputs.get(key)
                    names = np.array(t.members, dtype=object)[v] if t is not None and t.kind == "enum" else v
                    lookup = {c: k for k, c in enumerate(feature.categories)}
                    X[:, j] = np.where(m, [lookup.get(x, -1) for x in names], np.nan)
                else:
                    X[:, j] = np.where(m, v, np.nan)
            scores = model.run_matrix(X)
            for k, name in enumerate(node.outputs):
                col = scores[:, k]
                env[f"{node.name}.{name}"] = results[f"{node.name}.{name}"] = (col, ~np.isnan(col))
            continue
        local = {name: env[src[1] if src[0] == "column" else f"{src[1]}.{src[2]}"] for name, src in sources.items()}
        outs = evaluate_ruleset(node.ruleset.ir, local, as_of_days, n)
        for name, pair in outs.items():
            if name != "rule":
                env[f"{node.name}.{name}"] = results[f"{node.name}.{name}"] = pair
        results[f"{node.name}.rule"] = outs["rule"]
    return results


def mismatches(kernel, peer: dict, decided: pa.Table) -> list[str]:
    """Columns where the peer's decisions differ from the kernel's (empty: equal work)."""
    bad = []
    for name, arrow_type in kernel.outputs.items():
        col = decided.column(name)
        if name.endswith(".rule"):
            node = kernel.bundle.node(name[:-5]).ruleset.ir
            ids = [r.id for r in node.rules] + ["!unique"]
            got = peer[name]
            if got.ndim == 2:
                mine = [[ids[k] for k in np.nonzero(row)[0]] for row in got]
            else:
                mine = [None if c < 0 else ids[c] for c in got]
            if mine != col.to_pylist():
                bad.append(name)
            continue
        v, m = peer[name]
        t = kernel.output_types[name]
        want = col.to_pylist()
        if t.kind == "enum":
            got = [t.members[int(x)] if ok else None for x, ok in zip(v, m)]
        elif t.kind == "date":
            got = [int(x) if ok else None for x, ok in zip(v, m)]
            want = [None if w is None else (w - __import__("datetime").date(1970, 1, 1)).days for w in want]
        elif t.kind == "float":
            got = [float(x) if ok else None for x, ok in zip(v, m)]
            if any((g is None) != (w is None) or (g is not None and abs(g - w) > 1e-9 * max(1, abs(w)))
                   for g, w in zip(got, want)):
                bad.append(name)
            continue
        else:
            got = [(bool(x) if t.kind == "bool" else int(x)) if ok else None for x, ok in zip(v, m)]
        if got != want:
            bad.append(name)
    return bad
