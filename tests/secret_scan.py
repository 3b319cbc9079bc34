"""A pytest plugin that watches the whole run for the suite's test keys.

Each test already checks the outputs it looks at; this catches the ones no
test looks at.  The keys are gathered, not registered: every key-like
string constant of the test modules (and helper modules) under ``tests/``,
the keys the emulators accept by default, and the ``# secret:`` values of
the config corpus.  Outputs are checked as they arrive, so nothing but the
findings is kept:

* every log record any logger handles (whatever its ``propagate``), with
  its exception text;
* each test report's captured stdout, stderr and log, and its long report;
* ``capsys``/``capfd`` output a test reads, ``CliRunner`` results, and the
  text of exceptions ``pytest.raises`` catches;
* warnings, uncaught thread exceptions and unraisable exceptions;
* output a subprocess returns through ``communicate``/``run``; an ``arb``
  subprocess whose output a test throws away (``DEVNULL``) writes it to a
  file in the base temporary directory instead, scanned with the rest;
* at the end, the files the run left in the base temporary directory
  (journals, summaries, reports, logs), minus the inputs tests write.

The final check lives in ``test_secret_scan.py``, which this plugin moves
to the end of the run.
"""

from __future__ import annotations

import contextlib
import functools
import html
import importlib
import inspect
import itertools
import json
import logging
import os
import pkgutil
import re
import sqlite3
import subprocess
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import quote

import pytest
import typer
import typer.testing
from _pytest._code.code import ExceptionInfo
from _pytest.capture import CaptureFixture

TESTS = Path(__file__).resolve().parent
FINAL_CHECK = "test_no_key_reached_any_output"
FINAL_MODULE = "test_secret_scan.py"

# Shorter strings are names and fragments, not keys, and would match by chance.
MIN_KEY_LEN = 16
KEY_NAME = re.compile(r"ACCESS|SECRET|API_?KEY|(?:^|_)KEYS?(?:_|$)|TOKEN|PASSWORD|PASSPHRASE|CREDENTIAL|PRIVATE",
                      re.IGNORECASE)
# ``KEY_VARS = ("UPBIT_ACCESS_KEY", ...)``: the name of a variable holding a key, not a key.
ENV_VAR_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
CORPUS_SECRET = re.compile(r"^#\s*secret:\s*(\S.*?)\s*$", re.MULTILINE)

# Inputs the tests write on purpose (configs, plugin sources), and trees that
# are installs or copies of the project rather than anything a run produced.
INPUT_SUFFIXES = frozenset({".yaml", ".yml", ".py", ".pyc", ".pyi", ".toml", ".cfg", ".ini", ".whl", ".so",
                            ".exe", ".pth", ".typed"})
NOT_OUTPUT_DIRS = frozenset({"__pycache__", "site-packages", "node_modules", ".git"})
NOT_OUTPUT_MARKERS = ("pyvenv.cfg", "pyproject.toml", "setup.py")
DEVNULL_DIR = "secret-scan-discarded-output"
CHUNK = 1 << 20
SQLITE_HEADER = b"SQLite format 3\x00"
MAX_FINDINGS = 200


def mask(key: str) -> str:
    return f"{key[:4]}… ({len(key)} chars)"


def key_like(name: str) -> bool:
    return not name.startswith("__") and bool(KEY_NAME.search(name))


def plausible_key(value: object) -> bool:
    return (isinstance(value, str) and len(value) >= MIN_KEY_LEN and "\n" not in value
            and not ENV_VAR_NAME.fullmatch(value))


def _calls_itself_secret(value: str) -> bool:
    # A webhook path or token that says what it is, under a name that does not.
    return "secret" in value.lower() and not any(c.isspace() for c in value)


