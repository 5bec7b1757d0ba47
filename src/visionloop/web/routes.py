"""The pages (server-rendered Jinja2) and their JSON twins under /v1/ui/, on one router.

    mount(app, WebContext(store=lambda: service.store, authorize=..., promote=...))

Every page renders the result object its twin returns (`views`). Forms POST with a CSRF token: a random
value in an HttpOnly SameSite=Strict cookie that the form repeats; a POST whose token or Origin does not
match is refused. JSON writes need `Content-Type: application/json` (a cross-site form cannot send it).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from visionloop.core.errors import NotFoundError, VisionLoopError
from visionloop.geo.track import map_html
from visionloop.store import models as registry
from visionloop.store.schema import ImageRow
from visionloop.web import views
from visionloop.web.context import WebContext

HERE = Path(__file__).parent
CSRF_COOKIE = "vl_csrf"
KEY_COOKIE = "visionloop_key"
SHA = re.compile(r"^[0-9a-f]{64}$")
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["zip"] = zip
templates.env.globals["map_html"] = map_html
router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1/ui", tags=["ui"])


class CsrfError(VisionLoopError):
    status = 403


def mount(app: FastAPI, ctx: WebContext) -> None:
    app.state.web = ctx
    app.include_router(api)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def _ctx(request: Request) -> WebContext:
    return request.app.state.web


async def _run(fn: Any, *args: Any, **kw: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kw)


def _token(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf", None) or _new_token(request)


def _new_token(request: Request) -> str:
    request.state.csrf = secrets.token_urlsafe(32)
    return request.state.csrf


def _render(request: Request, name: str, data: dict[str, Any], *, status: int = 200,
            gps: bool = False) -> HTMLResponse:
    token = _token(request)
    resp = templates.TemplateResponse(request, name, {"d": data, "csrf": token, "flash": request.query_params.get("msg"),
                                                      "gps": gps}, status_code=status)
    if request.cookies.get(CSRF_COOKIE) != token:
        resp.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return resp


async def _page(request: Request, scope: str, name: str, make: Any) -> HTMLResponse:
    """Render `name` with what `make()` returns; a user error is a page saying it (with its status)."""
    try:
        await _ctx(request).authorize(request, scope)
    except VisionLoopError as e:
        return _render(request, "login.html", {"error": str(e), "next": str(request.url.path)},
                       status=getattr(e, "status", 401))
    gps = await _ctx(request).has_gps()
    try:
        data = await make()
    except VisionLoopError as e:
        return _render(request, "error.html", {"error": e.message, "hint": e.hint},
                       status=404 if isinstance(e, NotFoundError) else 400, gps=gps)
    return _render(request, name, data, gps=gps)


async def _form(request: Request, scope: str) -> dict[str, str]:
    """The POSTed form, after the CSRF check (token and Origin) and the same authorization as the API."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, form.get("csrf", "")):
        raise CsrfError("the form's CSRF token is missing or stale", hint="reload the page and submit again")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise CsrfError(f"a form posted from {origin} is refused", hint="use the page this server sent")
    await _ctx(request).authorize(request, scope)
    return form


async def _json_body(request: Request, scope: str) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise CsrfError("a JSON write needs Content-Type: application/json", hint="send the body as JSON")
    await _ctx(request).authorize(request, scope)
    body = await request.json()
    if not isinstance(body, dict):
        raise VisionLoopError("the body must be a JSON object")
    return body


def _back(path: str, msg: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}{urlencode({'msg': msg})}", status_code=303)


def _safe_next(path: str | None, default: str) -> str:
    return path if path and path.startswith("/") and not path.startswith("//") else default


# -- dataset -------------------------------------------------------------------------------------------------

def _int(v: str | None, default: int) -> int:
    try:
        return int(v) if v not in (None, "") else default
    except ValueError:
        raise VisionLoopError(f"not a number: {v!r}") from None


async def _dataset(request: Request) -> dict[str, Any]:
    q = request.query_params
    finding = q.get("finding") or None
    names = None
    if finding:
        _, report = await _ctx(request).health_report()
        names = views.finding_images(report, finding)
    return await _run(views.dataset, _ctx(request).store(), split=q.get("split") or None, cls=q.get("class") or None,
                      tag=q.get("tag") or None, finding=finding, finding_images=names, sort=q.get("sort") or "id",
                      desc=q.get("desc") in ("1", "true", "on"), page=_int(q.get("page"), 1),
                      per_page=_int(q.get("per_page"), views.PER_PAGE))


@router.get("/", response_class=HTMLResponse)
async def dataset_page(request: Request) -> HTMLResponse:
    return await _page(request, "predict", "dataset.html", lambda: _dataset(request))


@api.get("/dataset")
async def dataset_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _dataset(request))


