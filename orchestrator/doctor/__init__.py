"""Host checks, one module, two uses: `orchestrate doctor [SCENARIO]` prints them all; `orchestrate
run` runs the preflight ones before it provisions anything and records the host's noise
(doctor.noise) before and after its windows.

Each check is a `Check` (ok, warn or fail, what was seen, and the fix), printed one per line
by `render` (pyperf's `system show`, flutter's `doctor`).
"""

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


def render(checks: list[Check]) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "fail")}
    lines = [c.line() for c in checks]
    lines.append(f"doctor: {counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail")
    return "\n".join(lines)
