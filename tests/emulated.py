"""The exchange emulators as this suite sets them up, in one place.

Plain functions and context managers, plus a few fixtures that test modules
import by name (``from emulated import upbit_emu``): pytest picks a fixture
up from a module's namespace, and each one here carries the name the tests
ask for (``emu``, ``emulator``, ``client``, ``make_client``).

Two markets:

* the client tests' markets: the Upbit emulator's default books, and a
  Binance emulator with hand-made BTCUSDT and XRPUSDT books whose amounts
  the Binance tests work out by hand;
* the live market (:func:`premium_exchanges`): Upbit 2 % dear over Binance,
  for engines and ``arb run`` sessions that trade against both emulators.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from arb.emulation import Fault

from arb_binance.client import BinanceClient
from arb_binance.emulator import BinanceEmulator
from arb_upbit.client import UpbitClient
from arb_upbit.emulator import UpbitEmulator
from arb_upbit.testing import client_for, running_emulator

Levels = list[tuple[float, float]]


def ladder(best: float, step: float, size: float, levels: int = 10) -> Levels:
    """``levels`` price levels of ``size`` from ``best``, ``step`` apart (negative for bids)."""
    return [(best + i * step, size) for i in range(levels)]


# --- Upbit client tests -------------------------------------------------------------------


@pytest.fixture(name="emu")
def upbit_emu() -> Iterator[UpbitEmulator]:
    """The Upbit emulator's defaults: KRW-BTC asks from 140,000,000 KRW and
    bids from 139,999,000, 1,000 KRW apart, 0.05 BTC a level; fee 0.05 %;
    10,000,000 KRW and 0.1 BTC."""
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture(name="client")
def upbit_client(emu: UpbitEmulator) -> Iterator[UpbitClient]:
    client = client_for(emu)
    yield client
    client.close()


#: The ways an answer to an order POST gets lost after Upbit took the order
#: (or may have): the client must settle each by looking the order up.
lose_upbit_order_answer = pytest.mark.parametrize("lose_answer", [
    lambda emu: emu.inject(Fault("POST", "/v1/orders", "timeout", delay_s=1.5)),
    lambda emu: emu.inject(Fault("POST", "/v1/orders", "drop")),
    lambda emu: emu.inject(Fault("POST", "/v1/orders", "malformed")),
    lambda emu: emu.answer_after_processing("POST", "/v1/orders", 500),
], ids=["timeout", "drop", "malformed", "500-after-processing"])


# --- Binance client tests -----------------------------------------------------------------


def binance_client_for(emulator: BinanceEmulator, *, keys: bool = True, **options: Any) -> BinanceClient:
    """A client of ``emulator``, with its keys unless ``keys`` is false (the
    Binance twin of :func:`arb_upbit.testing.client_for`)."""
    options.setdefault("timeout_s", 2.0)
    if keys:
        options.setdefault("api_key", emulator.api_key)
        options.setdefault("secret_key", emulator.secret_key)
    return BinanceClient(emulator.rest_url, emulator.ws_url, **options)


@pytest.fixture(name="emulator")
def binance_emulator() -> Iterator[BinanceEmulator]:
    """100,000 USDT, 1 BTC and 10,000 XRP.  BTCUSDT bids 0.5 at 50,000 and 1.0
    at 49,990, asks 0.2 at 50,010 and 0.3 at 50,020; XRPUSDT 10,000 a side
    at 0.5000 / 0.5001."""
    with BinanceEmulator(balances={"USDT": "100000", "BTC": "1", "XRP": "10000"}) as emulator:
        emulator.set_book("BTCUSDT", [(50000.00, 0.5), (49990.00, 1.0)], [(50010.00, 0.2), (50020.00, 0.3)])
        emulator.set_book("XRPUSDT", [(0.5000, 10000)], [(0.5001, 10000)])
        yield emulator


@pytest.fixture(name="make_client")
def binance_make_client(emulator: BinanceEmulator) -> Iterator[Callable[..., BinanceClient]]:
    """``make_client(keys=True, emu=None, **options)``: clients closed after the test."""
    clients: list[BinanceClient] = []

    def make(keys: bool = True, emu: BinanceEmulator | None = None, **options: Any) -> BinanceClient:
        options.setdefault("sleep", lambda s: None)   # lookups and retries back off instantly
        client = binance_client_for(emu or emulator, keys=keys, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(name="client")
def binance_client(make_client: Callable[..., BinanceClient]) -> BinanceClient:
    return make_client()


# --- the live market ----------------------------------------------------------------------

#: Upbit's KRW-BTC best bid 2 % over Binance's 95,000 USDT ask at 1,400 KRW/USDT.
DEAR_KRW = 135_660_000
#: 95,000 USDT at 1,400 KRW/USDT: the premium is gone.
PAR_KRW = 133_000_000


def set_upbit_btc(upbit: UpbitEmulator, best_bid: float) -> None:
    upbit.set_book("KRW-BTC", ladder(best_bid, -1000, 0.05), ladder(best_bid + 1000, 1000, 0.05))


def premium_exchanges(**upbit_keys: str) -> tuple[UpbitEmulator, BinanceEmulator]:
    """Both emulators, not yet started, Upbit 2 % dear: a session opens one
    pair (sell on Upbit, buy on Binance) and, unless a test moves the book
    to :data:`PAR_KRW`, never closes it.  ``upbit_keys``: ``access_key`` and
    ``secret_key``; a module that checks no key leaks names its own."""
    upbit = UpbitEmulator(balances={"KRW": 5_000_000.0, "BTC": 0.05, "USDT": 0.0}, books={}, **upbit_keys)
    binance = BinanceEmulator(balances={"USDT": "2000", "BTC": "0.05"})
    set_upbit_btc(upbit, DEAR_KRW)
    upbit.set_book("KRW-USDT", ladder(1399, -1, 5000), ladder(1401, 1, 5000))
    binance.set_book("BTCUSDT", ladder(94_990.0, -10.0, 1.0), ladder(95_000.0, 10.0, 1.0))
    return upbit, binance


@contextlib.contextmanager
def running(upbit: UpbitEmulator, binance: BinanceEmulator) -> Iterator[tuple[UpbitEmulator, BinanceEmulator]]:
    """Both emulators serving for the block; whichever started is stopped."""
    with upbit, binance:
        yield upbit, binance


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and key in merged else value
    return merged


def write_live_config(path: Path, upbit: UpbitEmulator, binance: BinanceEmulator, env_prefix: str,
                      **sections: Any) -> dict[str, str]:
    """Write a live_trading config for ``arb run`` against both emulators.

    The strategy and limits are the defaults, spelt out (the assertions
    depend on them): 40 USDT a leg, × dry_run_scale 0.5.  ``sections`` are
    merged over it, dicts key by key (``live_trading={"enabled": False}``).
    The API keys come from ``{env_prefix}_UPBIT_KEY``, ``_UPBIT_SECRET``,
    ``_BINANCE_KEY`` and ``_BINANCE_SECRET``.

    Returns those variables set to the emulators' keys: what the session's
    environment needs, and what must never appear in anything it writes.
    """
    config = {
        "mode": "live_trading",
        "monitoring": {"metrics": {"enabled": False}},  # no fixed port: other runs may hold it
        "pairs": [{"asset": "BTC"}],
        "exchanges": {
            "upbit": {"rest_url": upbit.rest_url, "ws_url": upbit.ws_url,
                      "api_key_env": f"{env_prefix}_UPBIT_KEY", "secret_key_env": f"{env_prefix}_UPBIT_SECRET"},
            "binance": {"rest_url": binance.rest_url, "ws_url": binance.ws_url,
                        "api_key_env": f"{env_prefix}_BINANCE_KEY",
                        "secret_key_env": f"{env_prefix}_BINANCE_SECRET"},
        },
        "strategy": {"entry_premium_pct": 1.0, "exit_premium_pct": 0.3, "trade_notional": 40},
        "live_trading": {"enabled": True, "dry_run_scale": 0.5, "allowed_symbols": ["KRW-BTC", "BTCUSDT"],
                         "min_account_balance": 50.0, "max_daily_loss": 20.0, "max_notional_per_trade": 50.0},
    }
    path.write_text(json.dumps(_merged(config, sections)), encoding="utf-8")  # JSON is YAML
    return {f"{env_prefix}_UPBIT_KEY": upbit.access_key, f"{env_prefix}_UPBIT_SECRET": upbit.secret_key,
            f"{env_prefix}_BINANCE_KEY": binance.api_key, f"{env_prefix}_BINANCE_SECRET": binance.secret_key}


def arb_run(config: Path, *args: str) -> list[str]:
    """The command line of an ``arb run`` subprocess on ``config``."""
    return [sys.executable, "-m", "arb", "run", "--config", str(config), *args]


def kill_9_when(command: list[str], env: dict[str, str], ready: Callable[[], bool], what: str,
                timeout_s: float = 60.0) -> None:
    """Start ``command`` with exactly ``env`` and ``kill -9`` it the moment ``ready()``."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert time.monotonic() < deadline and proc.poll() is None, f"never happened: {what}"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def kill_9_once_both_have_orders(config: Path, upbit: UpbitEmulator, binance: BinanceEmulator,
                                 env: dict[str, str]) -> None:
    """``arb run`` on ``config`` in its own process, killed the moment both
    exchanges have received an order: a crash mid-pair."""
    kill_9_when(arb_run(config), {**os.environ, **env},
                lambda: bool(upbit.requests_to("POST", "/v1/orders") and binance.requests_to("POST", "/api/v3/order")),
                "orders reached both emulators")


# --- what the exchanges received ----------------------------------------------------------


def upbit_posts(upbit: UpbitEmulator) -> list[dict]:
    """The bodies of every order POST, in order."""
    return [r.json() for r in upbit.requests_to("POST", "/v1/orders")]


def binance_posts(binance: BinanceEmulator) -> list[dict[str, str]]:
    """The parameters of every order POST, in order, signing ones included."""
    return [dict(p.split("=", 1) for p in f"{r.query}&{r.body.decode()}".split("&") if "=" in p)
            for r in binance.requests_to("POST", "/api/v3/order")]
