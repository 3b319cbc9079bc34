"""Notifiers: the exact requests each service gets, isolation from trading,
folding, burst and disconnect detection, and secrets kept out of logs.

HTTP receivers are real servers on 127.0.0.1; time is driven through an
injected clock, so nothing here sleeps.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import yaml

import arb
from arb.config import parse_config
from arb.events import EventBus
from arb.models import OrderIntent, OrderStatus, Side
from arb.notify import (Alert, AlertRouter, NotificationSettings, NotifierConfigError, NotifierError,
                        build_notifiers, notification_problems)
from arb.plugins import load_registry
from arb.specs import NotifierSpec
from arb.testing import run_arb

TOKEN = "7310955118:AAHq3xZ-SecretTokenValue_0123456789"
SLACK_PATH = "/services/T0ARBTEST/B0ARBTEST/SlackSecretPath0123456789"
WEBHOOK_SECRET = "Bearer webhook-shared-secret-0123456789"
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
WAIT_S = 10.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Receiver:
    """An HTTP endpoint that records every request: answers ``status`` with
    ``body``, or with ``hang`` holds each request until :meth:`release`."""

    def __init__(self, status: int = 200, body: bytes = b"ok", *, hang: bool = False,
                 content_type: str = "text/plain"):
        self.requests: list[SimpleNamespace] = []
        self.cond = threading.Condition()
        self.entered = threading.Event()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    receiver.requests.append(SimpleNamespace(path=self.path, headers=dict(self.headers),
                                                             json=json.loads(raw)))
                    receiver.cond.notify_all()
                if hang:
                    receiver.entered.set()
                    receiver.released.wait(WAIT_S * 3)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int) -> list[SimpleNamespace]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= count, WAIT_S), \
                f"expected {count} request(s), got {len(self.requests)}"
            return list(self.requests)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


TELEGRAM_OK = {"body": b'{"ok":true,"result":{"message_id":1}}', "content_type": "application/json"}


def config_with(channels: list[dict], **section) -> arb.config.Config:
    text = yaml.safe_dump({"pairs": [{"asset": "BTC"}], "notifications": {**section, "channels": channels}})
    return parse_config(text)


ENV = {"TELEGRAM_BOT_TOKEN": TOKEN, "ARB_WEBHOOK_SECRET": WEBHOOK_SECRET}


def router_for(channels: list[dict], *, env=None, clock=None, **section) -> AlertRouter:
    return build_notifiers(config_with(channels, **section), load_registry(), environ=ENV if env is None else env,
                           clock=clock or Clock(), start=False)


def guard_stop(bus: EventBus, rule: str = "max_daily_loss", reason: str = "daily PnL -21.00 < -20.00") -> None:
    bus.publish("session_stop", 1.0, rule=rule, reason=reason)


# --- the exact requests ------------------------------------------------------------------


def test_webhook_posts_the_alert_as_json_with_the_secret_header(receivers):
    hook = receivers()
    router = router_for([{"type": "webhook", "url": hook.url + "/arb/alerts", "secret_env": "ARB_WEBHOOK_SECRET",
                          "secret_header": "X-Arb-Secret"}])
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus)
    [request] = hook.wait_for(1)
    assert request.path == "/arb/alerts"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Arb-Secret"] == WEBHOOK_SECRET
    assert request.json == {
        "kind": "session_stop",
        "severity": "critical",
        "title": "session stopped by guard max_daily_loss",
        "text": "daily PnL -21.00 < -20.00",
        "fields": {"rule": "max_daily_loss", "reason": "daily PnL -21.00 < -20.00"},
        "ts": T0,
        "count": 1,
    }
    router.close(WAIT_S)


def test_telegram_calls_send_message_with_the_bot_token_in_the_path(receivers):
    api = receivers(**TELEGRAM_OK)
    router = router_for([{"type": "telegram", "chat_id": -1001234567890, "api_url": api.url}])
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus)
    [request] = api.wait_for(1)
    assert request.path == f"/bot{TOKEN}/sendMessage"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {
        "chat_id": -1001234567890,
        "text": "🚨 CRITICAL: session stopped by guard max_daily_loss\n"
                "daily PnL -21.00 < -20.00\n"
                "rule: max_daily_loss\n"
                "reason: daily PnL -21.00 < -20.00",
        "link_preview_options": {"is_disabled": True},
    }
    router.close(WAIT_S)


def test_telegram_html_mode_escapes_the_text(receivers):
    api = receivers(**TELEGRAM_OK)
    router = router_for([{"type": "telegram", "chat_id": "@arb_alerts", "api_url": api.url, "parse_mode": "HTML"}])
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus, rule="spread", reason="spread <0.1% & falling")
    [request] = api.wait_for(1)
    assert request.json == {
        "chat_id": "@arb_alerts",
        "text": "<b>🚨 CRITICAL: session stopped by guard spread</b>\n"
                "spread &lt;0.1% &amp; falling\nrule: spread\nreason: spread &lt;0.1% &amp; falling",
        "link_preview_options": {"is_disabled": True},
        "parse_mode": "HTML",
    }
    router.close(WAIT_S)


def test_slack_posts_text_and_blocks_to_the_secret_webhook_url(receivers):
    slack = receivers(body=b"ok")
    router = router_for([{"type": "slack"}], env={"SLACK_WEBHOOK_URL": slack.url + SLACK_PATH})
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus, reason="daily PnL <-20 & worse")
    [request] = slack.wait_for(1)
    assert request.path == SLACK_PATH
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {
        "text": ":rotating_light: CRITICAL: session stopped by guard max_daily_loss: daily PnL &lt;-20 &amp; worse",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "CRITICAL: session stopped by guard max_daily_loss"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "daily PnL &lt;-20 &amp; worse"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*rule*\nmax_daily_loss"},
                {"type": "mrkdwn", "text": "*reason*\ndaily PnL &lt;-20 &amp; worse"},
            ]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": "arb · session_stop · 2026-01-01 00:00:00 UTC"}]},
        ],
    }
    router.close(WAIT_S)


def test_slack_splits_more_than_ten_fields_into_sections():
    from arb_notify.slack import payload

    alert = Alert("x", "info", "t", "", {f"f{i}": i for i in range(12)}, T0)
    sections = [b for b in payload(alert)["blocks"] if "fields" in b]
    assert [len(b["fields"]) for b in sections] == [10, 2]


# --- a slow or broken channel never touches the trading path --------------------------------


class BlockingNotifier:
    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.entered.set()
        assert self.release.wait(WAIT_S * 3)
        self.sent.append(alert)


class RecordingNotifier:
    def __init__(self):
        self.sent: list[Alert] = []
        self.cond = threading.Condition()

    def send(self, alert: Alert) -> None:
        with self.cond:
            self.sent.append(alert)
            self.cond.notify_all()

    def wait_for(self, count: int) -> list[Alert]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.sent) >= count, WAIT_S)
            return list(self.sent)


class RaisingNotifier:
    def send(self, alert: Alert) -> None:
        raise RuntimeError("channel is broken")


def test_publish_returns_while_a_notifier_is_stuck_in_send():
    router = AlertRouter(NotificationSettings(fold_window_s=0), clock=Clock())
    stuck, broken, good = BlockingNotifier(), RaisingNotifier(), RecordingNotifier()
    router.add_channel("stuck", stuck)
    router.add_channel("broken", broken)
    router.add_channel("good", good)
    bus = EventBus()
    router.attach(bus)

    guard_stop(bus, rule="r0")
    assert stuck.entered.wait(WAIT_S)  # the stuck channel's thread is now blocked in send()...
    for i in range(1, 6):
        guard_stop(bus, rule=f"r{i}")  # ...and the engine thread still gets straight back
        assert router.events_seen == i + 1
        assert not stuck.release.is_set() and stuck.sent == []
    assert [a.fields["rule"] for a in good.wait_for(6)] == [f"r{i}" for i in range(6)]
    assert router.alerts_routed == 6
    stuck.release.set()
    assert router.wait_idle(WAIT_S)
    stats = router.stats()
    assert stats["stuck"]["sent"] == 6 and stats["broken"]["failed"] == 6 and stats["good"]["sent"] == 6
    router.close(WAIT_S)


def test_hanging_and_failing_receivers_do_not_stop_the_others(receivers, caplog):
    hanging, failing, api = receivers(hang=True), receivers(status=500, body=b"boom"), receivers(**TELEGRAM_OK)
    router = router_for([
        {"type": "webhook", "name": "hangs", "url": hanging.url, "timeout_s": 30},
        {"type": "webhook", "name": "fails", "url": failing.url},
        {"type": "telegram", "chat_id": 42, "api_url": api.url},
    ], fold_window_s=0)
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus, rule="r0")
    assert hanging.entered.wait(WAIT_S)
    for i in range(1, 4):
        guard_stop(bus, rule=f"r{i}")
    assert router.events_seen == 4
    assert [r.json["text"].splitlines()[0] for r in api.wait_for(4)] == \
        [f"🚨 CRITICAL: session stopped by guard r{i}" for i in range(4)]
    failing.wait_for(4)
    hanging.release()
    assert router.wait_idle(WAIT_S)
    assert router.stats() == {
        "hangs": {"enqueued": 4, "sent": 4, "failed": 0, "dropped": 0},
        "fails": {"enqueued": 4, "sent": 0, "failed": 4, "dropped": 0},
        "telegram": {"enqueued": 4, "sent": 4, "failed": 0, "dropped": 0},
    }
    assert "notifier fails could not send the session_stop alert: NotifierError: the webhook answered HTTP 500: boom" \
        in caplog.text
    router.close(WAIT_S)


def test_a_full_queue_drops_its_oldest_alert_and_says_so(caplog):
    router = AlertRouter(NotificationSettings(fold_window_s=0, queue_size=2), clock=Clock())
    stuck = BlockingNotifier()
    router.add_channel("stuck", stuck)
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus, rule="r1")
    assert stuck.entered.wait(WAIT_S)
    for i in range(2, 6):
        guard_stop(bus, rule=f"r{i}")
    assert router.stats()["stuck"] == {"enqueued": 5, "sent": 0, "failed": 0, "dropped": 2}
    assert "notifier stuck is behind: its queue of 2 is full, dropped the oldest alert (1 dropped so far)" \
        in caplog.text
    stuck.release.set()
    assert router.wait_idle(WAIT_S)
    assert [a.fields["rule"] for a in stuck.sent] == ["r1", "r4", "r5"]
    router.close(WAIT_S)


def test_close_gives_up_on_a_hanging_channel(caplog):
    router = AlertRouter(NotificationSettings(fold_window_s=0), clock=Clock())
    stuck = BlockingNotifier()
    router.add_channel("stuck", stuck)
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus, rule="r1")
    guard_stop(bus, rule="r2")
    assert stuck.entered.wait(WAIT_S)
    router.close(timeout_s=0.1)
    assert "notifier stuck did not finish within 0.1 s; 2 alert(s) not delivered" in caplog.text
    guard_stop(bus, rule="r3")  # after close, events are ignored
    assert router.stats()["stuck"]["enqueued"] == 2
    stuck.release.set()


def test_a_send_that_takes_too_long_is_reported_once(caplog):
    clock = Clock()
    router = AlertRouter(NotificationSettings(fold_window_s=0), clock=clock, stall_warning_s=30)
    stuck = BlockingNotifier()
    router.add_channel("stuck", stuck)
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus)
    assert stuck.entered.wait(WAIT_S)
    clock.now += 29
    router.tick()
    assert "has been sending" not in caplog.text
    clock.now += 1
    router.tick()
    router.tick()
    assert caplog.text.count("notifier stuck has been sending one alert for 30 s; its alerts queue up "
                             "(trading is not affected)") == 1
    stuck.release.set()
    router.close(WAIT_S)


def test_min_severity_filters_a_channel():
    router = AlertRouter(NotificationSettings(fold_window_s=0), clock=Clock())
    loud, quiet = RecordingNotifier(), RecordingNotifier()
    router.add_channel("loud", loud)
    router.add_channel("quiet", quiet, min_severity="critical")
    bus = EventBus()
    router.attach(bus)
    bus.publish("session_started", 0.0, session_id="abc", mode="paper")
    guard_stop(bus)
    assert [a.kind for a in loud.wait_for(2)] == ["session_started", "session_stop"]
    assert [a.kind for a in quiet.wait_for(1)] == ["session_stop"]
    router.close(WAIT_S)


# --- what becomes an alert ---------------------------------------------------------------


def routed(settings: NotificationSettings | None = None, clock: Clock | None = None):
    clock = clock or Clock()
    router = AlertRouter(settings or NotificationSettings(), clock=clock)
    sink = RecordingNotifier()
    router.add_channel("sink", sink)
    bus = EventBus()
    router.attach(bus)
    return router, sink, bus, clock


def delivered(router: AlertRouter, sink: RecordingNotifier) -> list[Alert]:
    assert router.wait_idle(WAIT_S)
    return list(sink.sent)


def test_identical_alerts_are_folded_into_one_with_a_count():
    router, sink, bus, clock = routed(NotificationSettings(fold_window_s=60))
    for _ in range(5):
        guard_stop(bus)
        clock.now += 1
    guard_stop(bus, rule="other")  # another subject is not a duplicate
    assert [(a.fields["rule"], a.count) for a in delivered(router, sink)] == [("max_daily_loss", 1), ("other", 1)]
    assert router.alerts_folded == 4
    clock.now = T0 + 61
    router.tick()  # the window closed: what was held back goes out as one
    folded = delivered(router, sink)[-1]
    assert (folded.kind, folded.count, folded.title) == ("session_stop", 4,
                                                         "session stopped by guard max_daily_loss (x4)")
    assert folded.text == "daily PnL -21.00 < -20.00 [4 alerts like this in 61 s]"
    clock.now += 1
    guard_stop(bus)  # a new window: sent at once
    assert delivered(router, sink)[-1].count == 1
    router.close(WAIT_S)


def test_a_late_duplicate_carries_the_held_back_count_when_no_timer_ran():
    router, sink, bus, clock = routed(NotificationSettings(fold_window_s=60))
    guard_stop(bus)
    clock.now += 10
    guard_stop(bus)
    clock.now += 60
    guard_stop(bus)
    assert [a.count for a in delivered(router, sink)] == [1, 2]
    router.close(WAIT_S)


def test_close_sends_what_folding_held_back():
    router, sink, bus, clock = routed(NotificationSettings(fold_window_s=60))
    guard_stop(bus)
    guard_stop(bus)
    router.close(WAIT_S)
    assert [a.count for a in sink.sent] == [1, 1] and sink.sent[1].title.endswith("(x1)")


def order(status: OrderStatus, reason: str = "", exchange: str = "upbit") -> SimpleNamespace:
    intent = OrderIntent(exchange, "KRW-BTC", Side.BUY, 0.001, 95_000_000.0, 95_000_000.0, "cid")
    return SimpleNamespace(intent=intent, status=status, reason=reason, filled_qty=0.0)


def test_a_burst_of_rejected_orders_is_one_alert():
    router, sink, bus, clock = routed(NotificationSettings(order_failure_count=3, order_failure_window_s=60))
    bus.publish("orders_done", 0.0, plan=None, orders=[order(OrderStatus.REJECTED, "insufficient funds"),
                                                        order(OrderStatus.FILLED, exchange="binance")])
    clock.now += 20
    bus.publish("orders_done", 0.0, plan=None, orders=[order(OrderStatus.CANCELED)])
    assert delivered(router, sink) == []
    bus.publish("orders_done", 0.0, plan=None, orders=[order(OrderStatus.REJECTED, exchange="binance"),
                                                        order(OrderStatus.REJECTED, "rate limited")])
    [alert] = delivered(router, sink)
    assert (alert.kind, alert.severity, alert.title) == ("order_failures", "warning", "3 orders rejected within 60 s")
    assert alert.fields == {"rejected": 3, "window_s": 60.0, "exchanges": "binance, upbit",
                            "last_reason": "rate limited"}
    router.close(WAIT_S)


def test_rejections_spread_wider_than_the_window_are_no_burst():
    router, sink, bus, clock = routed(NotificationSettings(order_failure_count=3, order_failure_window_s=60))
    for _ in range(5):
        bus.publish("orders_done", 0.0, plan=None, orders=[order(OrderStatus.REJECTED)])
        clock.now += 31
    assert delivered(router, sink) == []
    router.close(WAIT_S)


def test_a_stream_down_longer_than_the_limit_alerts_once_then_says_when_it_is_back():
    router, sink, bus, clock = routed(NotificationSettings(disconnect_alert_after_s=30))
    router.stream_status("upbit", "disconnected", "code 1006")
    clock.now += 10
    router.stream_status("upbit", "reconnecting", "in 2.00 s")
    clock.now += 19
    router.tick()
    assert delivered(router, sink) == []
    clock.now += 1
    router.tick()
    clock.now += 30
    router.tick()
    [alert] = delivered(router, sink)
    assert (alert.kind, alert.severity, alert.title) == ("exchange_disconnected", "warning", "upbit stream down for 30 s")
    assert alert.text == "upbit market data reconnecting: in 2.00 s"
    assert alert.fields == {"exchange": "upbit", "down_s": 30.0, "state": "reconnecting"}
    router.stream_status("upbit", "connected", "4 streams")
    back = delivered(router, sink)[-1]
    assert (back.kind, back.severity, back.fields) == ("exchange_reconnected", "info",
                                                      {"exchange": "upbit", "down_s": 60.0})
    router.close(WAIT_S)


def test_a_short_outage_is_not_reported():
    router, sink, bus, clock = routed(NotificationSettings(disconnect_alert_after_s=30))
    router.stream_status("binance", "disconnected")
    clock.now += 29
    router.stream_status("binance", "connected")
    clock.now += 100
    router.tick()
    assert delivered(router, sink) == []
    router.close(WAIT_S)


def test_a_later_status_call_notices_a_long_outage_without_the_timer():
    router, sink, bus, clock = routed(NotificationSettings(disconnect_alert_after_s=30))
    router.stream_status("binance", "disconnected")
    clock.now += 45
    router.stream_status("binance", "reconnecting", "in 8.00 s")
    assert [a.kind for a in delivered(router, sink)] == ["exchange_disconnected"]
    router.close(WAIT_S)


def test_session_events_exposure_and_bans_become_alerts():
    router, sink, bus, clock = routed()
    plan = SimpleNamespace(kind="open", asset="BTC")
    bus.publish("session_started", 0.0, session_id="s1", mode="live_trading")
    bus.publish("exposure_flat", 1.0, plan=plan, detail="nothing was told")  # no exposure alert before: silent
    bus.publish("leg_exposure", 1.0, plan=plan, orders=[order(OrderStatus.FILLED), order(OrderStatus.REJECTED, "x")],
                detail="unhedged open of BTC")
    bus.publish("exposure_flat", 2.0, plan=plan, detail="open of BTC flat after 1 repair(s)")
    bus.publish("exchange_banned", 3.0, detail="binance banned us: HTTP 418")
    bus.publish("trade_opened", 4.0, trade=None, plan=plan)  # not an alert
    router.session_ended({"session_id": "s1", "mode": "live_trading", "exit_reason": "max_runtime",
                          "total_pnl": 1.5, "realized_pnl": 1.25, "trades_opened": 2, "trades_closed": 1,
                          "open_trades": 1, "exposure": "", "stop_reason": "",
                          "orders": {"sent": 4, "rejected": 1}})
    alerts = delivered(router, sink)
    assert [(a.kind, a.severity) for a in alerts] == [
        ("session_started", "info"), ("leg_exposure", "critical"), ("exposure_flat", "info"),
        ("exchange_banned", "critical"), ("session_ended", "info")]
    assert alerts[1].title == "leg exposure left open: open BTC"
    assert alerts[1].fields["leg_2"] == "upbit buy KRW-BTC 0/0.001 rejected (x)"
    ended = alerts[-1]
    assert ended.title == "arb session s1 ended: max_runtime"
    assert ended.text == "max_runtime; PnL +1.50 (realized +1.25), trades opened 2, closed 1, still open 1"
    assert ended.fields == {"session_id": "s1", "mode": "live_trading", "exit_reason": "max_runtime",
                            "trades_opened": 2, "trades_closed": 1, "open_trades": 1, "realized_pnl": 1.25,
                            "total_pnl": 1.5, "orders_sent": 4, "orders_rejected": 1}
    assert all(a.ts == T0 for a in alerts)
    router.close(WAIT_S)


def test_what_start_up_found_becomes_alerts():
    router, sink, bus, clock = routed()
    bus.publish("reconciled", 0.0, counts={"cancelled": 1, "recorded": 2}, adopted=1, unknown=[], settled=[])
    bus.publish("inherited_exposure", 0.0, net={"BTC": -0.0002}, detail="unhedged position left by earlier ...")
    # Only an operator clears an inherited position: the session's own all-clear is not about it.
    bus.publish("exposure_flat", 1.0, asset="BTC", detail="flat")
    alerts = delivered(router, sink)
    assert [(a.kind, a.severity) for a in alerts] == [("reconciled", "warning"), ("inherited_exposure", "critical")]
    assert alerts[0].text == "earlier sessions' orders at start-up: 1 cancelled, 2 recorded"
    assert alerts[0].fields == {"orders_cancelled": 1, "orders_recorded": 2, "adopted": 1, "unknown": 0}
    assert alerts[1].fields == {"net_BTC": -0.0002}
    router.close(WAIT_S)

    router, sink, bus, clock = routed()
    bus.publish("reconciled", 0.0, counts={}, adopted=0, unknown=["binance BTCUSDT arbc0ffee01-1: HTTP 503"],
                settled=[])
    [alert] = delivered(router, sink)
    assert alert.severity == "critical" and "arbc0ffee01-1" in alert.text
    router.close(WAIT_S)


def test_a_session_ending_with_exposure_is_critical():
    router, sink, bus, clock = routed()
    router.session_ended({"session_id": "s2", "exit_reason": "session_stop", "exposure": "unhedged open of BTC"})
    [alert] = delivered(router, sink)
    assert alert.severity == "critical" and "EXPOSURE LEFT OPEN: unhedged open of BTC" in alert.text
    router.close(WAIT_S)


# --- secrets -----------------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def every_text_of(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc.args) + repr(exc.__context__) + repr(exc.__cause__)


@pytest.mark.parametrize("status, body", [(500, b'{"ok":false,"error_code":500,"description":"Internal"}'),
                                          (401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}')])
def test_telegram_failures_never_show_the_token(receivers, caplog, status, body):
    caplog.set_level(logging.DEBUG)
    api = receivers(status=status, body=body, content_type="application/json")
    spec = load_registry().notifiers["telegram"].spec
    notifier = spec.build({"chat_id": 1, "api_url": api.url, "token_env": "X"}, {"token": TOKEN})
    with pytest.raises(NotifierError) as raised:
        notifier.send(Alert("k", "info", "t", "x", {}, T0))
    assert str(raised.value).startswith(f"Telegram answered HTTP {status}: ")
    assert TOKEN not in every_text_of(raised.value) and TOKEN not in repr(notifier)
    assert api.requests[0].path == f"/bot{TOKEN}/sendMessage"
    assert TOKEN not in caplog.text  # urllib3 logs the request path at DEBUG: masked


def test_unreachable_services_never_show_the_secret(caplog):
    caplog.set_level(logging.DEBUG)
    url = closed_port_url()
    registry = load_registry()
    telegram = registry.notifiers["telegram"].spec.build({"chat_id": 1, "api_url": url}, {"token": TOKEN})
    slack = registry.notifiers["slack"].spec.build({}, {"webhook_url": url + SLACK_PATH})
    for notifier in (telegram, slack):
        with pytest.raises(NotifierError) as raised:
            notifier.send(Alert("k", "info", "t", "x", {}, T0))
        assert "cannot reach" in str(raised.value)
        assert raised.value.__context__ is None
        text = every_text_of(raised.value)
        assert TOKEN not in text and SLACK_PATH not in text and "SlackSecretPath" not in text


def test_router_logs_carry_no_secrets(receivers, caplog):
    caplog.set_level(logging.DEBUG)
    failing = receivers(status=500, body=b'{"ok":false,"description":"Internal Server Error"}',
                        content_type="application/json")
    slack_down = receivers(status=404, body=b"no_service")
    router = router_for([{"type": "telegram", "chat_id": 1, "api_url": failing.url},
                         {"type": "slack"},
                         {"type": "webhook", "url": closed_port_url(), "secret_env": "ARB_WEBHOOK_SECRET"}],
                        env={**ENV, "SLACK_WEBHOOK_URL": slack_down.url + SLACK_PATH})
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus)
    assert router.wait_idle(WAIT_S)
    assert router.stats()["telegram"]["failed"] == router.stats()["slack"]["failed"] == 1
    assert "Telegram answered HTTP 500: Internal Server Error" in caplog.text
    assert "Slack answered HTTP 404: no_service" in caplog.text
    assert "cannot reach the webhook" in caplog.text
    for secret in (TOKEN, SLACK_PATH, "SlackSecretPath", WEBHOOK_SECRET, "webhook-shared-secret"):
        assert secret not in caplog.text
    router.close(WAIT_S)


# --- building from a config --------------------------------------------------------------------


def test_no_notifications_section_builds_an_idle_router():
    router = build_notifiers(parse_config("pairs: [{asset: BTC}]"), load_registry(), environ={}, start=False)
    assert router.channels == [] and router.settings == NotificationSettings()
    bus = EventBus()
    router.attach(bus)
    guard_stop(bus)
    router.close(1.0)


def test_settings_come_from_the_config_section():
    router = router_for([], fold_window_s=5, disconnect_alert_after_s=12,
                        order_failure_burst={"count": 4, "window_s": 30}, queue_size=7)
    assert router.settings == NotificationSettings(5.0, 12.0, 4, 30.0, 7, ())


@pytest.mark.parametrize("channels, env, message", [
    ([{"type": "pager"}], ENV, "notifications.channels[0] (pager): no notifier named 'pager' is installed"),
    ([{"type": "telegram", "chat_id": 1}], {}, "notifications.channels[0] (telegram): environment variable(s) "
                                               "$TELEGRAM_BOT_TOKEN not set"),
    ([{"type": "slack"}], {}, "$SLACK_WEBHOOK_URL not set"),
    ([{"type": "telegram"}], ENV, "chat_id is required"),
    ([{"type": "telegram", "chat_id": 1, "parse_mode": "Markdown"}], ENV, "parse_mode must be one of HTML, MarkdownV2"),
    ([{"type": "telegram", "chat_id": 1, "chat": 2}], ENV, "unknown option(s) chat; known: chat_id"),
    ([{"type": "slack", "webhook_url": "https://hooks.slack.com/x"}], {"SLACK_WEBHOOK_URL": "https://h"},
     "the Slack webhook URL is a secret"),
    ([{"type": "slack"}], {"SLACK_WEBHOOK_URL": "not-a-url-but-secret"}, "must hold the webhook's https URL"),
    ([{"type": "webhook"}], ENV, "give the endpoint as url, or as url_env"),
    ([{"type": "webhook", "url": "ftp://x"}], ENV, "url must be an http(s) URL"),
    ([{"type": "webhook", "url": "http://x", "timeout_s": 0}], ENV, "timeout_s must be a number of seconds"),
    ([{"type": "webhook", "url": "http://x"}, {"type": "webhook", "url": "http://y"}], ENV,
     "two notification channels are named 'webhook'"),
])
def test_bad_channels_are_config_errors(channels, env, message):
    with pytest.raises(NotifierConfigError) as raised:
        router_for(channels, env=env)
    assert message in str(raised.value)
    assert "not-a-url-but-secret" not in str(raised.value)


def test_validate_config_can_ask_for_the_problems_without_sending_anything():
    registry = load_registry()
    assert notification_problems(config_with([{"type": "telegram", "chat_id": 1}]), registry, environ=ENV) == []
    assert notification_problems(config_with([{"type": "telegram", "chat_id": 1}]), registry, environ={}) == [
        "notifications.channels[0] (telegram): environment variable(s) $TELEGRAM_BOT_TOKEN not set "
        "(the channel's *_env options name them)"]


def test_a_third_party_notifier_is_built_from_its_channel_options(arb_registry_with):
    built = {}

    class PagerPlugin:
        @arb.hookimpl
        def arb_register_notifiers(self, register):
            def build(settings, secrets):
                built.update(settings=dict(settings), secrets=dict(secrets))
                return RecordingNotifier()
            register(NotifierSpec("pager", build, "page someone", default_settings={"key_env": "PAGER_KEY"}))

    registry = arb_registry_with(("pager-plugin", PagerPlugin()))
    assert registry.notifiers["pager"].plugin.name == "pager-plugin"
    config = config_with([{"type": "pager", "name": "oncall", "min_severity": "critical", "service": "arb"}])
    router = build_notifiers(config, registry, environ={"PAGER_KEY": "pager-secret-key"}, start=False)
    assert built == {"settings": {"key_env": "PAGER_KEY", "service": "arb"}, "secrets": {"key": "pager-secret-key"}}
    assert [c.name for c in router.channels] == ["oncall"]
    router.close(1.0)


def test_arb_plugins_lists_the_three_builtin_notifiers():
    result = run_arb("plugins")
    assert result.returncode == 0, result.stderr
    notifiers = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│").split("│")] if line.startswith("│") else []
        if len(cells) == 7 and cells[1] == "notifier":
            notifiers[cells[2]] = (cells[0], cells[6].split(" ", 1)[0])
    assert notifiers == {"webhook": ("notify-webhook", "arb"), "telegram": ("notify-telegram", "arb"),
                         "slack": ("notify-slack", "arb")}, result.stdout