def constants(namespace: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    """``(value, origin)`` for each key among a module's module-level constants."""
    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        named = key_like(name)
        if isinstance(value, str):
            if plausible_key(value) and (named or _calls_itself_secret(value)):
                yield value, f"{where}.{name}"
        elif isinstance(value, Mapping):
            for item_name, item in list(value.items()):
                if plausible_key(item) and (named or (isinstance(item_name, str) and key_like(item_name))):
                    yield item, f"{where}.{name}[{item_name!r}]"
        elif isinstance(value, (tuple, list, set, frozenset)) and named:
            for item in value:
                if plausible_key(item):
                    yield item, f"{where}.{name}"


def default_keys(cls: type, where: str) -> Iterator[tuple[str, str]]:
    """Keys a class falls back on when none is given (an emulator's built-in ones)."""
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return
    for parameter in parameters:
        if key_like(parameter.name) and plausible_key(parameter.default):
            yield parameter.default, f"{where}.{cls.__name__}({parameter.name}=)"


def _emulation_modules() -> Iterator[types.ModuleType]:
    packages = {"arb"} | {ep.value.split(".")[0].split(":")[0] for ep in entry_points(group="arb")}
    for package_name in sorted(packages):
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if "emulat" in info.name or "testing" in info.name:
                yield importlib.import_module(f"{package_name}.{info.name}")


def emulator_keys() -> Iterator[tuple[str, str]]:
    for module in _emulation_modules():
        yield from constants(vars(module), module.__name__)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                yield from default_keys(value, module.__name__)


def corpus_keys(root: Path = TESTS) -> Iterator[tuple[str, str]]:
    """Secrets the config corpus pastes into files on purpose, for the outputs to refuse."""
    for path in sorted(itertools.chain(root.rglob("*.yaml"), root.rglob("*.yml"))):
        for value in CORPUS_SECRET.findall(path.read_text(encoding="utf-8", errors="replace")):
            if len(value) >= MIN_KEY_LEN:
                yield value, f"{path.relative_to(root)} # secret"


def module_keys(modules: Iterable[types.ModuleType]) -> Iterator[tuple[str, str]]:
    for module in modules:
        yield from constants(vars(module), module.__name__)


def modules_under(root: Path) -> list[types.ModuleType]:
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(root) and module.__name__ != __name__:
            found.append(module)
    return found


def spellings(key: str) -> set[str]:
    """The forms a key takes in a URL, a JSON string or an HTML page."""
    return {key, quote(key, safe=""), quote(key, safe="/:"), json.dumps(key)[1:-1], html.escape(key)}


@dataclass
class Finding:
    origin: str
    key: str
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.origin} ({mask(self.key)})"

    __repr__ = __str__  # an assertion message shows reprs, and must not show the key


