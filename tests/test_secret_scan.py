"""No test key reaches a log line, journal row, summary, report or exception
text anywhere in the run (``secret_scan.py`` collects them as they come).

The scanner is tested on values made up here, and removed again, so the
final check, which this module's plugin runs last, sees only real leaks.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import types
import uuid
import warnings
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest
import typer
import typer.testing

import secret_scan
from arb.cli import app as arb_app
from arb_binance.emulator import EMULATOR_API_KEY, EMULATOR_SECRET_KEY
from arb_upbit.emulator import UpbitEmulator
from secret_scan import Scanner


def made_up_key() -> str:
    return f"planted-{uuid.uuid4().hex}"


@pytest.fixture
def scan(request) -> secret_scan.SecretScan:
    return secret_scan.plugin(request.config)


@contextlib.contextmanager
def planted(scanner: Scanner) -> Iterator[str]:
    """A key only this test knows, in the run's own scanner and out again
    with whatever it found, so the final check does not see it."""
    key = made_up_key()
    scanner.add([(key, "planted by test_secret_scan")])
    try:
        yield key
    finally:
        scanner.remove(key)


def found(scanner: Scanner, key: str) -> list[str]:
    return [f.where for f in scanner.findings.values() if f.key == key]


# --- which keys ------------------------------------------------------------------------------

def test_the_suites_keys_are_gathered(scan):
    keys = scan.scanner.keys
    upbit = UpbitEmulator.__init__.__kwdefaults__
    assert {EMULATOR_API_KEY, EMULATOR_SECRET_KEY, upbit["access_key"], upbit["secret_key"]} <= set(keys)
    assert "hunter2-Correct-Horse-Battery-Staple" in keys  # the config corpus' pasted secrets
    # Of the test modules this run collected, each key constant is covered.
    known = {"test_live_e2e": ("UPBIT_ACCESS", "UPBIT_SECRET"), "test_binance_auth": ("API_KEY", "SECRET_KEY"),
             "test_upbit_auth": ("ACCESS_KEY", "SECRET_KEY"), "test_online_check": ("UPBIT_ACCESS", "UPBIT_SECRET"),
             "test_notify": ("TOKEN", "WEBHOOK_SECRET", "SLACK_PATH")}
    for module_name, names in known.items():
        module = sys.modules.get(module_name)
        if module is not None:
            assert {getattr(module, name) for name in names} <= set(keys), module_name


def test_key_constants_are_told_from_other_strings():
    module = types.ModuleType("test_example")
    module.__dict__.update(
        UPBIT_SECRET="example-upbit-secret-0000000001",
        API_KEY="example-api-key-000000000000001",
        SHORT_SECRET="too-short",
        KEY_VARS=("UPBIT_ACCESS_KEY", "BINANCE_SECRET_KEY"),  # variable names, not keys
        FAKE_KEYS={"UPBIT_ACCESS_KEY": "fake-upbit-access-Zq81vXw3Lp0"},
        ENV={"TELEGRAM_BOT_TOKEN": "0000000:telegram-token-example-1", "COLUMNS": "240"},
        SLACK_PATH="/services/T000/B000/SlackSecretPathExample",
        BANNER="Session summary for a secret-free run, nothing to see",
        ROUTE="/api/v3/order/and/more/of/it",
        __doc__="A module about the secret keys of the suite, long enough to count.",
    )
    gathered = dict(secret_scan.module_keys([module]))
    assert set(gathered) == {"example-upbit-secret-0000000001", "example-api-key-000000000000001",
                             "fake-upbit-access-Zq81vXw3Lp0", "0000000:telegram-token-example-1",
                             "/services/T000/B000/SlackSecretPathExample"}
    assert gathered["example-upbit-secret-0000000001"] == "test_example.UPBIT_SECRET"


def test_a_finding_shows_where_and_whose_key_but_not_the_key():
    scanner, key = Scanner(), made_up_key()
    scanner.add([(key, "test_x.SECRET")])
    scanner.check(f"connected with {key}", "test_x.py::test_y: log record arb INFO", "log records")
    assert scanner.report() == f"test_x.py::test_y: log record arb INFO: test_x.SECRET (plan… ({len(key)} chars))"
    assert key not in scanner.report()


# --- the scanner finds a key wherever it is put -----------------------------------------------

def test_a_key_in_a_log_record_or_its_exception_is_found():
    scanner, key = Scanner(), made_up_key()
    scanner.add([(key, "planted")])
    plain = logging.LogRecord("arb.x", logging.INFO, __file__, 1, "signed with %s", (key,), None)
    try:
        raise RuntimeError("request failed") from ValueError(f"bad key {key}")
    except RuntimeError:
        failed = logging.LogRecord("arb.x", logging.ERROR, __file__, 1, "request failed", None, sys.exc_info())
    clean = logging.LogRecord("arb.x", logging.INFO, __file__, 1, "signed with %s", ("****",), None)
    scanner.check_record(plain, "plain")
    scanner.check_record(failed, "failed")
    scanner.check_record(clean, "clean")
    assert found(scanner, key) == ["plain: log record arb.x INFO", "failed: log record arb.x ERROR"]


@pytest.mark.parametrize("spell", [str, lambda k: quote(k, safe=""), lambda k: json.dumps({"key": k}), html.escape],
                         ids=["as is", "in a URL", "in JSON", "in HTML"])
def test_a_key_in_a_produced_file_is_found(tmp_path: Path, spell):
    scanner, key = Scanner(), f'{made_up_key()}:/&"'
    scanner.add([(key, "planted")])
    (tmp_path / "run" / "arb").mkdir(parents=True)
    (tmp_path / "run" / "arb" / "journal.sqlite-wal").write_bytes(b"\0" * 100 + spell(key).encode() + b"\0")
    (tmp_path / "run" / "clean.json").write_text("{}")
    scanner.check_tree(tmp_path)
    assert found(scanner, key) == [str(Path("run", "arb", "journal.sqlite-wal"))]


def test_a_key_in_a_journal_row_is_found(tmp_path: Path):
    scanner, key = Scanner(), made_up_key()
    scanner.add([(key, "planted")])
    with contextlib.closing(sqlite3.connect(tmp_path / "j.sqlite")) as db, db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, raw TEXT, blob BLOB)")
        db.execute("INSERT INTO orders (raw, blob) VALUES (?, ?)", ("{}", f"signed by {key}".encode()))
    scanner.check_tree(tmp_path)
    assert found(scanner, key) == ["j.sqlite", "j.sqlite: table orders"]


def test_a_key_cut_by_a_read_boundary_is_found(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(secret_scan, "CHUNK", 64)
    scanner, key = Scanner(), made_up_key()
    scanner.add([(key, "planted")])
    (tmp_path / "summary.json").write_bytes(b"x" * 50 + key.encode() + b"x" * 50)
    scanner.check_tree(tmp_path)
    assert found(scanner, key) == ["summary.json"]


def test_inputs_and_installs_are_not_scanned(tmp_path: Path):
    scanner, key = Scanner(), made_up_key()
    scanner.add([(key, "planted")])
    (tmp_path / "config.yaml").write_text(f"exchanges: {{upbit: {{secret_key: {key}}}}}\n")
    for tree, marker in (("venv", "pyvenv.cfg"), ("source", "pyproject.toml")):
        (tmp_path / tree).mkdir()
        (tmp_path / tree / marker).write_text("")
        (tmp_path / tree / "notes.txt").write_text(key)
    scanner.check_tree(tmp_path)
    assert found(scanner, key) == []


def test_a_key_in_a_captured_section_or_failure_report_is_found(scan):
    with planted(scan.scanner) as key:
        report = pytest.TestReport("t.py::test_leaky", ("t.py", 1, "test_leaky"), {}, "failed",
                                   f"AssertionError: {key}", "call",
                                   [("Captured stderr call", f"WARNING arb: key={key}\n")])
        scan.pytest_runtest_logreport(report)
        assert found(scan.scanner, key) == ["t.py::test_leaky (call): Captured stderr call",
                                            "t.py::test_leaky (call): failure report"]
    assert found(scan.scanner, key) == []


# --- and the run's hooks feed it --------------------------------------------------------------

def test_the_runs_hooks_see_logs_exceptions_and_outputs(scan, capsys, request):
    nodeid = request.node.nodeid
    with planted(scan.scanner) as key:
        quiet = logging.getLogger("secret-scan-example")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False  # as arb's logger is while the CLI runs: no root handler sees it
        quiet.warning("key=%s", key)

        with pytest.raises(ValueError):
            raise ValueError(f"refused {key}")

        command = [sys.executable, "-c", f"print({key!r})"]
        subprocess.run(command, capture_output=True, check=True)
        print(key)
        capsys.readouterr()

        assert set(found(scan.scanner, key)) == {
            f"{nodeid}: log record secret-scan-example WARNING",
            f"{nodeid}: exception caught by pytest.raises",
            f"{nodeid}: output of {os.path.basename(sys.executable)} -c print({key!r})",
            f"{nodeid}: output read through a capture fixture",
        }


def typer_app(key: str) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def leaky():
        typer.echo(key)

    return app


def test_cli_runner_results_are_seen(scan, request):
    with planted(scan.scanner) as key:
        assert typer.testing.CliRunner().invoke(typer_app(key)).exit_code == 0
        assert found(scan.scanner, key) == [f"{request.node.nodeid}: CliRunner result of a command"]


def test_arb_cli_output_is_seen(scan, request):
    # arb's own app through typer's runner, as most tests run it; the refusal names the path.
    with planted(scan.scanner) as key:
        result = typer.testing.CliRunner().invoke(arb_app, ["validate-config", f"/nonexistent/{key}.yaml"])
        assert result.exit_code != 0
        assert found(scan.scanner, key) == [f"{request.node.nodeid}: CliRunner result of validate-config"]


def test_exceptions_escaping_threads_are_seen(scan):
    # Raising in a real thread would also make pytest warn about it; the hook
    # in place is called with what such a thread would hand it instead.
    assert threading.excepthook.__module__ == secret_scan.__name__
    passed_on = []
    hook = scan._wrap_excepthook(passed_on.append)
    with planted(scan.scanner) as key:
        try:
            raise RuntimeError(f"lost {key}")
        except RuntimeError as exc:
            args = threading.ExceptHookArgs((RuntimeError, exc, exc.__traceback__, threading.current_thread()))
        hook(args)
        assert found(scan.scanner, key) == [f"{scan.current}: exception escaping {threading.current_thread().name}"]
    assert passed_on == [args]


def test_warnings_are_seen(scan):
    with planted(scan.scanner) as key:
        scan.pytest_warning_recorded(warnings.WarningMessage(UserWarning(key), UserWarning, __file__, 1), "t.py::t")
        assert found(scan.scanner, key) == ["t.py::t: warning"]


def test_discarded_arb_output_is_kept_for_the_scan(tmp_path_factory):
    key = made_up_key()
    # A config path that does not exist: arb refuses at once and names it on stderr.
    proc = subprocess.Popen([sys.executable, "-m", "arb", "validate-config", f"/nonexistent/{key}.yaml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=60) != 0
    assert (proc.stdout, proc.stderr) == (None, None)
    scanner = Scanner()
    scanner.add([(key, "planted")])
    scanner.check_tree(tmp_path_factory.getbasetemp() / secret_scan.DEVNULL_DIR)
    [where] = found(scanner, key)
    assert where.endswith("-test_discarded_arb_output_is_kept_for_the_scan-stderr.log")


def test_the_final_check_runs_last(request):
    names = [item.name for item in request.session.items]
    assert secret_scan.FINAL_CHECK not in names or names[-1] == secret_scan.FINAL_CHECK


# --- the check itself -------------------------------------------------------------------------

def test_no_key_reached_any_output(scan, tmp_path_factory):
    """Runs last: everything the run logged, printed, raised or wrote so far."""
    assert scan.scanner.keys, "no test keys were gathered: the scan would pass whatever leaked"
    scan.scanner.check_tree(tmp_path_factory.getbasetemp())
    if scan.scanner.findings:
        pytest.fail("test keys found (where: whose key):\n" + scan.scanner.report(), pytrace=False)
