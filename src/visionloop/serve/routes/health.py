"""GET /healthz (the process answers), /readyz (models loaded, taking traffic), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from visionloop.serve.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "starting or stopping"}})
async def readyz(svc: ServiceDep) -> Response:
    if not svc.ready:
        return JSONResponse({"status": "not ready"}, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "models_loaded": len(svc.pool.loaded)})


@router.get("/metrics")
async def metrics(svc: ServiceDep) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
