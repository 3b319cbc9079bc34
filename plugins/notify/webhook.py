"""Generic webhook: POST each alert as JSON to a URL of your choice.

The body is :meth:`arb.notify.Alert.as_dict`::

    {"kind": "leg_exposure", "severity": "critical", "title": "...", "text": "...",
     "fields": {"asset": "BTC", ...}, "ts": 1767225600.0, "count": 1}

Options::

    - type: webhook
      url: https://alerts.example.com/arb       # or url_env: ARB_WEBHOOK_URL, if the URL is itself a secret
      secret_env: ARB_WEBHOOK_SECRET            # optional: sent in the secret_header header
      secret_header: Authorization              # default; the variable's value is sent as is
      timeout_s: 5
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: loading plugins must stay quick
    import requests

import arb
from arb.notify import Alert, NotifierError
from arb.specs import NotifierSpec

from arb_notify.common import check_options, post_json, short, timeout_option, url_option

NAME = "webhook"
OPTIONS = ("url", "url_env", "secret_env", "secret_header", "timeout_s")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class WebhookNotifier:
    def __init__(self, url: str, *, timeout_s: float, headers: Mapping[str, str]):
        self._url = url
        self._timeout_s = timeout_s
        self._headers = dict(headers)
        import requests

        self._session = requests.Session()

    def send(self, alert: Alert) -> None:
        response = post_json(self._session, self._url, alert.as_dict(), service="the webhook",
                             timeout_s=self._timeout_s, headers=self._headers)
        if not 200 <= response.status_code < 300:
            raise NotifierError(f"the webhook answered HTTP {response.status_code}: {short(response.text)}")

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:  # never the URL: it may carry a token
        return "WebhookNotifier()"


def build(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> WebhookNotifier:
    check_options(settings, OPTIONS)
    if ("url" in settings) == ("url_env" in settings):
        raise ValueError("give the endpoint as url, or as url_env naming the variable that holds it (not both)")
    url = url_option(secrets if "url_env" in settings else settings, "url")
    headers = {}
    if "secret_env" in settings:
        header = settings.get("secret_header", "Authorization")
        if not isinstance(header, str) or not _HEADER.match(header):
            raise ValueError("secret_header must be an HTTP header name like Authorization or X-Arb-Secret")
        headers[header] = secrets["secret"]
    elif "secret_header" in settings:
        raise ValueError("secret_header needs secret_env, the variable holding the header's value")
    return WebhookNotifier(url, timeout_s=timeout_option(settings), headers=headers)


@arb.hookimpl
def arb_register_notifiers(register):
    register(NotifierSpec(NAME, build, "POST each alert as JSON to a URL"))
