"""History in S3, so it outlives the machine (a scheduled job's runner is new every night).

Layout under s3://bucket/prefix/:
  index.json                          every session (the same rows as SQLite's sessions table)
                                      and the gate's verdicts
  results/<scenario>/<results id>/... each run's results folder, uploaded whole

index.json's versions (an older one is upgraded on read and written back as the current one
at the next update; results folders' keys are unchanged, so old sessions still read):
  1: sessions, gates, floors
  2: each session also names its points (orchestrator/point.py, JSON objects in axis order)
     and the summary format it was written in; version-1 sessions read with none

The index is the one object two runners may write at once. Every update is a
read-modify-write guarded by S3 conditional writes: If-None-Match: * creates it only
if absent, If-Match: <ETag> replaces only the version that was read; a runner that
lost the race (412) reads again and retries. Results folders are uploaded before the
index names them, and removed again if the index cannot be updated, so the index never
points at a half-uploaded folder and a failed record leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import RunFailed, UserError
from orchestrator.history.fingerprint import SummaryLike, machine_fingerprint, typed
from orchestrator.records import FORMAT_VERSION

INDEX = "index.json"
INDEX_VERSION = 2
MAX_INDEX_BYTES = 64 * 1024 * 1024
RETRIES = 8  # lost races on the index before giving up
CACHE_ENV = "ORCHESTRATE_CACHE"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
           "InvalidToken", "UnrecognizedClientException", "403"}


def parse_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix without slashes at the ends)."""
    m = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", url)
    if not m or not _BUCKET.fullmatch(m[1]):
        raise UserError(f"--history {url}: not an S3 URL; expected s3://BUCKET/PREFIX "
                        "(bucket: 3-63 lower-case letters, digits, dots, hyphens)")
    prefix = (m[2] or "").strip("/")
    if "//" in prefix:
        raise UserError(f"--history {url}: empty path segment in the prefix")
    return m[1], prefix


