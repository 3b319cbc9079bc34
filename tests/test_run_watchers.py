"""`arb run` starts the metrics endpoint and the alert channels with the session."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.parser import text_string_to_metric_families

DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A webhook endpoint on loopback that keeps every JSON body it gets."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_paper_run_serves_metrics_and_sends_alerts(tmp_path):
    port = free_port()
    receiver = Receiver()
    config = {
        "mode": "paper", "pairs": [{"asset": "BTC"}],
        "market": {"source": "simulator", "simulator": {"scenario": "cycle", "realtime": True}},
        "monitoring": {"metrics": {"enabled": True, "host": "127.0.0.1", "port": port, "linger_s": 0}},
        "notifications": {"channels": [{"type": "webhook", "url": receiver.url}]},
        "journal": {"path": str(tmp_path / "journal.sqlite")},
    }
    path = tmp_path / "watch.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "arb", "run", "--config", str(path),
                             "--max-runtime-seconds", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        families, end = {}, time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            try:
                families = scrape(port)
                updates = [s for s in families.get("arb_book_updates", []) if s.name.endswith("_total")]
                if updates and sum(s.value for s in updates) > 0:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert sum(s.value for s in families["arb_book_updates"] if s.name.endswith("_total")) > 0
        assert {s.labels["symbol"] for s in families["arb_book_updates"]} >= {"KRW-BTC", "BTCUSDT", "KRW-USDT"}
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        receiver.close()
    assert proc.returncode == 0, err[-2000:]
    kinds = [alert["kind"] for alert in receiver.received]
    assert "session_started" in kinds and "session_ended" in kinds, receiver.received
