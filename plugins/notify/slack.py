"""Slack: each alert as a message through an incoming webhook.

``POST <webhook URL>`` with ``{"text": <fallback for notifications>,
"blocks": [header, section, fields..., context]}``.  The webhook URL is the
credential, so it comes from the variable ``webhook_url_env`` names and never
appears in a log line or an error.

Options::

    - type: slack
      webhook_url_env: SLACK_WEBHOOK_URL   # the default
      timeout_s: 5
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: loading plugins must stay quick
    import requests

import arb
from arb.notify import Alert, NotifierError
from arb.specs import NotifierSpec

from arb_notify.common import check_options, clip, post_json, short, timeout_option, url_option

NAME = "slack"
OPTIONS = ("webhook_url_env", "timeout_s")
# Block Kit limits: header text 150 characters, section text 3000, at most
# 10 fields per section of 2000 each.
MAX_HEADER, MAX_SECTION, MAX_FIELDS, MAX_FIELD = 150, 3000, 10, 2000
_MARK = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(alert: Alert) -> dict[str, Any]:
    title = f"{alert.severity.upper()}: {alert.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(title, MAX_HEADER)}},
    ]
    if alert.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(escape(alert.text), MAX_SECTION)}})
    items = list(alert.fields.items())
    for start in range(0, len(items), MAX_FIELDS):
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": clip(f"*{escape(str(k))}*\n{escape(str(v))}", MAX_FIELD)}
            for k, v in items[start:start + MAX_FIELDS]]})
    stamp = datetime.fromtimestamp(alert.ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"arb · {alert.kind} · {stamp}"}]})
    return {"text": clip(f"{_MARK[alert.severity]} {escape(title)}: {escape(alert.text)}", MAX_SECTION),
            "blocks": blocks}


class SlackNotifier:
    def __init__(self, webhook_url: str, *, timeout_s: float):
        self._url = webhook_url
        self._timeout_s = timeout_s
        import requests

        self._session = requests.Session()

    def send(self, alert: Alert) -> None:
        response = post_json(self._session, self._url, payload(alert), service="Slack", timeout_s=self._timeout_s)
        # Slack answers 200 "ok"; errors come as 4xx with a short code like invalid_payload.
        if response.status_code != 200:
            raise NotifierError(f"Slack answered HTTP {response.status_code}: {short(response.text)}")

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:  # the URL is the credential
        return "SlackNotifier()"


def build(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> SlackNotifier:
    check_options(settings, OPTIONS, {"webhook_url": "the Slack webhook URL is a secret: put it in an environment "
                                                     "variable and name that variable with webhook_url_env"})
    try:
        url = url_option(secrets, "webhook_url")
    except ValueError:
        raise ValueError("the variable webhook_url_env names must hold the webhook's https URL") from None
    return SlackNotifier(url, timeout_s=timeout_option(settings))


@arb.hookimpl
def arb_register_notifiers(register):
    register(NotifierSpec(NAME, build, "send alerts to a Slack channel through an incoming webhook",
                          default_settings={"webhook_url_env": "SLACK_WEBHOOK_URL"}))