@router.get("/thumbs/{sha}.jpg")
async def thumb(request: Request, sha: str) -> Response:
    await _ctx(request).authorize(request, "predict")
    store = _ctx(request).store()
    if not SHA.match(sha) or not await _run(_is_image, store, sha):
        raise NotFoundError("no such image")
    # not immutable: blur regions found later change the pixels under the same URL (the browser asks again, and
    # a thumbnail that did not change is a 304)
    etag = await _run(views.thumb_etag, store, sha)
    headers = {"Cache-Control": "private, no-cache", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    data = await _run(views.thumbnail, store, sha)
    return Response(data, media_type="image/jpeg", headers=headers)


def _is_image(store: Any, sha: str) -> bool:
    with store.session() as s:
        return s.scalar(select(ImageRow.id).where(ImageRow.sha256 == sha).limit(1)) is not None


# -- image ---------------------------------------------------------------------------------------------------

@router.get("/images/{image_id}", response_class=HTMLResponse)
async def image_page(request: Request, image_id: int) -> HTMLResponse:
    return await _page(request, "predict", "image.html", lambda: _run(views.image, _ctx(request).store(), image_id))


@api.get("/images/{image_id}")
async def image_json(request: Request, image_id: int) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.image, _ctx(request).store(), image_id))


@router.get("/images/{image_id}/file")
async def image_file(request: Request, image_id: int) -> Response:
    await _ctx(request).authorize(request, "predict")
    store = _ctx(request).store()
    etag = await _run(views.image_etag, store, image_id)  # blob + blur regions: a blur changes it
    headers = {"Cache-Control": "private, no-cache", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    data, media = await _run(views.full_image, store, image_id)
    return Response(data, media_type=media, headers=headers)


@router.post("/images/{image_id}/relabel")
async def relabel_form(request: Request, image_id: int) -> Response:
    form = await _form(request, "admin")
    done = await _run(views.relabel, _ctx(request).store(), _int(form.get("annotation"), -1), form.get("class", ""))
    return _back(f"/images/{image_id}", f"batch {done['batch']}: annotation {done['annotation']} is now "
                 f"{done['class']}")


@api.post("/annotations/{annotation_id}/class")
async def relabel_json(request: Request, annotation_id: int) -> JSONResponse:
    body = await _json_body(request, "admin")
    return JSONResponse(await _run(views.relabel, _ctx(request).store(), annotation_id, str(body.get("class", ""))))


def _box(form: dict[str, str]) -> list[float]:
    try:
        return [float(form.get(k, "")) for k in ("x0", "y0", "x1", "y1")]
    except ValueError:
        raise VisionLoopError("a box needs four numbers x0, y0, x1, y1",
                              hint="draw it on the image or type them") from None


@router.post("/images/{image_id}/boxes")
async def add_box_form(request: Request, image_id: int) -> Response:
    form = await _form(request, "admin")
    done = await _run(views.add_box, _ctx(request).store(), image_id, form.get("class", ""), _box(form))
    return _back(f"/images/{image_id}", f"batch {done['batch']}: added {done['class']} box {done['annotation']}")


@api.post("/images/{image_id}/boxes")
async def add_box_json(request: Request, image_id: int) -> JSONResponse:
    body = await _json_body(request, "admin")
    box = body.get("box")
    if not isinstance(box, list) or not all(isinstance(v, int | float) for v in box):
        raise VisionLoopError('"box" must be [x0, y0, x1, y1]')
    return JSONResponse(await _run(views.add_box, _ctx(request).store(), image_id, str(body.get("class", "")), box))


@router.post("/images/{image_id}/delete")
async def delete_form(request: Request, image_id: int) -> Response:
    form = await _form(request, "admin")
    done = await _run(views.delete_annotation, _ctx(request).store(), _int(form.get("annotation"), -1))
    return _back(f"/images/{image_id}", f"batch {done['batch']}: deleted annotation {done['annotation']}")


@api.post("/annotations/{annotation_id}/delete")
async def delete_json(request: Request, annotation_id: int) -> JSONResponse:
    await _json_body(request, "admin")
    return JSONResponse(await _run(views.delete_annotation, _ctx(request).store(), annotation_id))


@router.post("/batches/{batch_id}/undo")
async def undo_form(request: Request, batch_id: int) -> Response:
    form = await _form(request, "admin")
    await _run(views.undo, _ctx(request).store(), batch_id)
    return _back(_safe_next(form.get("next"), "/"), f"batch {batch_id} undone")


@api.post("/batches/{batch_id}/undo")
async def undo_json(request: Request, batch_id: int) -> JSONResponse:
    await _json_body(request, "admin")
    return JSONResponse(await _run(views.undo, _ctx(request).store(), batch_id))


# -- health --------------------------------------------------------------------------------------------------

async def _health(request: Request, refresh: bool = False) -> dict[str, Any]:
    at, report = await _ctx(request).health_report(refresh=refresh)
    return {"checked_at": at, **views.health(report)}


@router.get("/health", response_class=HTMLResponse)
async def health_page(request: Request) -> HTMLResponse:
    return await _page(request, "predict", "health.html", lambda: _health(request))


@api.get("/health")
async def health_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _health(request, refresh=request.query_params.get("refresh") == "1"))


