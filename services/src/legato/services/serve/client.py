"""A small HTTP client of the service (standard library only), and a bounded load generator.

::

    client = Client("http://127.0.0.1:8000")
    job = client.music(prompt="a jig on fiddle", seed=0, duration=10)      # waits; raises ClientError on 4xx/5xx
    Path("jig.wav").write_bytes(client.download(job["files"][0]["url"]))
    result = load("http://127.0.0.1:8000", {"prompt": "a reel"}, requests=32, concurrency=8)
    print(result.summary())                                                 # requests/s, p50, p99, statuses
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class ClientError(Exception):
    """A 4xx/5xx answer: ``status`` and the service's JSON error body (``error``, ``message``, ``fix``, and
    ``problems``: each wrong field with its problem and fix, also in the exception's message)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        problems = "".join(
            f"\n  {p.get('field') or 'request'}: {p.get('problem')} (fix: {p.get('fix')})"
            for p in body.get("problems") or []
        )
        super().__init__(
            f"{status} {body.get('error')}: {body.get('message')} (fix: {body.get('fix')}){problems}"
        )
        self.status, self.body = status, body

    @property
    def problems(self) -> list[dict[str, Any]]:
        """The fields the service found wrong: ``{"field", "problem", "fix"}`` each."""
        return list(self.body.get("problems") or [])


class Client:
    """A client of the service at ``url``; ``token`` is sent as ``Authorization: Bearer`` where the service
    asks for one."""

    def __init__(self, url: str, timeout: float = 600.0, token: str | None = None) -> None:
        self.url, self.timeout, self.token = url.rstrip("/"), timeout, token

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
        """One exchange, whatever its status: ``(status, headers, body bytes)``."""
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                return res.status, dict(res.headers), res.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, _, data = self.request(method, path, body)
        try:
            out = json.loads(data)
        except json.JSONDecodeError:
            out = {"error": f"http_{status}", "message": data.decode(errors="replace")[:500]}
        if status >= 400:
            raise ClientError(status, out)
        return out

    def health(self) -> dict[str, Any]:
        return self.json("GET", "/healthz")

    def music(self, *, wait: bool = True, **fields: Any) -> dict[str, Any]:
        """``POST /v1/music`` with ``fields`` (prompt, seed, duration, format, ...): the job record."""
        return self.json("POST", f"/v1/music?wait={str(wait).lower()}", fields)

    def video(self, *, wait: bool = True, **fields: Any) -> dict[str, Any]:
        return self.json("POST", f"/v1/video?wait={str(wait).lower()}", fields)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.json("GET", f"/v1/jobs/{job_id}")

    def wait(self, job_id: str, poll: float = 0.25, timeout: float | None = None) -> dict[str, Any]:
        """Poll a job until it is no longer running."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while (job := self.job(job_id))["status"] == "running":
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still running after {timeout or self.timeout:g} s")
            time.sleep(poll)
        return job

    def download(self, url: str) -> bytes:
        """A file's bytes, from the ``url`` a job lists."""
        status, _, data = self.request("GET", url)
        if status >= 400:
            raise ClientError(status, json.loads(data))
        return data


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float]  # of every request, in seconds
    statuses: Counter = field(default_factory=Counter)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # the 200 answers

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def summary(self) -> str:
        return (f"{len(self.latencies)} requests in {self.seconds:.2f} s: {self.ok / self.seconds:.2f} ok/s, "
                f"p50 {self.percentile(50):.3f} s, p99 {self.percentile(99):.3f} s, statuses {dict(self.statuses)}")  # fmt: skip


def load(url: str, body: dict[str, Any] | list[dict[str, Any]], *, requests: int, concurrency: int,
         path: str = "/v1/music", timeout: float = 600.0, token: str | None = None) -> LoadResult:  # fmt: skip
    """Send ``requests`` POSTs (``body``, or bodies in turn) with ``concurrency`` in flight; every request
    is timed whatever it answers. Bounded: it sends exactly ``requests`` and stops."""
    bodies = body if isinstance(body, list) else [body]
    client = Client(url, timeout, token)

    def one(i: int) -> tuple[float, int, bytes]:
        start = time.perf_counter()
        status, _, data = client.request("POST", path, bodies[i % len(bodies)])
        return time.perf_counter() - start, status, data

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(one, range(requests)))
    result = LoadResult(time.perf_counter() - start, [a[0] for a in answers])
    for _, status, data in answers:
        result.statuses[status] += 1
        if status == 200:
            result.jobs.append(json.loads(data))
    return result
