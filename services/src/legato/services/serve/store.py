"""`JobStore`: job records and their files on disk, so that any ingress replica (on a node that sees the
folder) answers for any job, and a file is only ever listed once it is complete.

Layout: ``ROOT/<id>/job.json`` (the `Job` record) and ``ROOT/<id>/<name>`` (its files). Records are written
to a temporary sibling and renamed into place; files are written atomically by the pipelines' writers.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

from pydantic import ValidationError

from legato.services.serve.schemas import ErrorBody, Job

RECORD = "job.json"
_ID = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class JobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def new(self, kind: str, request: dict, service: str | None = None) -> Job:
        job = Job(id=uuid.uuid4().hex, kind=kind, status="running", created=time.time(), request=request,
                  service=service)  # fmt: skip
        self.folder(job.id).mkdir()
        self.save(job)
        return job

    def folder(self, job_id: str) -> Path:
        if not _ID.match(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def save(self, job: Job) -> None:
        path = self.folder(job.id) / RECORD
        tmp = path.with_name(f".{RECORD}.{uuid.uuid4().hex[:8]}.part")
        tmp.write_text(job.model_dump_json(indent=1))
        os.replace(tmp, path)

    def get(self, job_id: str) -> Job | None:
        """The record of ``job_id``, or None for an unknown (or malformed) id."""
        try:
            return Job.model_validate_json((self.folder(job_id) / RECORD).read_text())
        except (KeyError, OSError, ValidationError):
            return None

    def file(self, job_id: str, name: str) -> Path | None:
        """The path of a finished job's file, or None when there is no such job or file."""
        job = self.get(job_id)
        if job is None or not _NAME.match(name) or name not in {f.name for f in job.files}:
            return None
        path = self.folder(job_id) / name
        return path if path.is_file() else None

    def recover(self, service: str) -> int:
        """Mark failed the jobs left ``running`` by another service instance (one that stopped or was killed
        before they finished: nothing will finish them now); returns how many. Jobs of ``service`` itself
        (another replica of the same app) are left alone."""
        failed = 0
        for folder in self.root.iterdir():
            job = self.get(folder.name) if _ID.match(folder.name) else None
            if job is not None and job.status == "running" and job.service != service:
                error = ErrorBody(error="interrupted", message="the service stopped before this job finished",
                                  fix="submit the request again")  # fmt: skip
                self.save(
                    job.model_copy(update={"status": "failed", "finished": time.time(), "error": error})
                )
                failed += 1
        return failed

    def prune(self, keep: int) -> int:
        """Remove the oldest finished jobs beyond the newest ``keep``; returns how many went."""
        folders = sorted((p for p in self.root.iterdir() if _ID.match(p.name)), key=_mtime, reverse=True)
        removed = 0
        for folder in folders[keep:]:
            job = self.get(folder.name)
            if job is not None and job.status != "running":
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def _mtime(path: Path) -> float:
    try:
        return (path / RECORD).stat().st_mtime
    except OSError:
        return 0.0