@router.post("/health/check")
async def health_recheck(request: Request) -> Response:
    await _form(request, "predict")
    await _ctx(request).health_report(refresh=True)
    return _back("/health", "checked again")


# -- models --------------------------------------------------------------------------------------------------

@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request) -> HTMLResponse:
    return await _page(request, "predict", "models.html", lambda: _run(views.models, _ctx(request).store()))


@api.get("/models")
async def models_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.models, _ctx(request).store()))


@router.post("/models/{name}/promote")
async def promote_form(request: Request, name: str) -> Response:
    form = await _form(request, "admin")
    ctx = _ctx(request)
    stage = form.get("stage") or None
    if ctx.promote is not None:  # the server's own promote: it swaps the serving model too
        await ctx.promote(name, stage)
    else:
        await _run(views.promote, ctx.store(), name, stage)
    now = await _run(registry.get, ctx.store(), name)
    return _back("/models", f"{now.name} is now {now.stage}")


def _errors_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {"error": q.get("error") or None, "kind": q.get("kind") or None, "category": q.get("class") or None,
            "evaluation": _int(q.get("evaluation"), 0) or None}


@router.get("/models/{name}/errors", response_class=HTMLResponse)
async def errors_page(request: Request, name: str) -> HTMLResponse:
    return await _page(request, "predict", "errors.html",
                       lambda: _run(views.errors, _ctx(request).store(), name, **_errors_args(request)))


@api.get("/models/{name}/errors")
async def errors_json(request: Request, name: str) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.errors, _ctx(request).store(), name, **_errors_args(request)))


# -- evaluations ---------------------------------------------------------------------------------------------

@router.get("/evaluations", response_class=HTMLResponse)
async def evaluations_page(request: Request) -> HTMLResponse:
    return await _page(request, "predict", "evaluations.html", lambda: _run(views.evaluations, _ctx(request).store()))


@api.get("/evaluations")
async def evaluations_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.evaluations, _ctx(request).store()))


def _compare_args(request: Request) -> tuple[int, int]:
    q = request.query_params
    try:
        return int(q.get("a", "")), int(q.get("b", ""))
    except ValueError:
        raise VisionLoopError("a comparison needs two evaluation ids, ?a=ID&b=ID",
                              hint="pick them on the evaluations page") from None


@router.get("/evaluations-compare", response_class=HTMLResponse)  # not under /evaluations/: those are ids
async def evaluations_compare_page(request: Request) -> HTMLResponse:
    async def make() -> dict[str, Any]:
        return await _run(views.evaluations_compare, _ctx(request).store(), *_compare_args(request))

    return await _page(request, "predict", "evaluations_compare.html", make)


@api.get("/evaluations-compare")
async def evaluations_compare_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.evaluations_compare, _ctx(request).store(), *_compare_args(request)))


@router.get("/evaluations/{evaluation_id}", response_class=HTMLResponse)
async def evaluation_page(request: Request, evaluation_id: int) -> HTMLResponse:
    return await _page(request, "predict", "evaluation.html",
                       lambda: _run(views.evaluation, _ctx(request).store(), evaluation_id))


@api.get("/evaluations/{evaluation_id}")
async def evaluation_json(request: Request, evaluation_id: int) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.evaluation, _ctx(request).store(), evaluation_id))


# -- versions ------------------------------------------------------------------------------------------------

@router.get("/versions", response_class=HTMLResponse)
async def versions_page(request: Request) -> HTMLResponse:
    return await _page(request, "predict", "versions.html", lambda: _run(views.versions, _ctx(request).store()))


@api.get("/versions")
async def versions_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.versions, _ctx(request).store()))


def _diff_args(request: Request) -> tuple[str, str]:
    a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
    if not a or not b:
        raise VisionLoopError("a diff needs two versions, ?a=NAME&b=NAME", hint="pick them on the versions page")
    return a, b


@router.get("/versions-diff", response_class=HTMLResponse)  # not under /versions/: a version may be named diff
async def version_diff_page(request: Request) -> HTMLResponse:
    async def make() -> dict[str, Any]:
        return await _run(views.version_diff, _ctx(request).store(), *_diff_args(request))

    return await _page(request, "predict", "version_diff.html", make)


