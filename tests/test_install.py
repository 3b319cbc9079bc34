"""A real, non-editable install works: wheel built from the source tree,
installed into a fresh virtualenv with its dependencies from the package
index, and used from a directory that is not the repository.

This is what catches a schema left out of the wheel, an import that only
works from the source tree, or an entry point missing from the metadata.
It needs the package index; if the index cannot be reached the test fails
(saying so) instead of skipping: an install nobody checked is not a pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PAPER_CONFIG = REPO / "configs" / "live" / "arbitrage_live_paper_example.yaml"
GUARD_RULES = {"enabled": 10, "allowed_symbols": 20, "min_account_balance": 30, "max_daily_loss": 40,
               "max_notional_per_trade": 50}
OPTIONAL_GUARD_RULES = {"stale_data": 15, "premium_sanity": 25, "open_exposure": 55, "order_rate": 65}

# Left out of the copy the wheel is built from: VCS data, local venvs and
# build leftovers (setuptools writes build/ and *.egg-info into the tree it
# builds, which must not be the shared working tree).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                    "*.pyc", ".pytest_cache", ".hypothesis", ".ci")

NETWORK_HINTS = ("Could not find a version", "No matching distribution", "ConnectionError", "NewConnectionError",
                 "Max retries exceeded", "Temporary failure in name resolution", "Network is unreachable",
                 "timed out", "ProxyError", "SSLError")

BUILD_TIMEOUT_S = 300
COMMAND_TIMEOUT_S = 120


def clean_env() -> dict[str, str]:
    """The environment minus whatever would let the venv see this interpreter's packages."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")
           and not k.startswith("PYTEST_")}
    env.update({"PYTHONNOUSERSITE": "1", "COLUMNS": "240", "NO_COLOR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return env


def run(args: list[str | Path], *, cwd: Path, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what} did not finish within {timeout:.0f} s: {' '.join(map(str, args))}\n"
                    f"{exc.stdout or ''}{exc.stderr or ''}")


def require_pip_success(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode == 0:
        return
    output = (result.stdout + result.stderr)[-4000:]
    if any(hint in output for hint in NETWORK_HINTS):
        pytest.fail(f"{what} failed: the package index looks unreachable (this test needs it to install "
                    f"arb's dependencies; it fails rather than skips so a broken install is never hidden).\n"
                    f"{output}")
    pytest.fail(f"{what} failed (exit {result.returncode}):\n{output}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build a wheel from a copy of the source tree and install it into a new venv."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    wheels = base / "wheels"
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, source], cwd=base,
                timeout=BUILD_TIMEOUT_S, what="building the wheel")
    require_pip_success(built, "building the wheel (pip wheel --no-deps)")
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    found = sorted(wheels.glob(f"arb-{version}-*.whl"))
    assert len(found) == 1, f"expected one arb {version} wheel, got {[p.name for p in wheels.iterdir()]}"

    venv = base / "venv"
    made = run([sys.executable, "-m", "venv", venv], cwd=base, timeout=COMMAND_TIMEOUT_S,
               what="creating the venv")
    assert made.returncode == 0, made.stdout + made.stderr
    python = venv / "bin" / "python"
    assert python.exists(), f"no interpreter in the new venv: {sorted(p.name for p in venv.iterdir())}"
    installed = run([python, "-m", "pip", "install", found[0]], cwd=base, timeout=BUILD_TIMEOUT_S,
                    what="installing the wheel")
    require_pip_success(installed, "installing the wheel and its dependencies into a fresh venv")

    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return {"venv": venv, "python": python, "arb": venv / "bin" / "arb", "cwd": elsewhere, "wheel": found[0]}


def test_the_installed_package_comes_from_the_venv_not_the_source_tree(installed):
    result = run([installed["python"], "-c", "import arb, arb_guards; print(arb.__file__); print(arb_guards.__file__)"],
                 cwd=installed["cwd"], timeout=COMMAND_TIMEOUT_S, what="importing arb")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.split():
        path = Path(line).resolve()
        assert path.is_relative_to(installed["venv"].resolve()), f"{path} is not inside the venv"
        assert not path.is_relative_to(REPO), f"{path} comes from the source tree"


def test_the_schema_file_is_inside_the_installed_package(installed):
    script = ("import importlib.resources as r, json; p = r.files('arb.schemas').joinpath('config.schema.json'); "
              "print(p); print(json.loads(p.read_text())['title'])")
    result = run([installed["python"], "-c", script], cwd=installed["cwd"], timeout=COMMAND_TIMEOUT_S,
                 what="reading the schema")
    assert result.returncode == 0, result.stderr
    path_line, title = result.stdout.splitlines()
    path = Path(path_line).resolve()
    assert path.is_file()
    assert path.is_relative_to(installed["venv"].resolve()), f"schema at {path}, outside the venv"
    assert path.parent.name == "schemas" and path.parent.parent.name == "arb", path
    assert title == "arb session config"


def test_installed_arb_validates_the_shipped_paper_config_from_another_directory(installed):
    result = run([installed["arb"], "validate-config", PAPER_CONFIG], cwd=installed["cwd"],
                 timeout=COMMAND_TIMEOUT_S, what="arb validate-config")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert "all checks passed" in result.stdout, output
    assert re.search(r"^PASS\s+config schema", result.stdout, re.M), output


def test_installed_arb_lists_the_five_guard_rules_from_the_arb_distribution(installed):
    result = run([installed["arb"], "plugins"], cwd=installed["cwd"], timeout=COMMAND_TIMEOUT_S,
                 what="arb plugins")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│").split("│")] if line.startswith("│") else []
        if len(cells) == 7 and cells[1] == "guard_rule":
            plugin, _, provides, order, mandatory, version, origin = cells
            rules[provides] = (int(order), mandatory, origin.split(" ", 1)[0])
    assert rules == {**{name: (order, "yes", "arb") for name, order in GUARD_RULES.items()},
                     **{name: (order, "optional", "arb") for name, order in OPTIONAL_GUARD_RULES.items()}}, \
        result.stdout
