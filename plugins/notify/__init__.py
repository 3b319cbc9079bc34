"""arb's built-in notifiers: a generic JSON webhook, Telegram and Slack.

One plugin module per notifier (entry points ``notify-webhook``,
``notify-telegram``, ``notify-slack``); :mod:`arb_notify.common` holds the
HTTP call and option checks they share.
"""
