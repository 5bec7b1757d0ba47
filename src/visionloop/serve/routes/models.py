"""GET /v1/models, GET /v1/models/{name}, POST /v1/models/{name}/promote (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from visionloop.serve.deps import ServiceDep, require
from visionloop.serve.schemas import ModelOut, PromoteIn

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", dependencies=[Depends(require("predict"))])
async def list_models(svc: ServiceDep) -> list[ModelOut]:
    return [ModelOut.model_validate(m) for m in svc.list_models()]


@router.get("/{name}", dependencies=[Depends(require("predict"))])
async def get_model(name: str, svc: ServiceDep) -> ModelOut:
    return ModelOut.model_validate(svc.describe(name))


@router.post("/{name}/promote", dependencies=[Depends(require("admin"))])
async def promote(name: str, svc: ServiceDep, body: PromoteIn | None = None) -> ModelOut:
    """Move the model (or the family's serving model) one stage on, or to `stage`; swapped in at once."""
    return ModelOut.model_validate(await svc.promote(name, body.stage if body else None))
