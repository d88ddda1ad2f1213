from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    # A plain def: FastAPI runs it in a thread, so reading every worker's files never blocks
    # the event loop that serves predictions.
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
