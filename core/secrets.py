"""Reading API keys: from the environment only, and never echoed.

A config names the variables (``api_key_env``, ``secret_key_env``); this
module is the one place that reads their values.  Messages name variables,
never values.
"""

from __future__ import annotations

import os
from typing import Mapping


class MissingSecret(LookupError):
    pass


def exchange_settings(defaults: Mapping[str, object], configured: Mapping[str, object]) -> dict[str, object]:
    """The plugin's defaults overlaid with the config's ``exchanges.<name>``."""
    return {**defaults, **configured}


def read_secrets(exchange: str, settings: Mapping[str, object], *, required: bool,
                 environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    secrets: dict[str, str] = {}
    missing = []
    for key, setting in (("api_key", "api_key_env"), ("secret_key", "secret_key_env")):
        name = settings.get(setting)
        value = env.get(str(name)) if name else None
        if value:
            secrets[key] = value
        elif name:
            missing.append(f"${name}")
    if required and missing:
        raise MissingSecret(f"{exchange}: environment variable(s) {', '.join(missing)} not set "
                            f"(exchanges.{exchange}.api_key_env / secret_key_env name them)")
    return secrets