def upgrade_index_1_to_2(index: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: sessions recorded before points were named have none (their summaries,
    read through records.load, still give them). Returns a new dict."""
    sessions = {rid: {"points": [], "format": None, **s} for rid, s in (index.get("sessions") or {}).items()}
    return {**index, "sessions": sessions, "version": 2}


INDEX_UPGRADES = {1: upgrade_index_1_to_2}


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class S3History:
    def __init__(self, url: str):
        self.bucket, self.prefix = parse_url(url)
        self.where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client: Any = None

    # --- plumbing ---------------------------------------------------------------------

    @property
    def s3(self) -> Any:
        if self._client is None:
            import boto3

            # The endpoint may come from AWS_ENDPOINT_URL(_S3), as for every AWS SDK.
            self._client = boto3.session.Session().client("s3")
        return self._client

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _fail(self, exc: Exception, doing: str, *, bad_input: bool = False) -> Exception:
        """One line naming the store, what was being done and why it failed."""
        from botocore.exceptions import NoCredentialsError

        code = _code(exc)
        if isinstance(exc, NoCredentialsError):
            why = "no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        elif code == "NoSuchBucket" or (code == "404" and "bucket" in doing):
            why = f"no such bucket '{self.bucket}'"
        elif code in _DENIED:
            why = f"access denied ({code}); the credentials need s3:GetObject, s3:PutObject, " \
                  "s3:DeleteObject and s3:ListBucket on the prefix"
        else:
            why = f"{code or type(exc).__name__}: {exc}".splitlines()[0]
        msg = f"history {self.where}: {doing}: {why}"
        return UserError(msg) if bad_input else RunFailed(msg, phase="history")

    def _read_index(self) -> tuple[dict[str, Any], str | None]:
        """(index, its ETag), or an empty index and None when there is none yet."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self._key(INDEX))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return {"version": INDEX_VERSION, "sessions": {}, "gates": {}}, None
            raise self._fail(exc, "reading the index") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "reading the index") from None
        body = obj["Body"].read(MAX_INDEX_BYTES + 1)
        try:
            index = json.loads(body)
        except ValueError:
            raise RunFailed(f"history {self.where}: {INDEX} is not JSON; not touching it",
                            phase="history") from None
        if not isinstance(index, dict) or index.get("version") not in INDEX_UPGRADES.keys() | {INDEX_VERSION}:
            raise RunFailed(f"history {self.where}: {INDEX} is not an index this orchestrate reads "
                            f"(versions 1 to {INDEX_VERSION})", phase="history")
        while index["version"] in INDEX_UPGRADES:
            index = INDEX_UPGRADES[index["version"]](index)
        return index, obj["ETag"]

    def _update_index(self, change: Any) -> None:
        """Apply change(index) atomically: conditional put, re-read and retry on a lost race."""
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(RETRIES):
            index, etag = self._read_index()
            change(index)
            guard = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self.s3.put_object(Bucket=self.bucket, Key=self._key(INDEX), Body=json.dumps(
                    index, indent=1, sort_keys=True).encode(), ContentType="application/json", **guard)
                return
            except ClientError as exc:
                if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    time.sleep(0.05 * (attempt + 1))  # another runner wrote it first: read again
                    continue
                raise self._fail(exc, "writing the index") from None
            except BotoCoreError as exc:
                raise self._fail(exc, "writing the index") from None
        raise RunFailed(f"history {self.where}: the index kept changing under us ({RETRIES} tries); "
                        "not recorded", phase="history")

    # --- the History face --------------------------------------------------------------

    def check(self) -> None:
        """The bucket exists and we may read the prefix: before a run starts, not after."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.head_bucket(Bucket=self.bucket)
            self._read_index()
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "checking the bucket", bad_input=True) from None
        except RunFailed as exc:
            raise UserError(str(exc)) from None

    def record(self, summary: SummaryLike, folder: Path) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        version = summary.get("version") if isinstance(summary, Mapping) else None  # as read, if read
        s = typed(summary)
        rid = s.run_id or folder.name
        scenario = str(s.scenario or "unnamed")
        base = self._key("results", scenario, rid)
        written: list[str] = []
        try:
            # Recording again (a resumed session) uploads only what is new or changed.
            pager = self.s3.get_paginator("list_objects_v2")
            have = {o["Key"]: o["Size"] for page in pager.paginate(Bucket=self.bucket, Prefix=base + "/")
                    for o in page.get("Contents", [])}
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
                key = f"{base}/{path.relative_to(folder).as_posix()}"
                if have.get(key) == path.stat().st_size and not path.name.startswith("summary"):
                    continue
                self.s3.upload_file(str(path), self.bucket, key)
                if key not in have:
                    written.append(key)
            session: dict[str, Any] = {
                "results_id": rid, "scenario": scenario, "started": s.started, "finished": s.finished,
                "status": s.status, "provider": s.provider, "machine": machine_fingerprint(s),
                "path": f"s3://{self.bucket}/{base}", "n_runs": len(s.runs),
                "format": version or FORMAT_VERSION,
                "points": list({r.key: r.key.as_json() for r in s.runs}.values()),
            }
            self._update_index(lambda index: index["sessions"].__setitem__(rid, session))
        except (ClientError, BotoCoreError, RunFailed) as exc:
            self._remove(written)  # nothing half-written: the index never named these
            if isinstance(exc, RunFailed):
                raise
            raise self._fail(exc, f"uploading {folder}") from None
        return session["path"]

    def _remove(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            # Best effort: the index does not name them either way.
            with contextlib.suppress(Exception):
                self.s3.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def record_gate(self, results_id: str, gate: dict[str, Any]) -> None:
        self._update_index(lambda index: index.setdefault("gates", {}).__setitem__(results_id, gate))

    def sessions(self, *, scenario: str | None = None, status: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
        rows = [s for s in self._read_index()[0]["sessions"].values()
                if (not scenario or s["scenario"] == scenario) and (not status or s["status"] == status)]
        rows.sort(key=lambda s: (s.get("started") or "", s["results_id"]), reverse=True)
        return rows[:limit]

    def gates(self) -> dict[str, dict[str, Any]]:
        return dict(self._read_index()[0].get("gates") or {})

    def record_floor(self, results_id: str, floor: dict[str, Any]) -> None:
        self._update_index(lambda index: index.setdefault("floors", {}).__setitem__(results_id, floor))

    def floors(self) -> dict[str, dict[str, Any]]:
        return dict(self._read_index()[0].get("floors") or {})

    def folder(self, session: dict[str, Any], *, files: tuple[str, ...] = ("summary.json",)) -> Path | None:
        """Fetch `files` of a session's results folder into the local cache (kept: results never
        change once indexed); "*" fetches the whole folder."""
        from botocore.exceptions import BotoCoreError, ClientError

        base = session["path"].removeprefix(f"s3://{self.bucket}/")
        root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "orchestrate")
        local = root / "s3" / self.bucket / base
        try:
            if "*" in files:
                pager = self.s3.get_paginator("list_objects_v2")
                names = [o["Key"][len(base) + 1:] for page in pager.paginate(Bucket=self.bucket,
                                                                             Prefix=base + "/")
                         for o in page.get("Contents", [])]
            else:
                names = list(files)
            for name in names:
                target = local / name
                if target.is_file():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.part")
                try:
                    self.s3.download_file(self.bucket, f"{base}/{name}", str(tmp))
                except ClientError as exc:
                    if _code(exc) in ("404", "NoSuchKey") and name != "summary.json":
                        continue  # an optional file (a report not written)
                    raise
                tmp.replace(target)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey"):
                return None
            raise self._fail(exc, f"fetching {session['path']}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"fetching {session['path']}") from None
        return local if (local / "summary.json").is_file() else None
