"""Binance request signing against the official test vectors.

The key pair and the three signatures are Binance's own (REST API docs,
"SIGNED Endpoint Examples"); they were re-computed independently for the
facts sheet.  If these fail, every signed request to Binance would be
refused with -1022.
"""

from __future__ import annotations

import pytest

from arb_binance.auth import API_KEY_HEADER, Signer, encode_params, hmac_signature
from arb_binance.clock import ServerClock

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET_KEY = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TIMESTAMP = 1499827319559

ORDER = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
         ("quantity", 1), ("price", "0.1")]

ALL_IN_ONE = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
              "&recvWindow=5000&timestamp=1499827319559")
ALL_IN_ONE_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
MIXED = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
         "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559")
MIXED_SIG = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
NON_ASCII = ("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT"
             "&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559")
NON_ASCII_SIG = "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


@pytest.fixture
def signer() -> Signer:
    return Signer(API_KEY, SECRET_KEY)


@pytest.mark.parametrize("payload, signature", [
    (ALL_IN_ONE, ALL_IN_ONE_SIG), (MIXED, MIXED_SIG), (NON_ASCII, NON_ASCII_SIG),
], ids=["all-in-query", "mixed-query-body", "non-ascii"])
def test_official_vectors_raw_hmac(payload, signature):
    assert hmac_signature(SECRET_KEY, payload) == signature


def test_all_params_in_the_query(signer):
    signed = signer.sign(ORDER, (), TIMESTAMP)
    assert signed.query == f"{ALL_IN_ONE}&signature={ALL_IN_ONE_SIG}"
    assert signed.body == ""


def test_all_params_in_the_body(signer):
    signed = signer.sign((), ORDER, TIMESTAMP)
    assert signed.query == ""
    assert signed.body == f"{ALL_IN_ONE}&signature={ALL_IN_ONE_SIG}"


def test_mixed_query_and_body_are_joined_without_an_ampersand(signer):
    signed = signer.sign(ORDER[:4], ORDER[4:], TIMESTAMP)
    assert signed.query == "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    assert signed.body == f"quantity=1&price=0.1&recvWindow=5000&timestamp={TIMESTAMP}&signature={MIXED_SIG}"


def test_non_ascii_symbol_is_percent_encoded_before_signing(signer):
    params = [("symbol", "１２３４５６"), *ORDER[1:]]
    assert encode_params(params[:1]) == "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96"
    assert signer.sign(params, (), TIMESTAMP).query == f"{NON_ASCII}&signature={NON_ASCII_SIG}"


def test_json_array_parameter_is_fully_encoded():
    assert encode_params([("symbols", '["BTCUSDT","ETHUSDT"]')]) == \
        "symbols=%5B%22BTCUSDT%22%2C%22ETHUSDT%22%5D"


def test_api_key_goes_in_a_header_and_the_pair_stays_out_of_repr(signer):
    assert signer.headers == {API_KEY_HEADER: API_KEY}
    assert SECRET_KEY not in repr(signer) and API_KEY not in repr(signer)


def test_custom_recv_window_is_signed(signer):
    signed = Signer(API_KEY, SECRET_KEY, recv_window_ms=2500).sign([("symbol", "BTCUSDT")], (), 5)
    payload = "symbol=BTCUSDT&recvWindow=2500&timestamp=5"
    assert signed.query == f"{payload}&signature={hmac_signature(SECRET_KEY, payload)}"


@pytest.mark.parametrize("key, secret, window", [("", SECRET_KEY, 5000), (API_KEY, "", 5000),
                                                 (API_KEY, SECRET_KEY, 0), (API_KEY, SECRET_KEY, 60001)])
def test_signer_refuses_incomplete_keys_and_bad_windows(key, secret, window):
    with pytest.raises(ValueError):
        Signer(key, secret, window)


def test_clock_offset_is_measured_at_half_the_round_trip():
    local = iter([100.000, 100.200, 100.300])   # seconds: before, after, then "now"
    clock = ServerClock(lambda: 103_100.0, lambda: next(local))
    # The server read its clock (103.100 s) halfway through 100.000..100.200.
    assert clock.sync() == pytest.approx(3000.0)
    assert clock.now_ms() == 103_300
