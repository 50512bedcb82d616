"""A broken ruleset never crashes the compiler: mutated files give a Ruleset or a RulesetError
with positioned diagnostics, nothing else."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel
from kernel.rules import RulesetError

from .conftest import HERE

SOURCES = [p.read_text(encoding="utf-8") for p in sorted((HERE / "cases").glob("*.yaml"))]
SOURCES += [p.read_text(encoding="utf-8") for p in sorted((HERE / "golden" / "errors").glob("*.yaml"))]
NOISE = ["", " ", ":", "-", "[", "]", "{", "}", ",", "'", '"', "#", "\n", "  ", "(", ")", "not", " and ", "==",
         "1", "-1", "1e400", "9" * 30, "null", "~", "true", "x.y.z", "as_of", "rule", "é中", "\t", "..", "|", ">"]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 2))
        at = draw(st.integers(0, len(text)))
        if kind == 0:                                    # insert noise
            text = text[:at] + draw(st.sampled_from(NOISE)) + text[at:]
        elif kind == 1:                                  # delete a span
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        else:                                            # drop or repeat a line
            lines = text.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines.insert(i, lines[i]) if draw(st.booleans()) else lines.pop(i)
                text = "".join(lines)
    return text


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_files_compile_or_report(text):
    try:
        rs = kernel.compile_ruleset(text)
    except RulesetError as e:
        assert e.diagnostics and e.errors
        assert all(d.line >= 1 and d.column >= 1 and d.message for d in e.diagnostics)
        assert all(str(d).startswith("<string>:") and "\n" not in str(d) for d in e.diagnostics)
    else:
        assert rs.ir.rules
