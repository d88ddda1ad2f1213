from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from service.api.responses import json_response
from service.api.schemas import STORAGE_UNAVAILABLE, ErrorBody, Health
from service.api.services import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process answers")
async def healthz() -> Response:
    return json_response(200, {"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    summary="Redis answers",
    responses={503: {"model": ErrorBody, "description": "Redis does not answer."}},
)
async def readyz(services: ServicesDep) -> Response:
    try:
        await services.redis.ping()
    except (RedisError, OSError):
        return json_response(503, {"error": STORAGE_UNAVAILABLE})
    return json_response(200, {"status": "ready"})
