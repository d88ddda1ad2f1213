"""The seed design as a naive user writes it: FastAPI, a synchronous redis-py client in `def`
routes (run in the thread pool), default JSON responses, BackgroundTasks, one uvicorn worker.

Run it with `uvicorn bench.apps.seed:app`. It does the same Redis work per request as the
service (a job hash written in one MULTI, one HGETALL per poll) so that the comparison measures
the code around that work, not a different data layout.
"""

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, cast

import redis
from fastapi import BackgroundTasks, FastAPI, Request, Response
from pydantic import BaseModel

from bench.apps.contract import JOB_TTL_S, job_key

app = FastAPI()
r = redis.Redis.from_url(os.environ["REDIS_URL"])
MOCK_LATENCY_S = float(os.environ.get("MOCK_LATENCY_MS", "0")) / 1000
MOCK_CPU_S = float(os.environ.get("MOCK_CPU_MS", "0")) / 1000


def _load_iris() -> Any:
    import joblib

    return joblib.load(Path(os.environ.get("MODEL_PATH", "artifacts/iris.joblib")))


IRIS = _load_iris() if os.environ.get("MODEL") == "iris" else None


class PredictRequest(BaseModel):
    input: str | list[float]


def run_model(payload: Any) -> str:
    """The seed's mock (a random number), or the iris classifier, called inline."""
    if IRIS is not None:
        import numpy as np

        label = IRIS["classifier"].predict(np.asarray([payload], dtype=np.float64))[0]
        return str(IRIS["classes"][int(label)])
    if MOCK_LATENCY_S:
        time.sleep(MOCK_LATENCY_S)
    deadline = time.perf_counter() + MOCK_CPU_S
    while time.perf_counter() < deadline:
        hashlib.sha256(b"\0" * 65536).digest()
    return str(uuid.uuid4().int % 10000)


def finish(prediction_id: str, payload: Any) -> None:
    result = run_model(payload)
    pipe = r.pipeline(transaction=True)
    pipe.hset(
        job_key(prediction_id),
        mapping={"status": "succeeded", "result": result, "finished_at": repr(time.time())},
    )
    pipe.expire(job_key(prediction_id), JOB_TTL_S)
    pipe.execute()


@app.post("/predict")
def predict(
    body: PredictRequest, request: Request, response: Response, background_tasks: BackgroundTasks
) -> dict[str, Any]:
    # The header is read raw, as curl sends it (`async_mode`), so that the seed is measured on
    # its async path at all.
    mode = request.headers.get("async_mode") or request.headers.get("async-mode") or ""
    if mode.lower() != "true":
        return {"input": body.input, "result": run_model(body.input)}
    prediction_id = str(uuid.uuid4())
    pipe = r.pipeline(transaction=True)
    pipe.hset(
        job_key(prediction_id),
        mapping={
            "status": "queued",
            "input": json.dumps(body.input),
            "created_at": repr(time.time()),
        },
    )
    pipe.expire(job_key(prediction_id), JOB_TTL_S)
    pipe.execute()
    background_tasks.add_task(finish, prediction_id, body.input)
    response.status_code = 202
    response.headers["Location"] = f"/predict/{prediction_id}"
    return {"prediction_id": prediction_id, "status": "queued"}


@app.get("/predict/{prediction_id}")
def get_prediction(prediction_id: str, response: Response) -> dict[str, Any]:
    fields = cast(dict[bytes, bytes], r.hgetall(job_key(prediction_id)))
    if not fields:
        response.status_code = 404
        return {"error": "Prediction ID not found."}
    if fields.get(b"status") != b"succeeded":
        response.status_code = 202
        return {"error": "Prediction is still being processed."}
    return {"input": json.loads(fields[b"input"]), "result": fields[b"result"].decode()}


@app.get("/readyz")
def readyz() -> dict[str, str]:
    r.ping()
    return {"status": "ready"}
