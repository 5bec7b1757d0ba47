"""GET /v1/jobs/{id}: a video job's status and per-frame predictions."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from visionloop.serve.deps import ServiceDep, require
from visionloop.serve.schemas import ErrorOut, JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require("predict"))])


@router.get("/{job_id}", responses={404: {"model": ErrorOut}})
async def get_job(job_id: str, svc: ServiceDep) -> JobOut:
    return JobOut.model_validate(svc.jobs.get(job_id).to_json())
