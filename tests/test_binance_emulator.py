"""The emulator speaks Binance's protocol, checked with plain HTTP requests.

If the emulator were lenient where Binance is strict, the client tests
would prove nothing; these pin down the strict parts: signature and
timestamp checks, error bodies, weight headers, 429 then 418.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import requests

from arb_binance.auth import Signer
from arb_binance.emulator import BinanceEmulator

# Binance's documented example key pair and request (see test_binance_auth.py).
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET_KEY = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
VECTOR_TIME_S = 1499827319.559
MIXED_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
MIXED_BODY = ("quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
              "&signature=0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(VECTOR_TIME_S + 0.010)   # 10 ms after the vector's timestamp


@pytest.fixture
def emulator(clock) -> Iterator[BinanceEmulator]:
    with BinanceEmulator(api_key=API_KEY, secret_key=SECRET_KEY, clock=clock, weight_limit=50) as emu:
        emu.set_book("BTCUSDT", [(50000.0, 1.0)], [(50010.0, 1.0)])
        yield emu


def post_vector(emulator: BinanceEmulator, body: str = MIXED_BODY, key: str = API_KEY) -> requests.Response:
    return requests.post(f"{emulator.rest_url}/api/v3/order?{MIXED_QUERY}", data=body,
                         headers={**FORM, "X-MBX-APIKEY": key}, timeout=5)


def test_official_mixed_vector_passes_authentication(emulator):
    # Auth passes, so the answer is about the content: LTCBTC is not listed.
    answer = post_vector(emulator)
    assert (answer.status_code, answer.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})


def test_a_tampered_request_fails_the_signature(emulator):
    answer = post_vector(emulator, MIXED_BODY.replace("quantity=1", "quantity=2"))
    assert (answer.status_code, answer.json()) == \
        (400, {"code": -1022, "msg": "Signature for this request is not valid."})


def test_unknown_key_is_401_minus_2015(emulator):
    answer = post_vector(emulator, key="not-a-key")
    assert answer.status_code == 401 and answer.json()["code"] == -2015


@pytest.mark.parametrize("shift_s, text", [(-6.0, "outside of the recvWindow"), (+1.5, "1000ms ahead")])
def test_timestamp_window(emulator, clock, shift_s, text):
    clock.now -= shift_s
    answer = post_vector(emulator)
    assert answer.status_code == 400 and answer.json()["code"] == -1021 and text in answer.json()["msg"]


def test_order_answers_carry_weight_and_order_counts(emulator, clock):
    signer = Signer(API_KEY, SECRET_KEY)
    params = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "IOC"),
              ("quantity", "0.001"), ("price", "50010.00"), ("newClientOrderId", "raw-1")]
    signed = signer.sign((), params, int(clock.now * 1000))
    answer = requests.post(f"{emulator.rest_url}/api/v3/order", data=signed.body,
                           headers={**FORM, **signer.headers}, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert answer.headers["X-MBX-ORDER-COUNT-10S"] == "1" and answer.headers["X-MBX-ORDER-COUNT-1D"] == "1"
    body = answer.json()
    assert body["status"] == "FILLED" and body["executedQty"] == "0.00100000"
    assert body["fills"] == [{"price": "50010.00000000", "qty": "0.00100000", "commission": "0.00000100",
                              "commissionAsset": "BTC", "tradeId": 1}]


def test_exchange_info_filters_are_decimal_strings(emulator):
    answer = requests.get(f"{emulator.rest_url}/api/v3/exchangeInfo",
                          params={"symbols": '["BTCUSDT","XRPUSDT"]'}, timeout=5)
    symbols = {s["symbol"]: {f["filterType"]: f for f in s["filters"]} for s in answer.json()["symbols"]}
    assert symbols["BTCUSDT"]["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert symbols["BTCUSDT"]["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert symbols["XRPUSDT"]["LOT_SIZE"]["stepSize"] == "0.10000000"
    assert symbols["BTCUSDT"]["NOTIONAL"]["minNotional"] == "5.00000000"
    assert answer.headers["X-MBX-USED-WEIGHT-1M"] == "20"


def test_over_the_weight_limit_is_429_then_418(emulator, clock):
    url = f"{emulator.rest_url}/api/v3/exchangeInfo"       # weight 20 against a limit of 50
    assert [requests.get(url, timeout=5).status_code for _ in range(2)] == [200, 200]
    limited = requests.get(url, timeout=5)
    assert limited.status_code == 429 and limited.json()["code"] == -1003
    assert int(limited.headers["Retry-After"]) > 0
    banned = requests.get(url, timeout=5)                    # carrying on after a 429
    assert banned.status_code == 418 and int(banned.headers["Retry-After"]) == 120
    assert requests.get(f"{emulator.rest_url}/api/v3/time", timeout=5).status_code == 418
    clock.now += 121
    assert requests.get(f"{emulator.rest_url}/api/v3/time", timeout=5).status_code == 200
    assert emulator.rate_limit_answers == [429, 418, 418]
