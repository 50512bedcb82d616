"""Issue 15, point 10: `postloan decide --actions-out FILE` plans, checks and writes the actions
of the book it decides, and `--config` chooses the configuration they are planned under."""
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kernel.cli import main
from kernel.synth import generate

NOW = "2026-11-28T02:00:00Z"


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("book") / "book.parquet"
    pq.write_table(generate(1500, seed=11), path)
    return path


def decide(book, folder, *extra):
    code = main(["decide", "--in", str(book), "--out", str(folder / "d.parquet"), "--as-of", "2026-11-28",
                 "--now", NOW, "--quiet", *extra])
    assert code == 0


def test_actions_out_writes_what_the_pipeline_plans_for_the_book(book, tmp_path, monkeypatch, capsys):
    import kernel
    from kernel.pipeline import Pipeline
    monkeypatch.setenv("POSTLOAN_AUDIT_PATH", str(tmp_path / "audit.log"))
    decide(book, tmp_path, "--actions-out", str(tmp_path / "actions.parquet"))
    written = pq.read_table(tmp_path / "actions.parquet")
    expected = Pipeline(kernel.Kernel.load(), audit_path=tmp_path / "other.log").run(
        pq.read_table(book), as_of=dt.date(2026, 11, 28), now=dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc)).actions
    assert written.num_rows == expected.num_rows > 100
    for column in ("account_id", "action", "outcome", "reason_code", "script"):
        assert written.column(column).cast(pa.string()).to_pylist() == expected.column(column).cast(pa.string()).to_pylist()
    err = capsys.readouterr().err
    assert f"planned {written.num_rows:,} actions (" in err and "KEEP" in err and "into " in err
    assert (tmp_path / "audit.log").stat().st_size > 0          # acted-on decisions are audited


def test_actions_out_follows_the_configuration_given_with_config(book, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLOAN_AUDIT_PATH", str(tmp_path / "audit.log"))
    config = tmp_path / "postloan.toml"
    config.write_text("[compliance]\napply = []\n", encoding="utf-8")      # no policy set applies: all blocked
    decide(book, tmp_path, "--actions-out", str(tmp_path / "actions.csv"), "--config", str(config))
    import pyarrow.csv as pcsv
    actions = pcsv.read_csv(tmp_path / "actions.csv")
    assert actions.num_rows > 100
    assert set(actions.column("outcome").to_pylist()) == {"BLOCK"}
    assert set(actions.column("reason_code").to_pylist()) == {"NO_POLICY_SET"}


def test_actions_out_may_not_replace_the_book(book, tmp_path, capsys):
    code = main(["decide", "--in", str(book), "--out", str(tmp_path / "d.parquet"), "--actions-out", str(book)])
    assert code == 2 and "--actions-out is the book or the decisions file" in capsys.readouterr().err


def test_serve_passes_config_to_the_pipeline(tmp_path):
    from kernel.cli import build_parser
    from kernel.cli.serve import server_config
    from kernel.server.app import DecisionServer
    config = tmp_path / "postloan.toml"
    config.write_text('[strategy.tiered.zh]\nlender = "测试汽车金融"\n', encoding="utf-8")
    args = build_parser().parse_args(["serve", "--port", "0", "--config", str(config),
                                      "--audit-log", str(tmp_path / "audit.log")])
    server = DecisionServer(server_config(args))
    server.start()
    try:
        engine = server.wait_ready(120)
        assert engine.pipeline.config["strategy"]["tiered"]["zh"]["lender"] == "测试汽车金融"
    finally:
        server.stop(0)
