"""Log lines that read like the service specman replaces (logrus text format), or JSON.

The product documentation shows the sync log as logrus prints it::

    time="2024-12-06T12:43:14Z" level=info msg="Syncing with OCI repo"
    time="2024-12-06T12:43:14Z" level=info msg="Downloading 0.0.0"

Operators grep for exactly these lines, so ``LogrusFormatter`` reproduces logrus' ``TextFormatter``: ``time``,
``level``, ``msg``, then extra fields in key order, each value quoted (Go ``%q`` style) unless it consists only
of ``[A-Za-z0-9-._/@^+]``.  It is hand-written because neither structlog's ``LogfmtRenderer`` nor
``python-json-logger`` follow logrus' quoting rule (they would print ``time=2024-...`` unquoted).

Fields are passed as ``log.info("msg", extra={"fields": {...}})``.  ``RedactSecrets`` masks the value of any
field whose name mentions a password, secret, token or authorization, so a careless call cannot leak one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["JSONFormatter", "LogrusFormatter", "RedactSecrets", "configure"]

_PLAIN = re.compile(r"[A-Za-z0-9\-._/@^+]+")
_SECRET_KEY = re.compile(r"pass|secret|token|authori[sz]ation|credential", re.IGNORECASE)
_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warning", "ERROR": "error", "CRITICAL": "fatal"}
REDACTED = "[redacted]"


def _quote(value: str) -> str:
    """Go ``strconv.Quote`` for the characters that occur in log values."""
    return json.dumps(value, ensure_ascii=False)  # backslash, quote and control characters escaped


def _text(value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, dict | list)
        else str(value)
    )
    return text if _PLAIN.fullmatch(text) else _quote(text)


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class LogrusFormatter(logging.Formatter):
    """``time="…" level=info msg="…" key=value …`` exactly as logrus' TextFormatter prints it."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            message = f"{message}: {record.exc_info[1]}"
        parts = [f"time={_quote(_time(record))}", f"level={_LEVELS.get(record.levelname, record.levelname.lower())}"]
        parts.append(f"msg={_text(message)}")
        parts.extend(f"{key}={_text(value)}" for key, value in sorted(_fields(record).items()))
        return " ".join(parts)


class JSONFormatter(logging.Formatter):
    """One JSON object per line (``time``, ``level``, ``msg`` and the fields), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {"time": _time(record), "level": _LEVELS.get(record.levelname, "info")}
        obj["msg"] = record.getMessage()
        obj.update(_fields(record))
        return json.dumps(obj, default=str, ensure_ascii=False)


class RedactSecrets(logging.Filter):
    """Mask the values of fields named like secrets (``password``, ``token``, ``Authorization``...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: (REDACTED if _SECRET_KEY.search(str(k)) and v else v) for k, v in fields.items()}
        return True


def configure(level: str = "info", *, fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send specman's logs (the ``specman`` logger tree) to ``stream`` (stderr) in ``fmt`` ("text" or "json")."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogrusFormatter() if fmt == "text" else JSONFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("specman")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper() if level.lower() != "fatal" else "CRITICAL")
    logger.propagate = False
    return handler
