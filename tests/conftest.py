"""Shared pytest setup for arb's own suite.

The fixtures plugin authors use live in ``arb.testing`` (loaded through the
``pytest11`` entry point); this file holds only what the suite itself needs.
"""

#: Markers this suite uses; ``--strict-markers`` refuses any other.  None of
#: them is deselected by default: ``-m "not slow"`` is for a quick local run.
MARKERS = {
    "slow": "builds a wheel and a fresh virtualenv, or otherwise takes a minute",
}


def pytest_configure(config):
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
