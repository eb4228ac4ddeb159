"""Joining a Ray cluster, or starting a local one that never outlives the program that started it.

`connect` joins the cluster at an address, or starts a local one. A local cluster is Ray's own processes
(GCS, raylet, agents, workers); Ray stops them when the driver exits normally, but not when it is killed
(``kill -9``, the OOM killer): its agents kept running, one listening on every interface. So `connect` also
starts a small watcher in its own session (`reap`) that waits for the driver to be gone and then stops every
process of that cluster's session. SIGTERM keeps the program's own handler (the ``legato`` command's: stop
as Ctrl-C does, exit 130) rather than Ray's, which exits mid-call with a stack dump.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def connect(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join the Ray cluster at ``address`` (default ``$RAY_ADDRESS``), or start a local one (of ``num_cpus``,
    default all) where neither is set; nothing where this process is connected already."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
             log_to_driver=False)  # fmt: skip
    if main and callable(previous):  # the program's own SIGTERM handler, not the one ray.init installs
        signal.signal(signal.SIGTERM, previous)
    if not address:
        watch_local_cluster()


def watch_local_cluster() -> None:
    """Start `reap` for the local cluster this process started, in a session of its own (it outlives us)."""
    import ray

    session = ray._private.worker._global_node.get_session_dir_path()  # no public API names it
    code = f"from legato.pipelines.ray_cluster import reap; reap({os.getpid()}, {str(session)!r})"
    subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, close_fds=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def reap(driver: int, session: str, poll: float = 0.5, grace: float = 5.0) -> list[int]:
    """Wait until process ``driver`` is gone, then stop every process of the Ray session ``session``: those
    whose command line names the session's folder and their descendants, watched while the driver lives (the
    agents rename themselves, ``ray::DashboardAgent``, and outlive their raylet): SIGTERM, then SIGKILL after
    ``grace`` seconds. Returns their pids."""
    known: dict[int, str] = {}  # pid -> its start time, so that a reused pid is never taken for ours
    while _alive(driver):
        for pid in family(session_processes(session)):
            known.setdefault(pid, _started(pid))
        time.sleep(poll)
    for pid in family(session_processes(session)):
        known.setdefault(pid, _started(pid))
    victims = [pid for pid, started in known.items() if started and _started(pid) == started]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in victims):
        time.sleep(0.1)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return victims


def session_processes(session: str) -> list[int]:
    """The processes whose command line names the Ray session folder ``session`` (Linux: /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if session in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


def family(pids: list[int]) -> set[int]:
    """``pids`` and all their descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    found.discard(os.getpid())
    return found


def _started(pid: int) -> str:
    """A process's start time (clock ticks since boot), or '' where it is gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie (dead, not yet reaped by its parent) is gone
        if (Path("/proc") / str(pid) / "stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True
