"""pytest helpers for arb and for authors of arb plugins.

Installed as a pytest plugin (entry point ``pytest11: arb``), so a
third-party package's tests get these fixtures by installing arb.  The plain
functions (:func:`order_check`, :func:`write_distribution`, :func:`run_arb`)
are imported: ``from arb.testing import order_check``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pytest

from arb.guard import OrderCheck
from arb.models import Side
from arb.plugins import PluginRegistry, load_registry

# Rich colours and wraps output for terminals; a subprocess is no terminal,
# but these variables would make it behave like one.
_TERMINAL_HINTS = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE")


@pytest.fixture
def arb_registry() -> PluginRegistry:
    """A fresh registry of the installed plugins (nothing is shared between tests)."""
    return load_registry()


@pytest.fixture
def arb_registry_with() -> Callable[..., PluginRegistry]:
    """Build a registry of the installed plugins plus in-process ones:
    ``arb_registry_with(("my-plugin", module_or_object), ...)``;
    ``entry_points=False`` leaves the installed ones out."""

    def build(*extra: tuple[str, object], entry_points: bool = True) -> PluginRegistry:
        return load_registry(entry_points=entry_points, extra=extra)

    return build


_ORDER = OrderCheck(exchange="binance", symbol="BTCUSDT", side=Side.BUY, quantity=0.0001, price=95_000.0,
                    notional=9.5, balance=1_000.0, daily_pnl=0.0, now_ms=1_767_225_600_000.0, data_age_ms=0.0)


def order_check(**changes: Any) -> OrderCheck:
    """An :class:`arb.guard.OrderCheck` every built-in rule allows under
    permissive limits (a 9.5 USDT Binance BTC buy on a 1,000 USDT account),
    with ``changes`` applied: ``order_check(balance=20.0)``."""
    return replace(_ORDER, **changes)


def write_distribution(root: Path, dist_name: str, version: str, modules: dict[str, str],
                       entry_points: Iterable[tuple[str, str]]) -> Path:
    """Lay out a minimal installed distribution under ``root`` (a ``sys.path``
    entry): its modules plus a ``.dist-info`` with real entry-point metadata
    in the ``arb`` group, what ``pip install`` leaves behind.  Returns ``root``.

    ``modules`` maps paths relative to ``root`` (``"my_rule.py"``,
    ``"my_pkg/__init__.py"``) to source text; ``entry_points`` lists
    ``(entry point name, module)`` pairs."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, source in modules.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    info = root / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n",
                                   encoding="utf-8")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points)
    (info / "entry_points.txt").write_text(f"[arb]\n{lines}\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")
    return root


def run_arb(*args: str, path: Iterable[Path | str] = (), cwd: Path | str | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m arb ARGS`` in a fresh process, with ``path`` entries
    (roots made by :func:`write_distribution`) ahead of ``PYTHONPATH``.

    Entry points are read once per process, so a subprocess is the only way
    to see a distribution written during the test.  Output is captured as
    text, plain (no colour) and wide enough that lines do not wrap."""
    environ = {k: v for k, v in os.environ.items() if k not in _TERMINAL_HINTS}
    environ.update({"COLUMNS": "240", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    environ.update(env or {})
    entries = [str(p) for p in path]
    if environ.get("PYTHONPATH"):
        entries.append(environ["PYTHONPATH"])
    if entries:
        environ["PYTHONPATH"] = os.pathsep.join(entries)
    return subprocess.run([sys.executable, "-m", "arb", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout, check=False)
