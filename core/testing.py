"""pytest helpers for arb and for authors of arb plugins.

Installed as a pytest plugin (entry point ``pytest11: arb``), so a
third-party package's tests get these fixtures by installing arb.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import pytest

from arb.plugins import PluginRegistry, load_registry


@pytest.fixture
def arb_registry() -> PluginRegistry:
    """A fresh registry of the installed plugins (nothing is shared between tests)."""
    return load_registry()


@pytest.fixture
def arb_registry_with() -> Callable[..., PluginRegistry]:
    """Build a registry of the installed plugins plus in-process ones:
    ``arb_registry_with(("my-plugin", module_or_object), ...)``."""

    def build(*extra: tuple[str, object], entry_points: bool = True) -> PluginRegistry:
        return load_registry(entry_points=entry_points, extra=extra)

    return build


def write_distribution(root: Path, dist_name: str, version: str, modules: dict[str, str],
                       entry_points: Iterable[tuple[str, str]]) -> Path:
    """Lay out a minimal installed distribution under ``root`` (a ``sys.path``
    entry): its modules plus a ``.dist-info`` with real entry-point metadata,
    exactly what ``pip install`` leaves behind.  Returns ``root``."""
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
