"""What the sysstat collectors (pidstat, mpstat, sar) share: their environment and clock.

Sysstat prints each sample's time as HH:MM:SS only, and the date once, in the banner. With
ENV (TZ=UTC, S_TIME_FORMAT=ISO, LC_ALL=C) both are stable, so `SysstatClock` turns them into
epoch seconds (rolling over midnight).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

# S_COLORS=never: no escape codes even when run on a terminal
ENV: dict[str, str] = {"LC_ALL": "C", "TZ": "UTC", "S_TIME_FORMAT": "ISO", "S_COLORS": "never"}

_BANNER_DATE = re.compile(r"\s(\d{4})-(\d{2})-(\d{2})\s|\s(\d{2})/(\d{2})/(\d{2,4})\s")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\s+(AM|PM))?(?=\s)")


class SysstatClock:
    """Turns sysstat's banner date plus per-line HH:MM:SS (UTC) into epoch seconds."""

    def __init__(self) -> None:
        self.day: date | None = None
        self._last: float | None = None

    def banner(self, line: str) -> bool:
        """Take the date from a 'Linux ... (host) DATE ...' line; True if it was one."""
        if not line.startswith("Linux"):
            return False
        m = _BANNER_DATE.search(line + " ")
        if m and m[1]:
            self.day = date(int(m[1]), int(m[2]), int(m[3]))
        elif m:
            year = int(m[6])
            self.day = date(year + 2000 if year < 100 else year, int(m[4]), int(m[5]))
        self._last = None
        return True

    def time(self, line: str) -> tuple[float, str] | None:
        """(epoch seconds, rest of line) for a line starting with a time, else None."""
        m = _TIME.match(line)
        if not m or self.day is None:
            return None
        hour = int(m[1]) % 12 + (12 if m[4] == "PM" else 0) if m[4] else int(m[1])
        stamp = datetime(self.day.year, self.day.month, self.day.day, hour, int(m[2]),
                         int(m[3]), tzinfo=UTC).timestamp()
        if self._last is not None and stamp < self._last - 12 * 3600:
            self.day += timedelta(days=1)  # past midnight
            stamp += 86400
        self._last = stamp
        return stamp, line[m.end():]


def in_window(t: float, t0: float | None, t1: float | None) -> bool:
    return (t0 is None or t >= t0) and (t1 is None or t <= t1)
