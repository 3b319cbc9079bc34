"""Registers Binance with arb."""

from typing import Any, Mapping

from arb import hookimpl
from arb.specs import ExchangeSpec

from arb_binance.rules import usdt_market_rules


def symbol_for(asset: str) -> str:
    return f"{asset.upper()}USDT"


def create_client(settings: Mapping[str, Any], secrets: Mapping[str, str]):
    """The live client.  Imported here, not at plugin load, so listing
    plugins or paper trading never pulls in the HTTP and WebSocket stack."""
    from arb_binance.client import BinanceClient

    return BinanceClient.from_settings(settings, secrets)


@hookimpl
def arb_register_exchanges(register):
    register(ExchangeSpec(
        name="binance",
        quote_currency="USDT",
        symbol_for=symbol_for,
        paper_rules=usdt_market_rules,
        create_client=create_client,
        default_settings={
            "rest_url": "https://api.binance.com",
            "ws_url": "wss://stream.binance.com:9443",
            "api_key_env": "BINANCE_API_KEY",
            "secret_key_env": "BINANCE_SECRET_KEY",
        },
        description="Binance spot USDT markets",
    ))
