"""A local record of each aws run attempt: run id, region, profile, endpoint, and the ids of
what it created, written as each is learned. `orchestrate cleanup --provider aws` reads
these to know which regions to scan (with no --region it scans every region they name), so
a run in a region other than the profile's is not forgotten. A record is removed once its
run's teardown (or a cleanup) leaves nothing; a record that cannot be written is a warning,
never a failed run: the tags remain the source of truth."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = 1


def state_dir() -> Path:
    """$ORCHESTRATE_STATE_DIR, else $XDG_STATE_HOME/orchestrate/aws-runs (~/.local/state/...)."""
    if d := os.environ.get("ORCHESTRATE_STATE_DIR"):
        return Path(d)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "orchestrate" / "aws-runs"


@dataclass
class RunState:
    run_id: str
    attempt: str  # the attempt's resource name (orchestrate-<run id>-<nonce>): one file each
    region: str
    profile: str | None = None
    endpoint_url: str | None = None
    expires: str = ""
    ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids (cleanup.KINDS)

    @property
    def path(self) -> Path:
        return state_dir() / f"{self.attempt}.json"

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": VERSION, **asdict(self)}, indent=1))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("orchestrate: WARNING aws: could not write the run's local record %s: %s",
                        self.path, exc)


def load_all() -> list[RunState]:
    """Every record here; an unreadable one is a warning and skipped."""
    out: list[RunState] = []
    for path in sorted(state_dir().glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            if doc.pop("version", None) != VERSION:
                raise ValueError("unknown version")
            out.append(RunState(**doc))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("orchestrate: WARNING aws: skipping the run record %s: %s", path, exc)
    return out


def forget(run_id: str) -> None:
    """Drop every record of `run_id` (all its attempts: teardown finds them all by tag)."""
    for st in load_all():
        if st.run_id == run_id:
            st.path.unlink(missing_ok=True)
