"""Checks on config values that a JSON Schema cannot express.

They run over the whole document, free-form option sections included: a
secret pasted anywhere is refused, and so is a number that is not finite
(``.nan`` passes every JSON Schema bound and would switch a limit off).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from arb.config_errors import where

# A key named like this holds a secret; only environment variable names may.
SECRET_KEY = re.compile(r"(secret|api_?key|access_?key|password|passphrase|token)(_?key)?$", re.IGNORECASE)


def value_problems(data: Any, path: str, lines: Mapping[str, int]) -> list[str]:
    problems: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            key = str(key)
            child = f"{path}.{key}" if path else key
            if SECRET_KEY.search(key):
                problems.append(f"{where(child, lines)}: looks like a secret; secrets are read only from "
                                f"environment variables: put the variable's NAME in api_key_env / secret_key_env")
                continue
            if key.endswith("_env") and isinstance(value, str) and _looks_like_secret_value(value):
                problems.append(f"{where(child, lines)}: looks like a secret value, not the NAME of an "
                                "environment variable (like UPBIT_SECRET_KEY); secrets never go in a config")
                continue
            problems += value_problems(value, child, lines)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            problems += value_problems(item, f"{path}[{i}]", lines)
    elif isinstance(data, float) and not math.isfinite(data):
        problems.append(f"{where(path, lines)}: must be a finite number, got {data}")
    return problems


def _looks_like_secret_value(value: str) -> bool:
    """An ``*_env`` value that matches the variable-name pattern but reads like
    a key (``AKIAIOSFODNN7EXAMPLE``): long, digits in it, no underscore."""
    return len(value) >= 16 and "_" not in value and any(c.isdigit() for c in value)
