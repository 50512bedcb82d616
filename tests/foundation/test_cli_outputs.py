"""Where outputs go (issue 10, items 13 and 14): writers write through a symlink to its
target, never replace a special file, take `-` for standard output and keep summaries on
stderr; a connector's exception is named (URI, connector, plugin, type, errno) and its
message — which may carry personal data — is never printed."""
from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kernel
from kernel import plugins
from kernel.cli import main
from kernel.hookspecs import Connector

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-28"
#: the issue's payload: an OSError whose message carries a debtor's name and phone number
PERSONAL = "disk full name=张三 phone=13800138000"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def read_any(path: Path) -> int:
    return sum(b.num_rows for b in plugins.read_batches(str(path)))


def postloan(*argv, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    return subprocess.run([sys.executable, "-m", "kernel", *argv], stdout=stdout, stderr=subprocess.PIPE, env=env)


# --- symlinks: written through, never replaced -------------------------------------------------

@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".arrow", ".sqlite"])
def test_generate_writes_through_a_symlink_to_its_target(capsys, tmp_path, suffix):
    """`postloan generate --out LINK` replaced the link with a regular file."""
    target = tmp_path / "data" / f"book{suffix}"
    target.parent.mkdir()
    link = tmp_path / f"link{suffix}"
    link.symlink_to(target)                 # dangling: the target is created through it
    code, out, err = run(capsys, "generate", "--accounts", "300", "--out", str(link), "--quiet")
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert read_any(target) == 300
    code, _, err = run(capsys, "generate", "--accounts", "200", "--out", str(link), "--quiet")   # and again, over it
    assert code == 0, err
    assert link.is_symlink() and read_any(target) == 200
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]      # no temporary left behind


def test_a_symlink_loop_is_refused_and_left_alone(capsys, tmp_path):
    (tmp_path / "a.parquet").symlink_to("b.parquet")
    (tmp_path / "b.parquet").symlink_to("a.parquet")
    code, _, err = run(capsys, "generate", "--accounts", "10", "--out", str(tmp_path / "a.parquet"), "--quiet")
    assert (code, err.strip()) == (2, f"postloan generate: error: {tmp_path / 'a.parquet'}: is a symlink that leads "
                                      f"back to itself")
    assert (tmp_path / "a.parquet").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet",
                                                                                                     "b.parquet"]


def test_decide_writes_through_a_symlink(capsys, tmp_path):
    book = tmp_path / "book.parquet"
    assert main(["generate", "--accounts", "500", "--out", str(book), "--quiet"]) == 0
    target, link = tmp_path / "decided.parquet", tmp_path / "latest.parquet"
    link.symlink_to(target.name)            # relative, as people make them
    assert main(["decide", "--in", str(book), "--out", str(link), "--as-of", AS_OF, "--quiet"]) == 0
    assert link.is_symlink() and pq.read_table(target).num_rows == 500


def test_a_link_through_proc_is_written_in_place_not_replaced(tmp_path):
    """As root, `--out /dev/stdout` with stdout on a file replaced the system's /dev/stdout
    link. The same situation with a link of our own: it must stay a link, and the book
    goes to the process's standard output."""
    link = tmp_path / "stdout.parquet"
    link.symlink_to("/proc/self/fd/1")
    with open(tmp_path / "captured", "wb") as captured:
        proc = postloan("generate", "--accounts", "400", "--out", str(link), "--quiet", stdout=captured)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink()
    assert pq.read_table(tmp_path / "captured").num_rows == 400


def test_a_fifo_is_written_not_replaced(capsys, tmp_path):
    fifo = tmp_path / "book.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    code, _, err = run(capsys, "generate", "--accounts", "300", "--out", str(fifo), "--format", "csv", "--quiet")
    reader.join(30)
    assert code == 0, err
    assert fifo.is_fifo()
    assert received[0].decode("utf-8").count("\n") == 301        # header + rows


