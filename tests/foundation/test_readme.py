"""The README's Python example runs as written (from the repository root)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_example_runs(monkeypatch, tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("POSTLOAN_AUDIT_PATH", str(tmp_path / "audit.log"))
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert scope["decisions"].num_rows == scope["book"].num_rows == 10_000
    assert scope["result"].actions.num_rows > 0
    assert scope["m"].backend == "numba"
    assert (tmp_path / "audit.log").stat().st_size > 0