@api.get("/versions-diff")
async def version_diff_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.version_diff, _ctx(request).store(), *_diff_args(request)))


@router.get("/versions/{name}", response_class=HTMLResponse)
async def version_page(request: Request, name: str) -> HTMLResponse:
    return await _page(request, "predict", "version.html", lambda: _run(views.version, _ctx(request).store(), name))


@api.get("/versions/{name}")
async def version_json(request: Request, name: str) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.version, _ctx(request).store(), name))


@router.get("/versions/{name}/preview.png")
async def version_preview(request: Request, name: str) -> Response:
    await _ctx(request).authorize(request, "predict")
    data = await _run(views.version_preview, _ctx(request).store(), name)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


# -- production (admin: the log holds what users sent) -------------------------------------------------------

def _production_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    bucket = q.get("bucket") or "hour"
    return {"model": q.get("model") or None, "bucket": bucket}


async def _production(request: Request) -> dict[str, Any]:
    """The log's charts and the selections; `label_studio`: the server a selection is sent to (None when
    LABEL_STUDIO_URL/_API_KEY are not set); `sent_to`: the Label Studio project of ?ls=ID (a send just made)."""
    data = await _run(views.production, _ctx(request).store(), **_production_args(request))
    url, key = _label_studio()
    sent = _int(request.query_params.get("ls"), 0)
    return {**data, "label_studio": url if key else None,
            "sent_to": f"{url.rstrip('/')}/projects/{sent}/data" if url and sent > 0 else None}


@router.get("/production", response_class=HTMLResponse)
async def production_page(request: Request) -> HTMLResponse:
    return await _page(request, "admin", "production.html", lambda: _production(request))


@api.get("/production")
async def production_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "admin")
    return JSONResponse(await _production(request))


def _label_studio() -> tuple[str | None, str | None]:
    """The Label Studio server and key, from the environment `visionloop label send` reads them from."""
    return os.environ.get("LABEL_STUDIO_URL") or None, os.environ.get("LABEL_STUDIO_API_KEY") or None


@router.post("/production/label-studio")
async def send_selection_form(request: Request) -> Response:
    form = await _form(request, "admin")
    tag = form.get("tag", "")
    try:
        done = await _run(views.send_selection, _ctx(request).store(), tag, *_label_studio())
    except VisionLoopError as e:  # the page says it in one line; the selection stays as it was
        return _back("/production", f"not sent to Label Studio: {e.message}" + (f" ({e.hint})" if e.hint else ""))
    msg = (f"{tag}: {done['images']} images → Label Studio project {done['ls_project']} "
           f"({'created' if done['project_created'] else 'reused'}): {done['tasks_created']} tasks created, "
           f"{done['tasks_already_there']} already there")
    return RedirectResponse(f"/production?{urlencode({'msg': msg, 'ls': done['ls_project']})}", status_code=303)


@api.post("/production/label-studio")
async def send_selection_json(request: Request) -> JSONResponse:
    body = await _json_body(request, "admin")
    return JSONResponse(await _run(views.send_selection, _ctx(request).store(), str(body.get("tag") or ""),
                                   *_label_studio()))


@router.get("/production/images/{sha}.jpg")
async def production_image(request: Request, sha: str) -> Response:
    await _ctx(request).authorize(request, "admin")
    if not SHA.match(sha):
        raise NotFoundError("no such logged image")
    data = await _run(views.logged_image, _ctx(request).store(), sha)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=31536000, immutable"})


# -- map (when the images have GPS) --------------------------------------------------------------------------

def _float(v: str | None, default: float) -> float:
    try:
        return float(v) if v not in (None, "") else default
    except ValueError:
        raise VisionLoopError(f"not a number: {v!r}") from None


def _map_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {"max_gap_s": _float(q.get("max_gap"), 60.0), "max_step_m": _float(q.get("max_step"), 50.0)}


@router.get("/map", response_class=HTMLResponse)
async def map_page(request: Request) -> HTMLResponse:
    return await _page(request, "predict", "map.html",
                       lambda: _run(views.geo_map, _ctx(request).store(), **_map_args(request)))


@api.get("/map")
async def map_json(request: Request) -> JSONResponse:
    await _ctx(request).authorize(request, "predict")
    return JSONResponse(await _run(views.geo_map, _ctx(request).store(), **_map_args(request)))


# -- login (only when the server asks for keys) ---------------------------------------------------------------

@router.post("/login")
async def login(request: Request) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, form.get("csrf", "")):
        raise CsrfError("the form's CSRF token is missing or stale", hint="reload the page and submit again")
    resp = RedirectResponse(_safe_next(form.get("next"), "/"), status_code=303)
    resp.set_cookie(KEY_COOKIE, form.get("key", ""), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    return resp
