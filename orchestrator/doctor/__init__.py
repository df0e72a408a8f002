"""Host checks, one module, two uses: `orchestrate doctor [SCENARIO]` prints them all; `orchestrate
run` runs the preflight ones before it provisions anything and records the host's noise
(doctor.noise) before and after its windows.

Each check is a `Check` (orchestrator.check: ok, warn or fail, what was seen, and the fix),
printed one per line by `render` (pyperf's `system show`, flutter's `doctor`). The aws SSH-path
checks live with the provider (hosts.aws.reach), which runs them in its own pre-flight too.
"""

from __future__ import annotations

from orchestrator.check import Check, Status

__all__ = ["Check", "Status", "render"]


def render(checks: list[Check]) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "fail")}
    lines = [c.line() for c in checks]
    lines.append(f"doctor: {counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail")
    return "\n".join(lines)
