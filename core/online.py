"""``arb validate-config --online``: what only the exchanges can tell us.

Each configured exchange is asked, with the configured keys: is it
reachable, how far is its clock from ours, are the keys accepted, and does
the key carry more power than a trading bot should (withdrawals).
"""

from __future__ import annotations

import time
from typing import Mapping

from arb.config import Config
from arb.errors import AuthError, ExchangeError
from arb.plugins import PluginRegistry
from arb.preflight import FAIL, PASS, SKIP, WARN, Item
from arb.secrets import exchange_settings, read_secrets

#: Binance's default recvWindow; an exchange that names another gets its own.
DEFAULT_RECV_WINDOW_MS = 5000.0


def online_checks(config: Config, registry: PluginRegistry,
                  environ: Mapping[str, str] | None = None) -> list[Item]:
    items: list[Item] = []
    for name in config.exchange_names:
        reg = registry.exchanges.get(name)
        if reg is None or reg.spec.create_client is None:
            items.append(Item(f"{name} online", FAIL, "no live client installed for this exchange"))
            continue
        settings = exchange_settings(reg.spec.default_settings, config.exchanges.get(name, {}))
        secrets = read_secrets(name, settings, required=False, environ=environ)
        try:
            client = reg.spec.create_client(settings, secrets)
        except (ValueError, ExchangeError) as exc:
            items.append(Item(f"{name} online", FAIL, f"client could not be built: {exc}"))
            continue
        try:
            items += _check_exchange(name, client, settings, bool(secrets.get("api_key") and secrets.get("secret_key")),
                                     _probe_symbol(config, registry, name))
        finally:
            client.close()
    return items


def _probe_symbol(config: Config, registry: PluginRegistry, name: str) -> str:
    if name == config.fx_exchange:
        return config.fx_symbol
    return registry.exchange(name).symbol_for(config.assets[0])


def _check_exchange(name: str, client, settings: Mapping[str, object], has_keys: bool, symbol: str) -> list[Item]:
    items = []
    try:
        started = time.monotonic()
        client.order_book(symbol)
        items.append(Item(f"{name} reachable", PASS, f"{symbol} book in {(time.monotonic() - started) * 1000:.0f} ms"))
    except ExchangeError as exc:
        return [Item(f"{name} reachable", FAIL, str(exc))]
    try:
        before = time.time() * 1000
        server = client.server_time_ms()
        after = time.time() * 1000
    except ExchangeError as exc:
        items.append(Item(f"{name} clock", FAIL, f"server time unavailable: {exc}"))
    else:
        if server is None:
            items.append(Item(f"{name} clock", SKIP, "the exchange publishes no clock; its auth does not use time"))
        else:
            skew = server - (before + after) / 2
            window = float(settings.get("recv_window_ms") or DEFAULT_RECV_WINDOW_MS)
            ok = abs(skew) < window
            items.append(Item(f"{name} clock", PASS if ok else FAIL,
                              f"skew {skew:+.0f} ms (recvWindow {window:.0f} ms)"
                              + ("" if ok else ": fix the system clock (NTP)")))
    if not has_keys:
        items.append(Item(f"{name} keys", FAIL, "API key or secret not set in the environment"))
        return items
    try:
        client.balances()
        items.append(Item(f"{name} keys", PASS, "accepted (balances readable)"))
    except AuthError as exc:
        items.append(Item(f"{name} keys", FAIL, f"rejected: {exc}"))
        return items
    except ExchangeError as exc:
        items.append(Item(f"{name} keys", FAIL, f"could not be checked: {exc}"))
        return items
    for warning in client.key_warnings():
        # A trading bot's key has no business moving money out.
        withdraw = "withdraw" in warning.lower()
        items.append(Item(f"{name} key permissions", FAIL if withdraw else WARN, warning))
    return items
