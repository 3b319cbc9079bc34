"""Telegram: each alert as a message from your bot, through the Bot API's sendMessage.

``POST {api_url}/bot<token>/sendMessage`` with a JSON body ``{"chat_id",
"text", "link_preview_options": {"is_disabled": true}}`` plus ``parse_mode``
when set.  The token is read from the variable ``token_env`` names and lives
only in the request path: never in a log line or an error.

Options::

    - type: telegram
      chat_id: -1001234567890            # a chat id, or "@channelusername"
      token_env: TELEGRAM_BOT_TOKEN       # the default
      parse_mode: HTML                    # optional: HTML or MarkdownV2 (text is escaped to match)
      api_url: https://api.telegram.org   # the default; tests point it at a local server
      timeout_s: 5
"""

from __future__ import annotations

import html
import re
from typing import Any, Mapping

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: loading plugins must stay quick
    import requests

import arb
from arb.notify import Alert, NotifierError
from arb.specs import NotifierSpec

from arb_notify.common import check_options, clip, field_lines, post_json, short, timeout_option, url_option

NAME = "telegram"
OPTIONS = ("chat_id", "token_env", "parse_mode", "api_url", "timeout_s")
DEFAULT_API_URL = "https://api.telegram.org"
PARSE_MODES = ("HTML", "MarkdownV2")
#: sendMessage takes 1-4096 characters of text (after entity parsing).
MAX_TEXT = 4096
_MARKDOWN_V2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")
_MARK = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


class TelegramNotifier:
    def __init__(self, token: str, chat_id: int | str, *, parse_mode: str | None, api_url: str, timeout_s: float):
        self._url = f"{api_url}/bot{token}/sendMessage"
        self._chat_id = chat_id
        self._parse_mode = parse_mode
        self._timeout_s = timeout_s
        import requests

        self._session = requests.Session()

    def payload(self, alert: Alert) -> dict[str, Any]:
        body: dict[str, Any] = {"chat_id": self._chat_id, "text": self.text(alert),
                                "link_preview_options": {"is_disabled": True}}
        if self._parse_mode:
            body["parse_mode"] = self._parse_mode
        return body

    def text(self, alert: Alert) -> str:
        title = f"{_MARK[alert.severity]} {alert.severity.upper()}: {alert.title}"
        # Cut before escaping: cutting escaped text could split an entity.
        body = clip("\n".join(line for line in (alert.text, *field_lines(alert)) if line), MAX_TEXT - 300)
        if self._parse_mode == "HTML":
            return f"<b>{html.escape(title)}</b>\n{html.escape(body)}"[:MAX_TEXT]
        if self._parse_mode == "MarkdownV2":
            return f"*{_markdown_v2(title)}*\n{_markdown_v2(body)}"[:MAX_TEXT]
        return clip(f"{title}\n{body}", MAX_TEXT)

    def send(self, alert: Alert) -> None:
        response = post_json(self._session, self._url, self.payload(alert), service="Telegram",
                             timeout_s=self._timeout_s)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code != 200 or answer.get("ok") is not True:
            description = answer.get("description")
            raise NotifierError(f"Telegram answered HTTP {response.status_code}: "
                                f"{short(str(description or response.reason or 'no description'))}")

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:  # the URL holds the token
        return f"TelegramNotifier(chat_id={self._chat_id!r})"


def _markdown_v2(text: str) -> str:
    return _MARKDOWN_V2_SPECIAL.sub(r"\\\1", text)


def build(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> TelegramNotifier:
    check_options(settings, OPTIONS, {"token": "the bot token is a secret: put it in an environment variable "
                                               "and name that variable with token_env"})
    chat_id = settings.get("chat_id")
    if isinstance(chat_id, bool) or not (isinstance(chat_id, int) or (isinstance(chat_id, str) and chat_id)):
        raise ValueError("chat_id is required: the chat's numeric id, or \"@channelusername\"")
    parse_mode = settings.get("parse_mode")
    if parse_mode is not None and parse_mode not in PARSE_MODES:
        raise ValueError(f"parse_mode must be one of {', '.join(PARSE_MODES)}, or left out for plain text")
    token = secrets.get("token", "")
    if not token or any(c.isspace() or c == "/" for c in token):
        raise ValueError("the bot token (from token_env) is empty or malformed")
    return TelegramNotifier(token, chat_id, parse_mode=parse_mode,
                            api_url=url_option({"api_url": settings.get("api_url", DEFAULT_API_URL)}, "api_url").rstrip("/"),
                            timeout_s=timeout_option(settings))


@arb.hookimpl
def arb_register_notifiers(register):
    register(NotifierSpec(NAME, build, "send alerts to a Telegram chat through a bot",
                          default_settings={"token_env": "TELEGRAM_BOT_TOKEN"}))
