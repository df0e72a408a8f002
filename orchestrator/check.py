"""One check's outcome: ok, warn or fail, what was seen, and the fix. Host checks (doctor) and
a provider's pre-flight (the aws SSH path, hosts.aws.reach) both produce them, so it lives
below both; `orchestrate doctor` prints them one per line (doctor.render)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return f"{text}\n      fix: {self.fix}" if self.fix and self.status != "ok" else text
