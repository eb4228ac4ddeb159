"""A job's output folder: its lock and its manifest, so that no item is skipped, made twice, lost or half-written.

- One run owns a folder at a time: `OutputFolder` holds an exclusive lock on ``.legato.lock`` for the run,
  and a second run is refused with `FolderBusy` before it touches anything (its clean-up of temporary files
  included). A folder the run created and left empty (a model that failed to load) is removed again.
- The manifest (``manifest.jsonl``) holds one line per finished item, each written whole or not at all: a
  line that a full disk or a kill cut short is cut back to the last whole line before anything is appended,
  and a write that fails part-way is undone.
- Each line records every file's size and SHA-256 (`file_record`), so a resume knows which finished items
  are missing a file, hold a damaged one or lack a format asked for now (`missing_files`), and remakes
  exactly those; a remade item's old line is dropped, so the manifest keeps one line per item.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

MANIFEST = "manifest.jsonl"
LOCK = ".legato.lock"


class FolderBusy(RuntimeError):
    """Another run holds the output folder."""


class NotWritable(ValueError):
    """The output folder cannot be made or written (found before any work: a bad choice of folder)."""


def file_record(path: Path) -> dict:
    """What the manifest keeps of a written file: its size and SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def missing_files(folder: Path, row: dict, names: Iterable[str]) -> list[str]:
    """Which of ``names`` a finished item's manifest ``row`` does not vouch for in ``folder``: not there, not
    recorded, or not the size and hash recorded (a truncated or replaced file)."""
    records = row.get("checks", {})
    missing = []
    for name in names:
        path, record = folder / name, records.get(name)
        if (
            record is None
            or not path.is_file()
            or path.stat().st_size != record["bytes"]
            or file_record(path)["sha256"] != record["sha256"]
        ):
            missing.append(name)
    return missing


def read_manifest(folder: Path) -> list[dict]:
    """The manifest's whole lines, in order (a line cut short, which a run under the lock repairs, is left
    out)."""
    file = Path(folder) / MANIFEST
    if not file.is_file():
        return []
    rows = []
    for line in file.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


class OutputFolder:
    """``with OutputFolder(path) as out:`` holds the folder for one run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.manifest = self.path / MANIFEST
        self._lock: int | None = None
        self._created = False

    def __enter__(self) -> OutputFolder:
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise NotWritable(
                f"cannot write into the output folder {self.path}: {err.strerror}; choose a folder you can write to"
            ) from err
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._lock, 100, 0).decode(errors="replace").strip() or "another process"
            os.close(self._lock)
            self._lock = None
            raise FolderBusy(
                f"{self.path} is being written by another run ({holder}); wait for it to finish, or give this "
                "job another output folder"
            ) from None
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, f"pid {os.getpid()}\n".encode(), 0)
        for stray in self.path.glob(".*.part"):  # temporary files of a run that was killed mid-write
            stray.unlink(missing_ok=True)
        self.repair()
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None
        if error is not None and self._created and not any(p.name != LOCK for p in self.path.iterdir()):
            (self.path / LOCK).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.path.rmdir()

    def repair(self) -> None:
        """Cut a line that a full disk or a kill left without its end back to the last whole line, and drop
        any line that does not parse."""
        if not self.manifest.is_file():
            return
        data = self.manifest.read_bytes()
        lines = data.split(b"\n")[:-1]  # a last piece without its newline is torn
        whole = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                json.loads(line)
                whole.append(line)
        if len(whole) != len(lines) or (not data.endswith(b"\n") and data):
            self.rewrite([json.loads(line) for line in whole])

    def rows(self) -> dict[str, dict]:
        """The finished items' lines by id (the last line of an id, should there be two)."""
        return {row["id"]: row for row in read_manifest(self.path)}

    def rewrite(self, rows: Iterable[dict]) -> None:
        """Replace the manifest by ``rows`` at once (a temporary sibling renamed into place)."""
        from legato.codec import atomic_output

        with atomic_output(self.manifest) as tmp:
            Path(tmp).write_text("".join(json.dumps(row) + "\n" for row in rows))

    def append(self, row: dict) -> None:
        """Append ``row`` as one whole line, synced; a write that fails part-way is undone and the error
        names the manifest."""
        data = (json.dumps(row) + "\n").encode()
        fd = os.open(self.manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            before = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(fd)
            except OSError as err:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                raise OSError(err.errno, f"cannot write {self.manifest}: {err.strerror}; the item is made "
                              "again when the job runs again") from err  # fmt: skip
        finally:
            os.close(fd)
