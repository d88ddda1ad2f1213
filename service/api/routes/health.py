import logging

from fastapi import APIRouter, Response

from service.api.responses import json_response
from service.api.schemas import DRAINING, STORAGE_UNAVAILABLE, ErrorBody, Health
from service.api.services import ServicesDep
from service.lifecycle import draining
from service.settings import redacted_url
from service.storage.errors import STORAGE_ERRORS

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process answers")
async def healthz() -> Response:
    return json_response(200, {"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    summary="Redis answers, and the process is not draining",
    responses={
        503: {
            "model": ErrorBody,
            "description": "Redis does not answer, or the process was told to stop and is "
            "serving out its drain period (DRAIN_S).",
        }
    },
)
async def readyz(services: ServicesDep) -> Response:
    if draining():
        return json_response(503, {"error": DRAINING})
    try:
        await services.redis.ping()
    except STORAGE_ERRORS as exc:
        logger.warning(
            "event=not_ready error=%s REDIS_URL=%s",
            type(exc).__name__,
            redacted_url(services.settings.redis_url),
        )
        return json_response(503, {"error": STORAGE_UNAVAILABLE})
    return json_response(200, {"status": "ready"})
