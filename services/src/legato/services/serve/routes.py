"""The HTTP API (FastAPI): routes, the body-size limit, and every error as a JSON `ErrorBody`.

::

    POST /v1/music                  MusicRequest -> Job (200 when done; ?wait=false: 202 at once)
    POST /v1/video                  VideoRequest -> Job
    GET  /v1/jobs/{id}              Job: status running | done | failed, files with their URLs
    GET  /v1/jobs/{id}/files/{name} a file of a finished job
    GET  /healthz                   models, stages, limits
    GET  /openapi.json              the schema of all of the above
"""

from __future__ import annotations

import hmac
import mimetypes
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request

from legato.services.serve.schemas import (
    ErrorBody,
    Job,
    MusicRequest,
    ServiceError,
    VideoRequest,
    problems_from_errors,
)

if TYPE_CHECKING:
    from legato.services.serve.service import Ingress

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in [(401, "the service's token is missing or wrong"), (404, "no such model, job or file"), (413, "request body too large"),
                       (422, "invalid request: problems name each field and its fix"),
                       (503, "overloaded: retry later"), (500, "the job failed")]
}  # fmt: skip
_BODIES = {"/v1/music": MusicRequest, "/v1/video": VideoRequest}


def error(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status, headers)


def make_app(service: Ingress) -> FastAPI:
    """The FastAPI app of one ingress replica."""
    app = FastAPI(
        title="Legato",
        version="1",
        description="Music and video from text prompts, made by cascaded diffusion models. See docs/serve.md.",
    )
    app.add_middleware(BodyLimit, limit=service.limits.max_body_bytes)
    if service.token is not None:
        app.add_middleware(BearerToken, token=service.token)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error(exc.status, exc.body, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        model = _BODIES.get(request.url.path)
        fields = sorted(model.model_fields) if model else []
        problems = problems_from_errors(list(exc.errors()), fields)
        body = ErrorBody(error="invalid_request", message=f"{len(problems)} problem(s) in the request",
                         fix="fix each field listed under problems; the schema is at /openapi.json",
                         problems=problems)  # fmt: skip
        return error(422, body)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        fix = {404: "see /openapi.json for the routes", 405: "see /openapi.json for each route's method"}
        body = ErrorBody(error=f"http_{exc.status_code}", message=str(exc.detail),
                         fix=fix.get(exc.status_code, "see /openapi.json"))  # fmt: skip
        return error(exc.status_code, body, getattr(exc, "headers", None))

    @app.get("/healthz", summary="Liveness, models and limits")
    def healthz() -> dict[str, Any]:
        return service.info()

    @app.post("/v1/music", summary="Music clips from prompts", response_model=Job,
              responses={202: {"model": Job, "description": "started (wait=false)"}, **ERRORS})  # fmt: skip
    async def music(body: MusicRequest, response: Response, wait: bool = True) -> Job:
        return _started(await service.submit("music", body, wait), response, wait)

    @app.post("/v1/video", summary="Videos from prompts", response_model=Job,
              responses={202: {"model": Job, "description": "started (wait=false)"}, **ERRORS})  # fmt: skip
    async def video(body: VideoRequest, response: Response, wait: bool = True) -> Job:
        return _started(await service.submit("video", body, wait), response, wait)

    @app.get("/v1/jobs/{job_id}", summary="A job's status and files", response_model=Job,
             responses={404: ERRORS[404]})  # fmt: skip
    def job(job_id: str) -> Job:
        found = service.store.get(job_id)
        if found is None:
            raise ServiceError(404, "no_job", f"no job {job_id!r} on this server",
                               "use the id a POST returned; finished jobs are kept for a while")  # fmt: skip
        return found

    @app.get("/v1/jobs/{job_id}/files/{name}", summary="Download a file of a finished job",
             response_class=FileResponse, responses={404: ERRORS[404]})  # fmt: skip
    def file(job_id: str, name: str) -> FileResponse:
        path = service.store.file(job_id, name)
        if path is None:
            raise ServiceError(404, "no_file", f"job {job_id!r} has no file {name!r} (yet)",
                               "GET /v1/jobs/{id} and use the urls listed under files once status is done")  # fmt: skip
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, filename=path.name)

    return app


def _started(job: Job, response: Response, wait: bool) -> Job:
    if not wait:
        response.status_code = 202
        response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


class BodyLimit:
    """ASGI middleware: request bodies over ``limit`` bytes get a 413 before anything parses them."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self.too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size, more = size + len(chunks[-1]), message.get("more_body", False)
            if size > self.limit:
                return await self.too_large(scope, receive, send)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    async def too_large(self, scope: dict, receive: Any, send: Any) -> None:
        body = ErrorBody(error="body_too_large", message=f"the request body is over {self.limit} bytes",
                         fix="send a smaller JSON body: prompts and options only")  # fmt: skip
        await error(413, body)(scope, receive, send)


class BearerToken:
    """ASGI middleware: every request must carry ``Authorization: Bearer <token>``, else a 401 JSON error."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.token):
            return await self.app(scope, receive, send)
        body = ErrorBody(error="unauthorized", message="this service needs its token",
                         fix="send the header Authorization: Bearer <token> (Client(url, token=...))")  # fmt: skip
        return await error(401, body, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
