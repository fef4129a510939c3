"""Credentials out of everything the planner writes down: logs, stored configuration, messages.

A database URL (``postgresql://planner:PASSWORD@host/db``) or a Prometheus endpoint with basic
auth (``https://user:PASSWORD@prometheus``) is a credential. The planner needs them to connect,
but every copy it prints, logs or stores goes through :func:`redact_url` first, so that the
password becomes ``***`` and the rest stays readable. Tokens (``PROMETHEUS_TOKEN``, the
kubeconfig's) are never formatted into a message in the first place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a secret (libpq's ``password`` / ``sslpassword``, API keys ...).
_SECRET_PARAM = re.compile(r"pass|secret|token|key|auth|credential", re.IGNORECASE)
# Configuration fields that hold a URL, and flags whose value is one.
URL_FIELDS = ("metric_pulling_prometheus_endpoint",)
URL_FLAGS = ("--db-url", "--metric-pulling-prometheus-endpoint")
# scheme://user:password@ anywhere in a text (a URL inside a message or an argument).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@'\"]*):(?P<password>[^@\s/'\"]*)@")


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo and secret query parameters replaced by ``***``.

    Anything that does not parse as a URL is returned with only the ``user:password@`` pattern
    masked, so a malformed value is never the reason a secret is printed."""
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.query:
        return text
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_SECRET_PARAM.search(name) for name, _ in query):
        return text
    masked = urlencode([(n, MASK if _SECRET_PARAM.search(n) else v) for n, v in query], safe="*")
    return urlunsplit(parts._replace(query=masked))


def redact_text(text: str) -> str:
    """Every ``scheme://user:password@`` in a free text (an error message) masked."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line as it may be logged: URL-valued flags and any URL with a password masked."""
    out: list[str] = []
    take_next = False
    for arg in argv:
        if take_next:
            out.append(redact_url(arg))
            take_next = False
            continue
        flag, eq, value = arg.partition("=")
        if flag in URL_FLAGS:
            if eq:
                out.append(f"{flag}={redact_url(value)}")
            else:
                out.append(arg)
                take_next = True
            continue
        out.append(redact_text(arg))
    return out


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration (``PlannerConfig.model_dump``) as it may be stored or shown."""
    out = dict(config)
    for name in URL_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = redact_url(out[name])
    return out
