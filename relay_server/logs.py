"""Structured logs: one JSON object per line. Callers never pass payloads or secrets.
`LogSummary` keeps a flood of one kind of event to a few lines per interval."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class LogSummary:
    """One kind of event that a flood could repeat thousands of times (failed
    authentications, malformed requests): the first `burst` of each `interval_s` are
    logged one by one, the rest only counted, by `kind`, and reported in one summary
    line (event `<event> (summary)`, fields `suppressed`, `by_kind`, `addresses`) when
    the interval ends."""

    MAX_ADDRESSES = 1000  # distinct addresses remembered per interval (a count only)

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        event: str,
        *,
        burst: int = 10,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._event = event
        self._burst = burst
        self._interval = interval_s
        self._clock = clock
        self._window_end = -math.inf
        self._logged = 0
        self._suppressed: Counter[str] = Counter()
        self._addresses: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None

    def log(self, kind: str, address: str | None = None, **fields: Any) -> None:
        now = self._clock()
        if now >= self._window_end:
            self.flush()
            self._window_end = now + self._interval
            self._logged = 0
        if self._logged < self._burst:
            self._logged += 1
            extra = dict(fields)
            if address is not None:
                extra["address"] = address
            self._logger.log(self._level, self._event, extra=extra)
            return
        self._suppressed[kind] += 1
        if address is not None and len(self._addresses) < self.MAX_ADDRESSES:
            self._addresses.add(address)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the next log() or flush() reports it
            self._timer = loop.call_later(max(0.0, self._window_end - now), self.flush)

    def flush(self) -> None:
        """Report what was suppressed so far (at the end of each interval, and at exit)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._suppressed:
            return
        self._logger.log(
            self._level,
            f"{self._event} (summary)",
            extra={
                "suppressed": sum(self._suppressed.values()),
                "by_kind": dict(sorted(self._suppressed.items())),
                "addresses": len(self._addresses),
                "interval_s": self._interval,
            },
        )
        self._suppressed.clear()
        self._addresses.clear()
