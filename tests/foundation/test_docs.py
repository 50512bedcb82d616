from pathlib import Path

from kernel import schema

ROOT = Path(__file__).resolve().parents[2]


def test_data_contract_page_is_current():
    page = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert page == schema.markdown(), "docs/data-contract.md is stale: python -m kernel.schema > docs/data-contract.md"


def test_the_rule_author_guides_broken_file_gives_the_errors_it_shows(tmp_path, monkeypatch, capsys):
    """Section 11 of the rule-author guide: the file it shows, checked, prints what it shows."""
    import re

    from kernel.cli import main

    guide = (ROOT / "docs" / "rule-author-guide.md").read_text(encoding="utf-8")
    section = guide.split("## 11.", 1)[1]
    text = re.search(r"`tier_broken\.yaml`:\n\n```yaml\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"\$ postloan check tier_broken\.yaml\n(.*?)```", section, re.S).group(1).splitlines()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tier_broken.yaml").write_text(text, encoding="utf-8")
    assert main(["check", "tier_broken.yaml"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() + err.splitlines() == shown


def shell_sessions(page: str) -> list[list[tuple[str, list[str]]]]:
    """The guide's sessions marked ``<!-- session: … -->``: each a list of (command, the
    output shown after it)."""
    import re
    sessions = []
    for block in re.findall(r"<!-- session[^>]*-->\n```\n(.*?)```", page, re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        sessions.append(steps)
    return sessions


def run_session(steps, tmp_path, files: dict) -> None:
    """Run each command with bash in a folder holding copies of rulesets/ and models/, with
    `postloan` the package's CLI, and the page's files (``<!-- file: NAME -->`` blocks); its output (stdout and stderr, in order) must be exactly the
    lines the guide shows after it."""
    import os
    import shutil
    import subprocess
    import sys
    for folder in ("rulesets", "models"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]))
    prelude = f'postloan() {{ "{sys.executable}" -m kernel "$@"; }}\n'
    for command, shown in steps:
        done = subprocess.run(["bash", "-c", prelude + command], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        assert done.stdout.splitlines() == shown, f"$ {command}"


def test_the_rule_author_guides_sessions_print_what_they_show(tmp_path):
    """Every session of the rule-author guide marked as run by this test: the commands it
    shows, run, print exactly what it shows (one mistake, one error: point 1 of issue 15)."""
    page = (ROOT / "docs" / "rule-author-guide.md").read_text(encoding="utf-8")
    import re
    sessions = shell_sessions(page)
    files = dict(re.findall(r"<!-- file: (\S+) -->\n```yaml\n(.*?)```", page, re.S))
    assert len(sessions) >= 6 and "dpd_rows.yaml" in files
    for i, steps in enumerate(sessions):
        here = tmp_path / f"session{i}"
        here.mkdir()
        run_session(steps, here, files)