@dataclass(repr=False)
class Scanner:
    """Test keys, and where any of them turned up.  Only findings are kept."""

    keys: dict[str, str] = field(default_factory=dict)  # key -> where it was defined
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)
    scanned: dict[str, int] = field(default_factory=dict)
    _needles: list[tuple[str, str]] = field(default_factory=list)  # (spelling, key)
    _byte_needles: list[tuple[bytes, str]] = field(default_factory=list)

    def add(self, pairs: Iterable[tuple[str, str]]) -> None:
        for key, origin in pairs:
            self.keys.setdefault(key, origin)
        self._build()

    def remove(self, key: str) -> None:
        self.keys.pop(key, None)
        self.findings = {k: f for k, f in self.findings.items() if f.key != key}
        self._build()

    def _build(self) -> None:
        # Swapped whole, never changed in place: threads may be checking meanwhile.
        self._needles = [(s, k) for k in self.keys for s in spellings(k)]
        self._byte_needles = [(s.encode("utf-8"), k) for s, k in self._needles]

    def check(self, text: str | bytes | None, where: str, channel: str) -> None:
        if not text:
            return
        self.scanned[channel] = self.scanned.get(channel, 0) + 1
        needles = self._byte_needles if isinstance(text, bytes) else self._needles
        for spelling, key in needles:
            if spelling in text and len(self.findings) < MAX_FINDINGS:
                self.findings.setdefault((key, where), Finding(self.keys.get(key, "?"), key, where))

    def check_exception(self, exc: BaseException | None, where: str, channel: str) -> None:
        self.check(exception_text(exc), where, channel)

    def check_record(self, record: logging.LogRecord, where: str) -> None:
        self.check(record_text(record), f"{where}: log record {record.name} {record.levelname}", "log records")

    def check_file(self, path: Path, where: str) -> None:
        longest = max((len(s) for s, _ in self._byte_needles), default=1)
        self.scanned["files"] = self.scanned.get("files", 0) + 1
        try:
            with path.open("rb") as handle:
                head = tail = b""
                while chunk := handle.read(CHUNK):
                    head = head or chunk[:len(SQLITE_HEADER)]
                    # The overlap keeps a key cut by a chunk boundary whole.
                    self.check(tail + chunk, where, "file chunks")
                    tail = chunk[-(longest - 1):] if longest > 1 else b""
        except OSError:
            return  # removed while walking, or not readable: nothing the run can have left there
        if head == SQLITE_HEADER:
            self.check_journal(path, where)

    def check_journal(self, path: Path, where: str) -> None:
        """Row by row as well: a long value spills onto overflow pages, which
        can cut a key in two in the file's bytes."""
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
                tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in tables:
                    rows = db.execute(f'SELECT * FROM "{table}"')
                    while batch := rows.fetchmany(1000):
                        text = "\n".join("\x1f".join(_cell(v) for v in row) for row in batch)
                        self.check(text, f"{where}: table {table}", "journal rows")
        except sqlite3.Error:
            pass  # not a database after all, or one a killed run left unreadable: its bytes were scanned

    def check_tree(self, root: Path) -> None:
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if not produced_elsewhere(Path(directory) / d)]
            for name in files:
                path = Path(directory) / name
                if path.suffix not in INPUT_SUFFIXES and not path.is_symlink():
                    self.check_file(path, str(path.relative_to(root)))

    def report(self) -> str:
        lines = [str(f) for f in self.findings.values()]
        if len(lines) >= MAX_FINDINGS:
            lines.append(f"(only the first {MAX_FINDINGS} findings were kept)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Scanner: {len(self.keys)} keys, {len(self.findings)} findings>"


def produced_elsewhere(directory: Path) -> bool:
    """A virtualenv, an installed distribution or a copy of a source tree:
    what is in it came from somewhere else, not from a run."""
    if directory.name in NOT_OUTPUT_DIRS or directory.suffix in (".dist-info", ".egg-info"):
        return True
    return any((directory / marker).exists() for marker in NOT_OUTPUT_MARKERS)


def _cell(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def exception_text(exc: BaseException | None) -> str:
    parts, seen = [], set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            parts.extend(traceback.format_exception_only(type(current), current))
            parts.append(repr(current))
        except Exception:  # a broken __str__ is the test's business, not the scan's
            continue
        pending += [current.__cause__, current.__context__, *getattr(current, "exceptions", ())]
    return "".join(parts)


def record_text(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # logging reports a malformed record itself; scan its parts
        text = f"{record.msg!r} {record.args!r}"
    if record.exc_info and record.exc_info[1] is not None:
        text += "\n" + (record.exc_text or exception_text(record.exc_info[1]))
    if record.stack_info:
        text += "\n" + record.stack_info
    return text


def _arb_command(args: Any) -> bool:
    if isinstance(args, (str, bytes, os.PathLike)):
        return False
    argv = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in args]
    return (any(a == "-m" and b == "arb" for a, b in zip(argv, argv[1:]))
            or bool(argv) and os.path.basename(str(argv[0])) == "arb")


def _invoked(cli: Any, args: Any) -> str:
    argv = args.split() if isinstance(args, str) else list(args or ())
    if argv and not str(argv[0]).startswith("-"):
        return str(argv[0])
    return getattr(cli, "name", None) or "a command"


def _command_label(args: Any) -> str:
    if isinstance(args, (str, bytes)):
        return "a shell command"
    argv = [os.path.basename(os.fspath(a)) if i == 0 else os.fspath(a) for i, a in enumerate(args)]
    return " ".join(str(a) for a in argv[:4])


class SecretScan:
    """The plugin object: hooks pytest and the standard library, feeds a :class:`Scanner`."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.scanner = Scanner()
        self.current = "outside any test"
        self.final_check_ran = False
        self._undo: list[Callable[[], None]] = []
        self._discarded = itertools.count()

    # --- set-up -------------------------------------------------------------------------
    def _patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, make(original))
        self._undo.append(lambda: setattr(owner, name, original))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.scanner.add(emulator_keys())
        self.scanner.add(corpus_keys())
        self._patch(logging.Logger, "callHandlers", self._wrap_call_handlers)
        self._patch(subprocess.Popen, "__init__", self._wrap_popen_init)
        self._patch(subprocess.Popen, "communicate", self._wrap_communicate)
        # typer's runner is its own class in recent typer, click's under another name
        # in older ones (click itself is not installed beside recent typer): each found is wrapped.
        for runner in {typer.testing.CliRunner, *_click_runner()}:
            if "invoke" in runner.__dict__:
                self._patch(runner, "invoke", self._wrap_invoke)
        self._patch(CaptureFixture, "readouterr", self._wrap_readouterr)
        self._patch(ExceptionInfo, "fill_unfilled", self._wrap_fill_unfilled)
        # pytest's own hooks are in place by now; these wrap and call them.
        self._patch(threading, "excepthook", self._wrap_excepthook)
        self._patch(sys, "unraisablehook", self._wrap_unraisablehook)

    def pytest_unconfigure(self) -> None:
        while self._undo:
            self._undo.pop()()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        last = [i for i in items if i.name == FINAL_CHECK and getattr(i, "path", Path()).name == FINAL_MODULE]
        items[:] = [i for i in items if i not in last] + last

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Helper modules the test modules import count too: ``tests/emulated.py`` and the like.
        self.scanner.add(module_keys(modules_under(TESTS)))

    # --- what the run produces --------------------------------------------------------
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.current = nodeid

    def pytest_runtest_logfinish(self) -> None:
        self.current = "outside any test"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        where = f"{report.nodeid} ({report.when})"
        for title, content in report.sections:
            self.scanner.check(content, f"{where}: {title}", "captured sections")
        if report.longrepr is not None:
            self.scanner.check(str(report.longrepr), f"{where}: failure report", "failure reports")
        if report.nodeid.endswith(f"::{FINAL_CHECK}") and report.when == "call":
            self.final_check_ran = True

    def pytest_warning_recorded(self, warning_message: Any, nodeid: str) -> None:
        # Thread and unraisable exceptions in a test reach pytest as warnings, traceback included.
        self.scanner.check(str(warning_message.message), f"{nodeid or self.current}: warning", "warnings")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.scanner.findings and not self.final_check_ran:
            terminalreporter.write_sep("=", "test keys found in outputs (secret scan)", red=True)
            terminalreporter.write_line(self.scanner.report())
        elif self.config.option.verbose > 0:
            counts = ", ".join(f"{n} {channel}" for channel, n in sorted(self.scanner.scanned.items()))
            terminalreporter.write_line(f"secret scan: {len(self.scanner.keys)} test keys; checked {counts}")

    # --- wrappers ---------------------------------------------------------------------
    def _wrap_call_handlers(self, original: Callable) -> Callable:
        # A handler on the root logger would miss ``arb``'s records while the CLI
        # runs (``setup_logging`` stops them propagating); every record passes here.
        @functools.wraps(original)
        def call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            self.scanner.check_record(record, self.current)
            return original(logger, record)

        return call_handlers

    def _wrap_popen_init(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def init(popen: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
            if _arb_command(args) and subprocess.DEVNULL in (kwargs.get("stdout"), kwargs.get("stderr")):
                return self._popen_keeping_discarded(original, popen, args, rest, kwargs)
            return original(popen, args, *rest, **kwargs)

        return init

    def _popen_keeping_discarded(self, original: Callable, popen: subprocess.Popen, args: Any, rest: tuple,
                                 kwargs: dict) -> None:
        """The child's discarded output goes to a file the end of the run scans;
        the test still sees ``stdout``/``stderr`` as ``None``, as with ``DEVNULL``."""
        folder = self.config._tmp_path_factory.getbasetemp() / DEVNULL_DIR
        folder.mkdir(exist_ok=True)
        test = re.sub(r"[^\w.-]+", "-", self.current.rpartition("::")[2])[:80]
        number = next(self._discarded)
        opened = []
        for stream in ("stdout", "stderr"):
            if kwargs.get(stream) == subprocess.DEVNULL:
                handle = open(folder / f"{number:04d}-{test}-{stream}.log", "wb")
                opened.append(handle)
                kwargs[stream] = handle
        try:
            original(popen, args, *rest, **kwargs)
        finally:
            for handle in opened:
                handle.close()

    def _wrap_communicate(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def communicate(popen: subprocess.Popen, *args: Any, **kwargs: Any) -> tuple:
            where = f"{self.current}: output of {_command_label(popen.args)}"
            try:
                out, err = original(popen, *args, **kwargs)
            except subprocess.TimeoutExpired as timeout:
                self.scanner.check(timeout.output, where, "subprocess output")
                self.scanner.check(timeout.stderr, where, "subprocess output")
                raise
            self.scanner.check(out, where, "subprocess output")
            self.scanner.check(err, where, "subprocess output")
            return out, err

        return communicate

    def _wrap_invoke(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def invoke(runner: Any, cli: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(runner, cli, *args, **kwargs)
            where = f"{self.current}: CliRunner result of {_invoked(cli, args[0] if args else kwargs.get('args'))}"
            self.scanner.check(result.output, where, "CLI output")
            with contextlib.suppress(ValueError):  # click before 8.2 mixes stderr into output
                self.scanner.check(result.stderr, where, "CLI output")
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                self.scanner.check_exception(result.exception, where, "CLI output")
            return result

        return invoke

    def _wrap_readouterr(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def readouterr(fixture: CaptureFixture) -> Any:
            result = original(fixture)
            where = f"{self.current}: output read through a capture fixture"
            self.scanner.check(result.out, where, "captured sections")
            self.scanner.check(result.err, where, "captured sections")
            return result

        return readouterr

    def _wrap_fill_unfilled(self, original: Callable) -> Callable:
        @functools.wraps(original)
        def fill_unfilled(info: ExceptionInfo, exc_info: tuple) -> None:
            self.scanner.check_exception(exc_info[1], f"{self.current}: exception caught by pytest.raises",
                                         "exceptions")
            return original(info, exc_info)

        return fill_unfilled

    def _wrap_excepthook(self, original: Callable) -> Callable:
        def excepthook(args: threading.ExceptHookArgs) -> None:
            name = args.thread.name if args.thread is not None else "a thread"
            self.scanner.check_exception(args.exc_value, f"{self.current}: exception escaping {name}", "exceptions")
            return original(args)

        return excepthook

    def _wrap_unraisablehook(self, original: Callable) -> Callable:
        def unraisablehook(unraisable: Any) -> None:
            self.scanner.check_exception(unraisable.exc_value, f"{self.current}: unraisable exception",
                                         "exceptions")
            return original(unraisable)

        return unraisablehook


def register(config: pytest.Config) -> None:
    config.pluginmanager.register(SecretScan(config), "secret-scan")


def plugin(config: pytest.Config) -> SecretScan:
    found = config.pluginmanager.get_plugin("secret-scan")
    assert isinstance(found, SecretScan), "the secret scan plugin is not registered (tests/conftest.py)"
    return found


def _click_runner() -> list[type]:
    try:
        import click.testing
    except ImportError:
        return []
    return [click.testing.CliRunner]
