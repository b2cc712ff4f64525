"""Log records as JSON lines, for STALL_LOG_FORMAT=json.

The standard library's, not a package's: the whole formatter is the dict below, and what a line
holds (the request's fields at the top level, next to time, level, logger and message) is ours to
keep stable for the pipelines that read it.
"""

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """One JSON object per record. A record logged with ``extra={"fields": {...}}`` carries those
    fields at the top level (the request lines of stall.core.requestlog do)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
