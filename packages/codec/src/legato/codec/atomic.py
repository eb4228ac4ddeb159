"""Atomic file output: write to a temporary sibling, rename over the target only once it is complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on any error delete it.

    Readers therefore see either the old file (or none) or the complete new one, never a partial write,
    even if the process is killed midway (the stray ``.<name>.*.part`` file is all that can remain).
    Parent folders are created. The file gets the mode an ordinary ``open`` would give it (``0o666`` less
    the umask), not the temporary file's private ``0o600``: shared storage and web servers can read it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_failure(path: str | os.PathLike[str], err: BaseException) -> BaseException | None:
    """An operating-system failure while writing ``path`` (a full disk, a lost mount, no permission) as an
    `OSError` naming the path, for writers to raise instead of their own error type (which says the input was
    bad); None where ``err`` is not one."""
    if not isinstance(err, OSError) or err.errno is None:
        return None
    return OSError(err.errno, f"cannot write {path}: {os.strerror(err.errno)}")


def umask() -> int:
    """This process's umask (read, not changed: ``os.umask`` can only be read by setting it, which races
    with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc (macOS): the classic read-by-setting
    os.umask(mask)
    return mask
