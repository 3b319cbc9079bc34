"""A corpus of malformed and dangerous configs: each one must be refused
with exit code 2, a message naming the problem, no traceback, and no echo of
a secret pasted into it.

Every file in ``tests/bad_configs/`` starts with ``# expect: <text>``, a
substring the output must contain.  Optional marker lines:

* ``# secret: <value>``: a secret-looking value in the file that no output may contain;
* ``# validate-only: <why>``: the config is runnable (it fails closed, e.g. an
  empty whitelist blocks every order) so only ``arb validate-config`` must
  refuse it; ``arb run`` is not exercised (it would start a live session).

Everything else is refused by ``arb run`` too, before a session starts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arb.cli import app

CORPUS = Path(__file__).parent / "bad_configs"
FILES = sorted(CORPUS.glob("*.yaml"))
# Values that look like credentials, whatever the marker lines say.
SECRET_LIKE = re.compile(rb"sk-live-[A-Za-z0-9]+|AKIA[A-Z0-9]{12,}")
# Keep live-mode checks deterministic: none of these may come from the developer's shell.
KEY_VARS = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_SECRET_KEY")


def _markers(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in path.read_bytes().splitlines():
        line = raw.decode("utf-8", errors="replace")
        match = re.match(r"#\s*(expect|secret|validate-only):\s*(.*?)\s*$", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def _secrets(path: Path, markers: dict[str, list[str]]) -> list[str]:
    body = path.read_bytes()
    values = list(markers.get("secret", []))
    values += [m.decode() for m in SECRET_LIKE.findall(body)]
    return sorted(set(values))


def test_corpus_is_big_enough_and_well_formed():
    assert len(FILES) >= 30
    for path in FILES:
        markers = _markers(path)
        assert path.read_bytes().startswith(b"# expect: "), f"{path.name}: first line must be '# expect: ...'"
        assert len(markers["expect"]) == 1 and markers["expect"][0], path.name
        for secret in markers.get("secret", []):
            # The marker must name a value that is really in the config body, or the check proves nothing.
            body_lines = [l for l in path.read_bytes().splitlines() if not l.startswith(b"#")]
            assert any(secret.encode() in l for l in body_lines), f"{path.name}: secret {secret!r} not in body"


def _invoke(args: list[str]):
    runner = CliRunner()
    return runner.invoke(app, args, env={var: None for var in KEY_VARS}, catch_exceptions=True)


def _assert_refused(result, path: Path, expect: str, secrets: list[str], command: str) -> None:
    output = result.stdout + result.stderr
    where = f"{command} {path.name}:\n{output}"
    # An exception that escaped the command shows up here, not in the output.
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{where}\nunhandled {result.exception!r}"
    assert result.exit_code == 2, where
    assert expect in output, where
    assert "Traceback" not in output, where
    for secret in secrets:
        assert secret not in output, f"{where}\nsecret {secret!r} leaked"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_validate_config_refuses(path: Path):
    markers = _markers(path)
    result = _invoke(["validate-config", str(path)])
    _assert_refused(result, path, markers["expect"][0], _secrets(path, markers), "validate-config")


RUNNABLE = [p for p in FILES if "validate-only" not in _markers(p)]


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.stem for p in RUNNABLE])
def test_run_refuses_before_starting(path: Path):
    markers = _markers(path)
    # --max-runtime-seconds only bounds the test if the product wrongly starts a session.
    result = _invoke(["run", "--config", str(path), "--max-runtime-seconds", "2"])
    _assert_refused(result, path, markers["expect"][0], _secrets(path, markers), "run")
    assert "Session summary" not in result.stdout
    assert "started" not in result.stderr


def test_both_kinds_are_in_the_corpus():
    validate_only = [p for p in FILES if "validate-only" in _markers(p)]
    assert len(RUNNABLE) >= 30
    assert {p.stem for p in validate_only} >= {"live_empty_whitelist", "live_scale_below_exchange_minimum"}


def test_secret_values_are_in_the_files_checked():
    # The secret-leak assertions above only mean something if the corpus holds secrets.
    with_secrets = [p.stem for p in FILES if _secrets(p, _markers(p))]
    assert {"secret_key_in_exchange", "api_key_env_holds_secret", "secret_env_uppercase_key",
            "secret_in_market_options", "password_top_level"} <= set(with_secrets)
