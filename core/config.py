"""Loading a YAML config: parse, validate against the JSON Schema, fill defaults.

Every problem is reported as ``path (line N): message`` and nothing runs on
a config with a problem.  Defaults live in the schema only, so the schema
file is the one place that says what an omitted key means.

This module is the public entry: the rest of arb imports config names from
here, while each step lives in its own ``arb.config_*`` module.
"""

from __future__ import annotations

from pathlib import Path

from arb.config_build import build_config
from arb.config_errors import ConfigError
from arb.config_schema import apply_defaults, schema, schema_problems
from arb.config_semantics import semantic_problems
from arb.config_settings import (LIVE_MODES, MODES, Config, JournalSettings, LegRiskSettings, MetricsSettings,
                                 StrategySettings)
from arb.config_values import value_problems
from arb.config_yaml import MAX_DEPTH, MAX_NODES, parse_yaml

__all__ = [
    "LIVE_MODES", "MAX_DEPTH", "MAX_NODES", "MODES", "Config", "ConfigError", "JournalSettings",
    "LegRiskSettings", "MetricsSettings", "StrategySettings", "apply_defaults", "load_config",
    "parse_config", "schema",
]


def load_config(path: str | Path) -> Config:
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(source, ["is a directory, not a config file"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror or exc.__class__.__name__}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, [f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be "
                                   "decoded); save the file as UTF-8"]) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> Config:
    data, lines = parse_yaml(text, source)
    problems = value_problems(data, "", lines) + schema_problems(data, lines)
    problems = list(dict.fromkeys(problems))
    if problems:
        raise ConfigError(source, problems)
    apply_defaults(schema(), data)
    config = build_config(data, source)
    problems = semantic_problems(config, lines)
    if problems:
        raise ConfigError(source, problems)
    return config
