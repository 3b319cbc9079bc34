"""Log set-up for the CLI: readable lines for people, JSON lines for machines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Callable

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class CurrentStderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time, so a live terminal
    display that redirects it keeps log lines above the panel."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def setup_logging(level: str = "INFO", fmt: str = "text") -> Callable[[], None]:
    """Send ``arb`` logs to stderr in ``fmt``; returns a function that puts the
    previous set-up back (a command run in-process, by a test or an embedding
    application, leaves the process's logging as it found it)."""
    handler = CurrentStderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("arb")
    saved = (root.handlers[:], root.level, root.propagate)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

    def restore() -> None:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        root.propagate = saved[2]

    return restore
