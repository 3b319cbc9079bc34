"""Registers Binance with arb."""

from arb import hookimpl
from arb.specs import ExchangeSpec

from arb_binance.rules import usdt_market_rules


def symbol_for(asset: str) -> str:
    return f"{asset.upper()}USDT"


@hookimpl
def arb_register_exchanges(register):
    register(ExchangeSpec(
        name="binance",
        quote_currency="USDT",
        symbol_for=symbol_for,
        paper_rules=usdt_market_rules,
        default_settings={
            "rest_url": "https://api.binance.com",
            "ws_url": "wss://stream.binance.com:9443",
            "api_key_env": "BINANCE_API_KEY",
            "secret_key_env": "BINANCE_SECRET_KEY",
        },
        description="Binance spot USDT markets",
    ))
