"""The Upbit WebSocket book stream against the emulator: books, drops, reconnects."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from arb_upbit.stream import decode, subscribe_message
from arb_upbit.testing import Recorder, client_for, running_emulator

pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is")

BTC, ETH = "KRW-BTC", "KRW-ETH"


@pytest.fixture
def emu():
    with running_emulator() as emulator:
        yield emulator


def books_of(recorder: Recorder, symbol: str) -> list:
    return [b for b in list(recorder.books) if b.symbol == symbol]


def test_subscription_message_matches_upbits_format():
    ticket, request, fmt = json.loads(subscribe_message(["krw-btc", "KRW-ETH"], 15))
    assert set(ticket) == {"ticket"} and ticket["ticket"]
    assert request == {"type": "orderbook", "codes": ["KRW-BTC.15", "KRW-ETH.15"]}
    assert fmt == {"format": "DEFAULT"}
    with pytest.raises(ValueError):
        subscribe_message([BTC], 10)
    assert decode(b'{"a": 1}') == decode('{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("binary", [True, False], ids=["binary-frames", "text-frames"])
def test_stream_delivers_snapshots_and_changes(binary):
    with running_emulator(ws_binary=binary) as emu:
        client = client_for(emu, keys=False)
        rec = Recorder()
        stream = client.book_stream([BTC, ETH], rec.on_book, rec.on_status)
        stream.start()
        try:
            assert rec.wait_for(lambda: books_of(rec, BTC) and books_of(rec, ETH))
            assert stream.connected and rec.statuses[0][0] == "connected"
            first = books_of(rec, BTC)[0]
            assert first.exchange == "upbit" and len(first.bids) == 15 and first.best_ask > first.best_bid
            assert abs(first.received_ms - time.time() * 1000) < 5_000
            emu.move(BTC, 50)
            assert rec.wait_for(lambda: books_of(rec, BTC)[-1].best_bid > first.best_bid)
            moved = books_of(rec, BTC)[-1]
            assert moved.exchange_ts_ms > first.exchange_ts_ms
        finally:
            started = time.monotonic()
            stream.stop()
            stopped_in = time.monotonic() - started
            client.close()
    assert stopped_in < 5 and not stream._thread.is_alive()
    assert rec.statuses[-1][0] == "disconnected" and not stream.connected


def test_reconnects_after_a_drop_and_fills_the_gap(emu):
    client = client_for(emu, keys=False)
    rec = Recorder()
    stream = client.book_stream([BTC], rec.on_book, rec.on_status)
    stream.start()
    try:
        assert rec.wait_for(lambda: len(books_of(rec, BTC)) >= 1 and stream.connected)
        snapshots_before = len(emu.requests_to("GET", "/v1/orderbook"))
        emu.drop_websockets()
        assert rec.wait_for(lambda: [s for s, _ in rec.statuses].count("connected") >= 2)
        assert stream.reconnects >= 1
        states = [s for s, _ in rec.statuses]
        assert states[:4] == ["connected", "disconnected", "reconnecting", "connected"]
        # After the reconnect, a REST snapshot covered the gap...
        assert rec.wait_for(lambda: len(emu.requests_to("GET", "/v1/orderbook")) > snapshots_before)
        # ...and live updates flow again on the new connection.
        count = len(books_of(rec, BTC))
        best = books_of(rec, BTC)[-1].best_bid
        emu.move(BTC, -50)
        assert rec.wait_for(lambda: len(books_of(rec, BTC)) > count and books_of(rec, BTC)[-1].best_bid < best)
    finally:
        stream.stop()
        client.close()


def test_stream_keeps_retrying_while_the_server_is_gone():
    with running_emulator() as emu:
        client = client_for(emu, keys=False)
        rec = Recorder()
        stream = client.book_stream([BTC], rec.on_book, rec.on_status)
        stream.start()
        assert rec.wait_for(lambda: stream.connected)
        emu.stop()
        assert rec.wait_for(lambda: stream.reconnects >= 2 and not stream.connected)
        stream.stop()
        client.close()
    assert not stream._thread.is_alive()


def test_emulator_answers_text_ping_and_refuses_lowercase_codes(emu):
    with connect(emu.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": ["KRW-BTC.5"]}]))
        snapshot = decode(ws.recv(timeout=5))
        assert snapshot["stream_type"] == "SNAPSHOT" and len(snapshot["orderbook_units"]) == 5
        ws.send("PING")
        assert decode(ws.recv(timeout=5)) == {"status": "UP"}
    with connect(emu.ws_url, open_timeout=5) as ws:
        ws.send(json.dumps([{"ticket": "t"}, {"type": "orderbook", "codes": ["krw-btc"]}]))
        assert decode(ws.recv(timeout=5))["error"]["name"] == "INVALID_PARAM"
