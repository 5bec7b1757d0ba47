"""The FastAPI app: `create_app(store_path, settings)`, its lifespan, the guard middleware, error handlers.

    app = create_app("myproject", Settings(max_batch=8))
    uvicorn.run(app, host="127.0.0.1", port=8000)       # or `visionloop serve -p myproject`

Nothing is opened at import: the store, the registry and the models are loaded by the lifespan.
Every error answers `{"error", "message", "hint"?}` with its status; an unexpected exception is a 500
whose body names a log id, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import visionloop
from visionloop.core.errors import VisionLoopError
from visionloop.serve.errors import PayloadTooLarge, body, status_of
from visionloop.serve.routes import concepts, feedback, health, inputs, jobs, models, predict, search
from visionloop.serve.service import Service
from visionloop.serve.settings import Settings

log = logging.getLogger(__name__)


class BodyTooLarge(PayloadTooLarge):
    pass


class Guard:
    """Pure ASGI: refuses bodies over `max_bytes` (declared or streamed) and counts requests per route."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, service: Service) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        status = [500]

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            err = BodyTooLarge(f"the request body is {declared.decode(errors='replace')[:20]} bytes, more than "
                               f"this server's limit of {limit:,}", hint="send fewer or smaller images")
            resp = JSONResponse(body(err), status_code=413, headers={"Connection": "close"})
            await resp(scope, receive, send_counted)
            self._count(scope, status[0])
            return
        seen = [0]

        async def receive_limited() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise BodyTooLarge(f"the request body is more than this server's limit of {limit:,} bytes",
                                       hint="send fewer or smaller images")
            return message

        try:
            await self.app(scope, receive_limited, send_counted)
        finally:
            self._count(scope, status[0])

    def _count(self, scope: Scope, code: int) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.service.metrics.http.labels(scope["method"], path, str(code)).inc()


def create_app(store_path: str | Path, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    service = Service(store_path, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        log.info("serving %s on %s:%s (auth %s)", store_path, settings.host, settings.port,
                 "on" if settings.auth_required() else "off")
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="visionloop", version=visionloop.__version__, lifespan=lifespan, debug=False,
                  description="Predict with the models of a visionloop project.")
    app.state.service = service
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(predict.router)
    app.include_router(inputs.router)
    app.include_router(feedback.router)
    app.include_router(jobs.router)
    app.include_router(concepts.router)
    app.include_router(search.router)
    _mount_ui(app, service)
    _handlers(app)
    app.add_middleware(Guard, max_bytes=settings.max_body_bytes, service=service)
    return app


def _mount_ui(app: FastAPI, service: Service) -> None:
    """The web UI at `/`, over the same store, keys and promote as the API."""
    from visionloop.serve.deps import authorize
    from visionloop.web import WebContext, mount

    async def auth(request: Request, scope: str) -> None:
        await authorize(request, service, request.headers.get("x-api-key"), scope)

    mount(app, WebContext(store=lambda: service.store, authorize=auth, promote=service.promote))


def _error(e: VisionLoopError) -> JSONResponse:
    headers = dict(getattr(e, "headers", {}) or {})
    return JSONResponse(body(e), status_code=status_of(e), headers=headers)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(VisionLoopError)
    async def user_error(request: Request, e: VisionLoopError) -> JSONResponse:
        return _error(e)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errs: list[Any] = list(e.errors())
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        return JSONResponse({"error": "InvalidParameter", "message": f"{where or 'request'}: {first['msg']}"},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        message = "no such route" if e.status_code == 404 and e.detail == "Not Found" else str(e.detail)
        return JSONResponse({"error": names.get(e.status_code, "HTTPError"), "message": message},
                            status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, e: ClientDisconnect) -> JSONResponse:
        return JSONResponse({"error": "ClientDisconnect", "message": "the client went away"}, status_code=499)

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("internal error %s on %s %s", ref, request.method, request.url.path, exc_info=e)
        return JSONResponse({"error": "InternalError",
                             "message": f"internal server error (logged as {ref}); the request was not processed"},
                            status_code=500)


def serve(store_path: str | Path, settings: Settings, *, workers: int = 1) -> None:
    """Run until Ctrl-C / SIGTERM (uvicorn drains in-flight requests). Refuses an open off-loopback server."""
    import uvicorn

    from visionloop.serve.service import check_auth
    from visionloop.store import Store

    with Store.open(store_path) as store:
        check_auth(store, settings)
    if workers > 1:
        import os

        os.environ["VISIONLOOP_SERVE"] = settings.model_dump_json()
        os.environ["VISIONLOOP_SERVE_PROJECT"] = str(Path(store_path).resolve())
        uvicorn.run("visionloop.serve.app:factory", factory=True, host=settings.host, port=settings.port,
                    workers=workers, log_level="warning", server_header=False)
        return
    uvicorn.run(create_app(store_path, settings), host=settings.host, port=settings.port, log_level="warning",
                server_header=False)


def factory() -> FastAPI:
    """For `uvicorn --factory` and several workers: settings from the environment `serve` set."""
    import os

    return create_app(os.environ["VISIONLOOP_SERVE_PROJECT"],
                      Settings.model_validate_json(os.environ["VISIONLOOP_SERVE"]))
