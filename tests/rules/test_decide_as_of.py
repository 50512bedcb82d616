"""postloan decide decides a book as of its snapshot date (postloan.snapshot_at) and says so;
a later date needs --after-snapshot, an earlier one is refused, and a book without a
snapshot is decided as of the date given, or today — said so."""
import datetime as dt

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from kernel.cli import main
from kernel.errors import PostloanError
from kernel.snapshot import decision_date, read_snapshot
from kernel.synth import write_book

from .test_bundle import BUCKET, write

SNAP_DAY = dt.date(2026, 3, 14)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("asof") / "book.parquet"
    write_book(path, 200, seed=3, as_of=SNAP_DAY)
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write(tmp_path_factory.mktemp("bundle"), bucket=BUCKET)


def _decide(capsys, book, bundle, out, *extra):
    code = main(["decide", "--in", str(book), "--out", str(out), "--bundle", str(bundle), "--quiet", *extra])
    return code, capsys.readouterr().err


def test_default_is_the_snapshot_date_and_said(capsys, tmp_path, book, bundle):
    code, err = _decide(capsys, book, bundle, tmp_path / "d.parquet")
    assert code == 0, err
    assert "decided as of 2026-03-14, the book's snapshot date (postloan.snapshot_at 2026-03-14T02:00:00Z)" in err
    as_of = set(pq.read_table(tmp_path / "d.parquet").column("as_of").to_pylist())
    assert as_of == {SNAP_DAY}


def test_later_date_needs_the_flag(capsys, tmp_path, book, bundle):
    out = tmp_path / "d.parquet"
    code, err = _decide(capsys, book, bundle, out, "--as-of", "2026-03-21")
    assert code == 2 and not out.exists()
    assert "--as-of 2026-03-21 is 7 day(s) after the book's snapshot" in err and "--after-snapshot" in err
    code, err = _decide(capsys, book, bundle, out, "--as-of", "2026-03-21", "--after-snapshot")
    assert code == 0, err
    assert "7 day(s) after the book's snapshot" in err
    assert set(pq.read_table(out).column("as_of").to_pylist()) == {dt.date(2026, 3, 21)}


def test_earlier_date_is_refused(capsys, tmp_path, book, bundle):
    code, err = _decide(capsys, book, bundle, tmp_path / "d.parquet", "--as-of", "2026-03-13", "--after-snapshot")
    assert code == 2
    assert "is before the book's snapshot" in err


def test_book_without_snapshot_says_so(capsys, tmp_path, book, bundle):
    csv_book = tmp_path / "book.csv"
    pcsv.write_csv(pq.read_table(book), csv_book)
    code, err = _decide(capsys, csv_book, bundle, tmp_path / "d.parquet")
    assert code == 0, err
    assert "carries no snapshot date" in err and "give --as-of" in err
    code, err = _decide(capsys, csv_book, bundle, tmp_path / "e.parquet", "--as-of", "2026-03-14")
    assert code == 0 and "decided as of 2026-03-14 (--as-of" in err


def test_partitioned_parts_must_agree(capsys, tmp_path, bundle):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_book(folder / "a.parquet", 50, seed=1, as_of=SNAP_DAY)
    write_book(folder / "b.parquet", 50, seed=2, as_of=SNAP_DAY + dt.timedelta(days=1))
    code, err = _decide(capsys, folder, bundle, tmp_path / "out")
    assert code == 2 and "snapshots of different moments" in err


def test_rules():
    snap = dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc)
    assert decision_date(None, snap)[0] == dt.date(2026, 11, 28)
    assert decision_date(None, None, today=dt.date(2027, 1, 2))[0] == dt.date(2027, 1, 2)
    with pytest.raises(PostloanError, match="after the book's snapshot"):
        decision_date(dt.date(2026, 12, 5), snap)
    assert decision_date(dt.date(2026, 12, 5), snap, after_snapshot=True)[0] == dt.date(2026, 12, 5)
    assert read_snapshot({b"postloan.snapshot_at": b"2026-11-28T02:00:00Z"}) == snap
    with pytest.raises(PostloanError, match="not an ISO 8601 instant"):
        read_snapshot({b"postloan.snapshot_at": b"yesterday"}, "b.parquet")
    with pytest.raises(PostloanError, match="no time zone"):
        read_snapshot({"postloan.snapshot_at": "2026-11-28T02:00:00"}, "b.parquet")