def test_sqlite_refuses_standard_output_and_special_files(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--accounts", "10", "--out", "-", "--format", "sqlite", "--quiet")
    assert code == 2
    assert err.strip() == ("postloan generate: error: -: SQLite writes to a database file, not to standard output "
                           "or a special file")
    assert not Path("-").exists()


# --- `-` is standard output; summaries on stderr --------------------------------------------------

def test_generate_and_decide_pipe_clean_data_to_standard_output(tmp_path):
    proc = postloan("generate", "--accounts", "700", "--seed", "2", "--out", "-", "--quiet")
    assert proc.returncode == 0, proc.stderr
    book = pq.read_table(io.BytesIO(proc.stdout))
    assert book.num_rows == 700
    assert b"wrote 700 accounts to standard output" in proc.stderr
    (tmp_path / "book.parquet").write_bytes(proc.stdout)
    proc = postloan("decide", "--in", str(tmp_path / "book.parquet"), "--out", "-", "--out-format", "csv",
                    "--as-of", AS_OF, "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode("utf-8").splitlines()
    assert lines[0].startswith('"account_id","as_of","bundle_hash"') and len(lines) == 701
    assert b"decided 700 accounts into standard output" in proc.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`postloan generate --out - | head` is not an error: exit 141 (SIGPIPE) and nothing said."""
    proc = subprocess.Popen([sys.executable, "-m", "kernel", "generate", "--accounts", "50000", "--out", "-",
                             "--format", "csv", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])})
    proc.stdout.read(100)
    proc.stdout.close()
    assert proc.wait(60) == 141
    assert proc.stderr.read() == b""
    proc.stderr.close()


# --- a connector's exceptions are named, their messages withheld ---------------------------------

class LeakyConnector(Connector):
    """A third-party connector whose errors carry personal data in their messages."""

    name = "leaky"
    suffixes = (".leaky",)

    def read(self, uri, *, schema, batch_size):
        raise OSError(PERSONAL)                      # no errno: a message only
        yield                                        # pragma: no cover

    def write(self, uri, batches, *, schema):
        for _ in batches:
            raise OSError(errno.ENOSPC, PERSONAL)


class LeakyPlugin:
    @staticmethod
    @kernel.hookimpl
    def postloan_connectors():
        return [LeakyConnector()]


@pytest.fixture
def leaky_manager(monkeypatch):
    manager = plugins.PluginManager({})
    manager.register(LeakyPlugin, "acme.leaky")
    monkeypatch.setattr(plugins, "_DEFAULT_MANAGER", manager)      # what the CLI's verbs use
    return manager


def test_a_connector_oserror_is_named_without_its_message(capsys, tmp_path, leaky_manager):
    """`postloan decide: error: disk full name=张三 phone=13800138000` (the issue's output)."""
    book = tmp_path / "book.parquet"
    assert main(["generate", "--accounts", "100", "--out", str(book), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "decisions.leaky"
    code, _, err = run(capsys, "decide", "--in", str(book), "--out", str(out), "--as-of", AS_OF, "--quiet")
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"postloan decide: error: {out}: connector 'leaky' (plugin 'acme.leaky') failed to write: "
                           f"OSError [ENOSPC: No space left on device] at test_cli_outputs.py:")
    assert "张三" not in err and "13800138000" not in err


def test_a_connector_read_error_without_errno_says_its_type(capsys, tmp_path, leaky_manager):
    book = tmp_path / "book.leaky"
    book.write_text("x")
    with pytest.raises(plugins.PluginError) as e:
        list(plugins.read_batches(str(book), manager=leaky_manager))
    assert str(e.value).startswith(f"{book}: connector 'leaky' (plugin 'acme.leaky') failed to read: OSError at "
                                   f"test_cli_outputs.py:")
    assert (e.value.plugin, e.value.hook) == ("acme.leaky", "postloan_connectors")
    assert "张三" not in str(e.value)
