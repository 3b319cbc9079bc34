"""Registers Upbit with arb."""

from arb import hookimpl
from arb.specs import ExchangeSpec

from arb_upbit.rules import krw_market_rules


def symbol_for(asset: str) -> str:
    return f"KRW-{asset.upper()}"


def create_client(settings, secrets):
    """``(settings, secrets) -> UpbitClient``; see :func:`arb_upbit.client.create_client`."""
    # Imported on use: listing plugins should not load HTTP, WebSocket and JWT code.
    from arb_upbit.client import create_client as build

    return build(settings, secrets)


@hookimpl
def arb_register_exchanges(register):
    register(ExchangeSpec(
        name="upbit",
        quote_currency="KRW",
        symbol_for=symbol_for,
        paper_rules=krw_market_rules,
        create_client=create_client,
        default_settings={
            "rest_url": "https://api.upbit.com",
            "ws_url": "wss://api.upbit.com/websocket/v1",
            "api_key_env": "UPBIT_ACCESS_KEY",
            "secret_key_env": "UPBIT_SECRET_KEY",
        },
        description="Upbit KRW spot markets",
    ))
