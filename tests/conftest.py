"""Shared pytest setup for arb's own suite.

The fixtures plugin authors use live in ``arb.testing`` (loaded through the
``pytest11`` entry point); this file holds only what the suite itself needs.
"""

import secret_scan

#: Markers this suite uses; ``--strict-markers`` refuses any other.  None of
#: them is deselected by default: ``-m "not slow"`` is for a quick local run.
MARKERS = {
    "slow": "builds a wheel and a fresh virtualenv, or otherwise takes a minute",
}


def pytest_configure(config):
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    # No test key may reach a log, report, journal or summary; see secret_scan.py.
    secret_scan.register(config)


import pytest


@pytest.fixture(autouse=True)
def _journal_in_tmp(tmp_path_factory, monkeypatch):
    """Sessions run by tests journal into a fresh folder per test, never into
    the user's ~/.local/state/arb (the default journal path follows XDG_STATE_HOME;
    subprocesses inherit it)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
