"""arb: cross-exchange arbitrage between Upbit (KRW) and Binance (USDT).

Plugin authors import :data:`hookimpl` from here; everything else lives in
small modules named after what they hold.
"""

from arb.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
