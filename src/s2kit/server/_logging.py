"""Log output of ``s2kit lite``: ``--log-level`` and ``--log-format text|json``.

Lite logs through the standard library, on loggers under ``s2kit`` (requests on
``s2kit.server.requests``, see ``_observe.py``). :func:`configure` gives the ``s2kit`` logger
one handler writing to stderr, in one of two formats:

* ``text``: ``2026-05-01T12:00:00.123Z INFO s2kit.server.requests: GET /v1/basins -> 200 ...``
  (UTC), with a traceback after the line when an exception was logged;
* ``json``: one JSON object per line with ``time``, ``level``, ``logger``, ``message``, the
  request fields when the line is a request's (``method``, ``path``, ``status``,
  ``duration_ms``, ``op``, ``code``, ``error``), and ``exception`` (the traceback as one
  string) when one was logged. Every line parses on its own (a traceback never spills onto
  further lines).

The JSON formatter is written here rather than taken from a library (python-json-logger): it
is a dozen lines, fewer than the glue a dependency would need.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import IO

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
REQUEST_FIELDS = ("method", "path", "status", "duration_ms", "op", "code", "error")
"""Fields a request's line carries (``extra`` of the log call, ``_observe.py``)."""


def _utc(created: float) -> str:
    whole = int(created)
    millis = int((created - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, the time in UTC."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc(record.created)

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            if name in record.__dict__:
                doc[name] = record.__dict__[name]
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged (as the standard library's
    last-resort handler does), so a replaced or closed stderr never strands it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass  # always sys.stderr


def configure(
    level: str = "info", fmt: str = "text", stream: IO[str] | None = None
) -> Callable[[], None]:
    """Send lite's logs (the ``s2kit`` loggers) at ``level`` and above to ``stream`` (default:
    stderr, as it is at each line) in ``fmt``; returns a function that restores the ``s2kit``
    logger as it was. Meant for the process ``s2kit lite`` owns (a library user configures
    logging their own way).

    Raises:
        ValueError: an unknown level or format.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: one of {', '.join(FORMATS)}")
    logger = logging.getLogger("s2kit")
    before = (list(logger.handlers), logger.level, logger.propagate)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.handlers = [handler]
    logger.setLevel(level.upper())
    # The handler is the process's only output for lite's logs: the root logger (and the
    # last-resort handler, which prints bare messages) must not print them a second time.
    logger.propagate = False

    def restore() -> None:
        logger.handlers, logger.propagate = before[0], before[2]
        logger.setLevel(before[1])
        handler.close()

    return restore
